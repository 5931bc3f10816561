"""A GGUF source checked before any work: whole, of an architecture the build takes, and with tensors
that agree with its own header. Each problem is one line naming the file; nothing is written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gguf

from ovchat_build.errors import BuildError
from ovchat_build.gguf.archs import ArchitectureError, architecture, read_gguf

BLOCK = re.compile(r"blk\.(\d+)\.(.+)$")


def check_gguf(path: Path) -> None:
    """Raise BuildError when `path` is truncated or corrupt, of an unknown architecture, or when its
    tensors disagree with its metadata (shapes against the embedding length and head counts, blocks)."""
    name = path.name
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise BuildError(f"{name} is not a GGUF file (it does not start with 'GGUF')")
    try:
        reader = read_gguf(path)
    except Exception as exc:  # gguf's reader fails in numpy's or struct's words
        raise BuildError(f"{name} is truncated or corrupt ({_short(exc)}): download it again") from None
    size = path.stat().st_size
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise BuildError(f"{name} is truncated ({size:,} of {end:,} bytes): download it again")
    arch = _field(reader, "general.architecture")
    try:
        architecture(arch, name)  # the architectures the import takes, declared there
    except ArchitectureError as exc:
        raise BuildError(str(exc)) from None
    problem = tensor_problem(reader, str(arch))
    if problem:
        raise BuildError(f"{name}: {problem}: the file is corrupt or was written wrongly")


def tensor_problem(reader: gguf.GGUFReader, arch: str) -> str | None:
    """What disagrees between the tensors and the header, or None."""
    shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}
    embedding = _field(reader, f"{arch}.embedding_length")
    blocks = _field(reader, f"{arch}.block_count")
    heads = _field(reader, f"{arch}.attention.head_count")
    if not isinstance(embedding, int) or not isinstance(blocks, int) or not isinstance(heads, int):
        return f"its header lacks {arch}.embedding_length, block_count or attention.head_count"
    kv_heads = _field(reader, f"{arch}.attention.head_count_kv") or heads
    head_dim = _field(reader, f"{arch}.attention.key_length") or embedding // heads
    if "token_embd.weight" not in shapes:
        return "tensor token_embd.weight is missing"
    width = shapes["token_embd.weight"][0]
    if width != embedding:
        return f"token_embd.weight is {width} wide, the header's embedding length is {embedding}"
    found = {int(m.group(1)) for m in map(BLOCK.match, shapes) if m}
    if found != set(range(blocks)):
        return f"its tensors hold {len(found)} blocks, the header says {blocks}"
    first = {m.group(2) for m in map(BLOCK.match, shapes) if m and m.group(1) == "0"}
    for block in range(1, blocks):
        missing = sorted(kind for kind in first if f"blk.{block}.{kind}" not in shapes)
        if missing:
            return f"tensor blk.{block}.{missing[0]} is missing"
    expected = {"attn_q": heads * head_dim, "attn_k": kv_heads * head_dim, "attn_v": kv_heads * head_dim}
    for kind, rows in expected.items():
        shape = shapes.get(f"blk.0.{kind}.weight")
        if shape is not None and (shape[0] != embedding or shape[1] != rows):
            return (
                f"blk.0.{kind}.weight is {shape[0]} x {shape[1]}, the header's embedding length {embedding} "
                f"and {heads if kind == 'attn_q' else kv_heads} heads of {head_dim} make {embedding} x {rows}"
            )
    return None


def _field(reader: gguf.GGUFReader, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _short(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]
