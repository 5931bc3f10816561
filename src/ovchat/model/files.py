"""Find and validate a model: a built folder, a model name, or a .gguf file (nothing is loaded here)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovchat.errors import ModelError
from ovchat.model.contract import (
    BUILD_COMMAND,
    BUILD_HINT,
    CHAT,
    DEFAULT_MODEL_NAME,
    LOSSY_GGUF_FILE_TYPES,
    MODEL_FILES,
    Manifest,
    ManifestError,
    find_named,
    model_folders,
)
from ovchat.model.gguf_cache import check_genai_reads
from ovchat.model.gguf_head import GGUFFormatError, read_gguf_head

IR_HEADER = re.compile(rb"<net\s[^>]*\bversion=")


@dataclass(frozen=True)
class ModelFiles:
    """Where a model lives and what it declares about itself."""

    path: Path
    is_gguf: bool
    context_length: int | None
    manifest: Manifest | None = field(default=None, compare=False, repr=False)
    gguf_quant: str | None = None  # the GGUF's weight type when openvino-genai imports it lossily

    @property
    def name(self) -> str:
        return self.path.stem if self.is_gguf else self.path.name

    @property
    def kind(self) -> str:
        """chat, embedding or rerank (contract.MODEL_KINDS): what its build recorded; chat without one."""
        return self.manifest.kind if self.manifest else CHAT

    @property
    def encoder(self) -> dict[str, Any]:
        """An embedding model's or reranker's settings (pooling, normalize, max_length, dimension)."""
        return dict(self.manifest.encoder) if self.manifest else {}

    @property
    def runtime(self) -> dict[str, str]:
        """The CPU properties the build verified the model with (empty for .gguf files)."""
        return dict(self.manifest.runtime) if self.manifest else {}

    @property
    def import_note(self) -> str | None:
        """A warning for GGUF files that openvino-genai's own reader imports lossily."""
        if self.gguf_quant is None:
            return None
        return (
            f"{self.path.name} holds {self.gguf_quant} weights, which openvino-genai's GGUF reader imports "
            "lossily (it rounds their zero points), so answers can be worse than llama.cpp's on the same "
            "file; for a faithful model build an IR from it: ovchat-build FILE (in the build env)"
        )


def find_model(spec: str | os.PathLike[str] | None = None) -> ModelFiles:
    """Resolve `spec`: a folder, a .gguf file, a model name; None: $OVCHAT_MODEL, else the default model."""
    if spec is None or str(spec) == "":
        spec = os.environ.get("OVCHAT_MODEL") or None
    if spec is None:
        return _by_name(DEFAULT_MODEL_NAME)
    path = Path(spec).expanduser()
    if not path.exists():
        if os.sep not in str(spec) and not str(spec).startswith("."):
            return _by_name(str(spec))
        raise ModelError(f"no model found at {path}: {BUILD_HINT}")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelError(f"{path} is a file but not a .gguf model; give a model folder or a .gguf file")
        return _gguf(path)
    return _validate_folder(path)


def _by_name(name: str) -> ModelFiles:
    found = find_named(name)
    if found is not None:
        return _validate_folder(found)
    where = " and ".join(str(p) for p in model_folders())
    raise ModelError(f"no model named {name} in {where}: {BUILD_HINT}")


def _gguf(path: Path) -> ModelFiles:
    try:
        head = read_gguf_head(path, tensors=True)
    except (GGUFFormatError, OSError) as exc:
        raise ModelError(f"{path} is not a readable GGUF model: {exc}") from None
    check_genai_reads(path, head)
    meta = head.metadata
    arch = meta.get("general.architecture")
    context = meta.get(f"{arch}.context_length")
    quant = LOSSY_GGUF_FILE_TYPES.get(meta.get("general.file_type", -1))
    return ModelFiles(path, True, int(context) if context else None, gguf_quant=quant)


def _validate_folder(path: Path) -> ModelFiles:
    missing = [name for name in MODEL_FILES if not (path / name).is_file()]
    if missing:
        raise ModelError(
            f"{path} is not an OpenVINO model folder (missing {', '.join(missing)}): {BUILD_HINT}"
        )
    with (path / "openvino_model.xml").open("rb") as handle:
        # Without an IR header OpenVINO tries its other frontends, which print TensorFlow logs.
        if not IR_HEADER.search(handle.read(4096)):
            raise ModelError(f"{path / 'openvino_model.xml'} is not an OpenVINO IR: rebuild the model")
    try:
        manifest = Manifest.read(path)
    except ManifestError as exc:
        raise ModelError(f"{path}: {exc}: rebuild the model") from None
    if manifest is not None:
        _check_sizes(path, manifest)
    context = manifest.context_length if manifest else _config_context(path)
    return ModelFiles(path, False, context, manifest)


def _config_context(path: Path) -> int | None:
    try:
        config: Any = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path / 'config.json'} is unreadable ({exc}): rebuild the model") from None
    value = config.get("max_position_embeddings") if isinstance(config, dict) else None
    return int(value) if isinstance(value, int) else None


def _check_sizes(path: Path, manifest: Manifest) -> None:
    """Catch truncated or swapped files cheaply, before OpenVINO reports them cryptically."""
    for entry in manifest.files:
        file = path / entry.path
        if not file.is_file():
            raise ModelError(f"{file} is missing: rebuild the model ({BUILD_COMMAND})")
        if file.stat().st_size != entry.size:
            raise ModelError(
                f"{file} is {file.stat().st_size} bytes but the build wrote {entry.size}: "
                f"the file is truncated or was changed; rebuild the model ({BUILD_COMMAND})"
            )


def find_models(
    specs: Sequence[str] = (), models_dir: str | os.PathLike[str] | None = None
) -> dict[str, ModelFiles]:
    """Several models by the names they are served under: each spec as find_model takes it, or
    NAME=SPEC to name it; then every model in `models_dir` (folders and .gguf files; other entries
    are left out). Two models under one name are an error, as is a models_dir without a model."""
    named: dict[str, ModelFiles] = {}

    def add(name: str, files: ModelFiles) -> None:
        if name in named and named[name].path.resolve() == files.path.resolve():
            return  # the same model named twice the same way (--model and --models-dir): once
        if name in named:
            raise ModelError(
                f"two models are named '{name}' ({named[name].path} and {files.path}): "
                "name one of them with NAME=PATH"
            )
        named[name] = files

    for spec in specs:
        name, sep, place = spec.partition("=")
        if sep and name and os.sep not in name:
            add(name, find_model(place))
        else:
            files = find_model(spec)
            add(files.name, files)
    if models_dir is not None:
        for files in _models_in(Path(models_dir).expanduser()):
            add(files.name, files)
    if not named:
        named_default = find_model(None)
        add(named_default.name, named_default)
    return named


def _models_in(folder: Path) -> list[ModelFiles]:
    if not folder.is_dir():
        raise ModelError(f"--models-dir {folder} is not a folder")
    found = []
    for entry in sorted(folder.iterdir()):
        is_model = (entry / "openvino_model.xml").is_file() or entry.suffix.lower() == ".gguf"
        if is_model:
            found.append(find_model(entry))
    if not found:
        raise ModelError(f"no model in {folder}: it holds no model folder nor .gguf file")
    return found
