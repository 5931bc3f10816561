"""A GGUF the build cannot trust fails before any work, through the real `ovchat-build`: one line naming
the file and the problem, exit 1, nothing published, no partial folder in the models or sources folder.

The files are made here in seconds: a cut-off and byte-flipped copies of the embedded GGUF, and small
llama files written by the `gguf` package (the build env's) whose tensors disagree with their header."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD_PYTHON, ROOT, embedded_gguf, run_build

SOURCES = ROOT / "build" / "sources"

# A two-block llama GGUF of 64-wide embeddings, 4 query heads and 2 key/value heads of 16; `missing`
# leaves blk.1.ffn_down out, `q_rows` sets attn_q's output rows (64 agrees with the header).
WRITE_GGUF = """
import sys
import numpy as np, gguf
out, missing, q_rows = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
writer = gguf.GGUFWriter(out, "llama")
writer.add_block_count(2)
writer.add_embedding_length(64)
writer.add_feed_forward_length(128)
writer.add_head_count(4)
writer.add_head_count_kv(2)
writer.add_context_length(256)
tensors = {"token_embd.weight": (32, 64), "output_norm.weight": (64,)}
for block in range(2):
    tensors |= {f"blk.{block}.attn_norm.weight": (64,), f"blk.{block}.attn_q.weight": (q_rows, 64),
                f"blk.{block}.attn_k.weight": (32, 64), f"blk.{block}.attn_v.weight": (32, 64),
                f"blk.{block}.attn_output.weight": (64, 64), f"blk.{block}.ffn_norm.weight": (64,),
                f"blk.{block}.ffn_gate.weight": (128, 64), f"blk.{block}.ffn_up.weight": (128, 64),
                f"blk.{block}.ffn_down.weight": (64, 128)}
if missing:
    del tensors["blk.1.ffn_down.weight"]
for name, shape in tensors.items():
    writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
"""


def patched_copy(tmp_path: Path, name: str, key: bytes, value: bytes, skip: int) -> Path:
    """The embedded GGUF with the bytes `skip` past the end of metadata key `key` set to `value`."""
    data = bytearray(embedded_gguf().read_bytes())
    at = data.index(key) + len(key) + skip
    data[at : at + len(value)] = value
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def written(tmp_path: Path, name: str, missing: bool = False, q_rows: int = 64) -> Path:
    path = tmp_path / name
    made = subprocess.run(
        [str(BUILD_PYTHON), "-c", WRITE_GGUF, str(path), "1" if missing else "0", str(q_rows)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    return path


def truncated(tmp_path: Path) -> Path:
    path = tmp_path / "cut-short.gguf"
    path.write_bytes(embedded_gguf().read_bytes()[:50_000_000])
    return path


# (how the file is made, what the one line says after the file's name)
CASES = {
    "truncated": (truncated, "is truncated or corrupt"),
    "not a GGUF": (
        lambda tmp: patched_copy(tmp, "not-gguf.gguf", b"", b"GGUX", 0),
        "is not a GGUF file",
    ),
    "unknown architecture": (
        # general.architecture's value: its type (u32) and length (u64), then "llama".
        lambda tmp: patched_copy(tmp, "arch-flipped.gguf", b"general.architecture", b"llamb", 12),
        "GGUF architecture 'llamb' is not supported (only llama,",
    ),
    "embedding length vs tensors": (
        lambda tmp: patched_copy(
            tmp, "wide-header.gguf", b"llama.embedding_length", struct.pack("<I", 640), 4
        ),
        "token_embd.weight is 576 wide, the header's embedding length is 640",
    ),
    "missing tensor": (
        lambda tmp: written(tmp, "missing-tensor.gguf", missing=True),
        "tensor blk.1.ffn_down.weight is missing",
    ),
    "head count vs tensors": (
        lambda tmp: written(tmp, "heads.gguf", q_rows=48),
        "blk.0.attn_q.weight is 64 x 48, the header's embedding length 64 and 4 heads of 16 make 64 x 64",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_gguf_fails_in_one_line_and_leaves_nothing(tmp_path: Path, case: str) -> None:
    make, problem = CASES[case]
    source = make(tmp_path)
    out = tmp_path / "models"
    result = run_build(str(source), "--out-dir", str(out), timeout=120)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"ovchat-build: error: {source.name}"), line
    assert problem in line, line
    assert not out.exists() or not list(out.iterdir()), "something was left in the models folder"
    assert not [p for p in SOURCES.glob(f"*{source.stem}*")], "a conversion was left in build/sources"
