"""A source's input files: which they are, their hashes (the fingerprint's inputs), and the disk
their export needs."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from ovchat.model.contract import sha256_file
from ovchat_build.errors import BuildError
from ovchat_build.source.resolve import Source


def weight_files(source: Source) -> list[Path]:
    """The input files whose content defines the build (hashed into the fingerprint).

    A folder's own `.cache` (what `hf download --local-dir` leaves beside the files) is not an input;
    the folders above it are no business of ours: the Hugging Face cache itself lives under
    ~/.cache/huggingface, and a checkpoint there is a checkpoint like any other."""
    assert source.path is not None
    if source.path.is_file():
        return [source.path]
    return sorted(
        p for p in source.path.rglob("*") if p.is_file() and ".cache" not in p.relative_to(source.path).parts
    )


def hash_inputs(source: Source) -> tuple[Source, list[dict[str, Any]]]:
    """Each input file's name, size and sha256, and the source with its digest over them."""
    assert source.path is not None
    base = source.path if source.path.is_dir() else source.path.parent
    files = weight_files(source)
    if not files:
        raise BuildError(f"{source.ref} holds no files to build from")
    inputs = [
        {"file": str(p.relative_to(base)), "size": p.stat().st_size, "sha256": sha256_file(p)} for p in files
    ]
    digest = hashlib.sha256(json.dumps(inputs).encode()).hexdigest()
    return Source(source.kind, source.ref, source.path, digest), inputs


def check_free_space(source: Source, out_dir: Path, fp32_export: bool = False) -> None:
    """optimum-cli writes a 16-bit IR (beside the work folder, see export.run_export) before it
    compresses it: check there is room for it and for the result before an hour of work, not when
    the disk fills."""
    assert source.path is not None
    weights = sum(
        p.stat().st_size for p in weight_files(source) if p.suffix in (".safetensors", ".bin", ".gguf")
    )
    config = source.path / "config.json"
    stored = json.loads(config.read_text()).get("torch_dtype", "float32") if config.is_file() else "float32"
    # A GGUF is dequantized first: 16 bits a weight from 4.5 to 8.5 bits (Q4_0 to Q8_0), so x4 at most.
    scale = 4.0 if source.path.suffix == ".gguf" else 1.0 if stored in ("bfloat16", "float16") else 0.5
    scale *= 2.0 if fp32_export else 1.0  # the GGUF grid's export: 32 bits a weight, then the grid
    sixteen_bit = weights * scale
    needs, free = sixteen_bit * 1.7, shutil.disk_usage(out_dir).free  # the 16-bit IR, then the result
    if free < needs:
        raise BuildError(
            f"not enough free disk in {out_dir}: the export needs about {needs / 1e9:.1f} GB there, "
            f"{free / 1e9:.1f} GB are free"
        )
