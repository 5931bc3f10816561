"""Read the head of a GGUF file, its key/value metadata and tensor types (no third-party reader needed)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class GGUFFormatError(ValueError):
    """The file is not a GGUF file this reader understands."""


def _read(handle: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = handle.read(size)
    if len(data) != size:
        raise GGUFFormatError("file ends inside its metadata")
    return struct.unpack(fmt, data)[0]


def _string(handle: BinaryIO) -> str:
    length = _read(handle, "<Q")
    return handle.read(length).decode("utf-8", errors="replace")


def _value(handle: BinaryIO, kind: int, keep: bool) -> Any:
    if kind in _SCALARS:
        return _read(handle, _SCALARS[kind])
    if kind == _STRING:
        return _string(handle)
    if kind == _ARRAY:
        item_kind, count = _read(handle, "<I"), _read(handle, "<Q")
        items = [_value(handle, item_kind, keep) for _ in range(count)]
        return items if keep else None
    raise GGUFFormatError(f"unknown metadata value type {kind}")


# ggml's tensor type ids (ggml.h, enum ggml_type) for the names users see in messages.
TENSOR_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
    24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0",
    35: "TQ2_0", 39: "MXFP4",
}  # fmt: skip


@dataclass(frozen=True)
class GGUFHead:
    """What a GGUF file's head declares: metadata and each tensor's type name."""

    metadata: dict[str, Any]
    tensor_types: dict[str, str] = field(default_factory=dict)  # tensor name -> type name


def read_gguf_head(path: Path, keys: set[str] | None = None, *, tensors: bool = False) -> GGUFHead:
    """Read the metadata (only `keys` if given; arrays are skipped unless asked for) and, with
    `tensors`, the tensor infos that follow it."""
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise GGUFFormatError(f"{path} is not a GGUF file")
        version = _read(handle, "<I")
        if version < 2:
            raise GGUFFormatError(f"GGUF version {version} is too old")
        tensor_count = _read(handle, "<Q")
        kv_count = _read(handle, "<Q")
        found: dict[str, Any] = {}
        for _ in range(kv_count):
            key = _string(handle)
            wanted = keys is None or key in keys
            value = _value(handle, _read(handle, "<I"), keep=wanted and keys is not None)
            if wanted:
                found[key] = value
        types = _tensor_types(handle, tensor_count) if tensors else {}
        return GGUFHead(found, types)


def _tensor_types(handle: BinaryIO, count: int) -> dict[str, str]:
    types: dict[str, str] = {}
    for _ in range(count):
        name = _string(handle)
        dims = _read(handle, "<I")
        handle.seek(8 * dims, 1)  # the shape
        kind = _read(handle, "<I")
        _read(handle, "<Q")  # the data offset
        types[name] = TENSOR_TYPES.get(kind, f"type {kind}")
    return types


def read_gguf_metadata(path: Path, keys: set[str] | None = None) -> dict[str, Any]:
    """Return the metadata (only `keys` if given; arrays are skipped unless asked for)."""
    return read_gguf_head(path, keys).metadata
