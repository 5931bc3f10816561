"""The build's own code as a digest: what a model folder, a converted GGUF or the gate's cached
figures were made by, so that any change to that code makes them again."""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def code_digest(names: tuple[str, ...] | None = None, package: Path = PACKAGE) -> str:
    """sha256 over the named files (folders: every file in them; None: the whole folder) under `package`."""
    digest = hashlib.sha256()
    tops = [package / name for name in names] if names is not None else [package]
    for top in tops:
        for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
