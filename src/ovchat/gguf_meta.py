"""Read the key/value metadata at the head of a GGUF file (no third-party reader needed)."""

from __future__ import annotations

import struct
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


def read_gguf_metadata(path: Path, keys: set[str] | None = None) -> dict[str, Any]:
    """Return the metadata (only `keys` if given; arrays are skipped unless asked for)."""
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise GGUFFormatError(f"{path} is not a GGUF file")
        version = _read(handle, "<I")
        if version < 2:
            raise GGUFFormatError(f"GGUF version {version} is too old")
        _read(handle, "<Q")  # tensor count
        kv_count = _read(handle, "<Q")
        found: dict[str, Any] = {}
        for _ in range(kv_count):
            key = _string(handle)
            wanted = keys is None or key in keys
            value = _value(handle, _read(handle, "<I"), keep=wanted and keys is not None)
            if wanted:
                found[key] = value
        return found


def gguf_context_length(path: Path) -> int | None:
    """The training context length the GGUF declares (`<arch>.context_length`)."""
    meta = read_gguf_metadata(path)
    arch = meta.get("general.architecture")
    value = meta.get(f"{arch}.context_length")
    return int(value) if value else None
