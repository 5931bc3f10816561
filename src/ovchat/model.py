"""Find and validate a model (a built folder or a .gguf file) and open it as an LLMPipeline."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openvino as ov
import openvino_genai as ov_genai

from ovchat.errors import DeviceError, ModelError
from ovchat.gguf_meta import GGUFFormatError, gguf_context_length

DEFAULT_MODEL_NAME = "smollm2-135m-instruct-int4"
IR_FILES = (
    "openvino_model.xml",
    "openvino_model.bin",
    "openvino_tokenizer.xml",
    "openvino_tokenizer.bin",
    "openvino_detokenizer.xml",
)
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
ATTENTION_BACKENDS = ("SDPA", "PA")
# Devices that take a list of other devices after a colon, e.g. AUTO:GPU,CPU.
META_DEVICES = ("AUTO", "HETERO", "MULTI", "BATCH")
BUILD_HINT = "run `make model` to build the default model, or pass --model"


@dataclass(frozen=True)
class ModelDir:
    """Where a model lives and what it declares about itself."""

    path: Path
    is_gguf: bool
    context_length: int | None
    manifest: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.path.stem if self.is_gguf else self.path.name


def default_model_candidates() -> list[Path]:
    """Where `make model` puts the default model, seen from the cwd and from this checkout."""
    checkout = Path(__file__).resolve().parents[2]
    places = [Path.cwd() / "build" / "models", checkout / "build" / "models"]
    return list(dict.fromkeys(p / DEFAULT_MODEL_NAME for p in places))


def find_model(spec: str | os.PathLike[str] | None = None) -> ModelDir:
    """Resolve `spec` (None: the default model) to a validated ModelDir."""
    if spec is None or str(spec) == "":
        for candidate in default_model_candidates():
            if candidate.is_dir():
                return _validate_folder(candidate)
        raise ModelError(f"no model found at {default_model_candidates()[0]}: {BUILD_HINT}")
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelError(f"no model found at {path}: {BUILD_HINT}")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelError(f"{path} is a file but not a .gguf model; give a model folder or a .gguf file")
        try:
            return ModelDir(path, True, gguf_context_length(path))
        except (GGUFFormatError, OSError) as exc:
            raise ModelError(f"{path} is not a readable GGUF model: {exc}") from None
    return _validate_folder(path)


def _validate_folder(path: Path) -> ModelDir:
    missing = [name for name in IR_FILES if not (path / name).is_file()]
    if missing:
        raise ModelError(
            f"{path} is not an OpenVINO model folder (missing {', '.join(missing)}): {BUILD_HINT}"
        )
    manifest = _read_json(path / "manifest.json")
    if manifest is not None:
        _check_sizes(path, manifest)
    config = _read_json(path / "config.json") or {}
    context = (manifest or {}).get("context_length") or config.get("max_position_embeddings")
    return ModelDir(path, False, int(context) if context else None, manifest)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is unreadable ({exc}): rebuild the model") from None
    return data if isinstance(data, dict) else None


def _check_sizes(path: Path, manifest: dict[str, Any]) -> None:
    """Catch truncated or swapped files cheaply, before OpenVINO reports them cryptically."""
    for entry in manifest.get("files", []):
        file = path / entry["path"]
        if not file.is_file():
            raise ModelError(f"{file} is missing: rebuild the model (`make model`)")
        if file.stat().st_size != entry["size"]:
            raise ModelError(
                f"{file} is {file.stat().st_size} bytes but the build wrote {entry['size']}: "
                "the file is truncated or was changed; rebuild the model (`make model`)"
            )


def default_cache_dir() -> Path:
    """Per-user folder for compiled-model blobs (makes the second start faster)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ovchat" / "compiled"


@dataclass(frozen=True)
class DeviceConfig:
    """Where and how OpenVINO compiles the model."""

    device: str = "CPU"
    performance_hint: str = "LATENCY"
    num_streams: int | None = None
    cache_dir: str | None = None  # None: default_cache_dir(); "": no cache
    attention_backend: str | None = None  # None: GenAI's default (paged attention)

    def properties(self) -> dict[str, Any]:
        """The properties passed to LLMPipeline as keyword arguments."""
        props: dict[str, Any] = {"PERFORMANCE_HINT": self.performance_hint}
        if self.num_streams is not None:
            props["NUM_STREAMS"] = self.num_streams
        cache = str(default_cache_dir()) if self.cache_dir is None else self.cache_dir
        if cache:
            props["CACHE_DIR"] = cache
        if self.attention_backend:
            props["ATTENTION_BACKEND"] = self.attention_backend
        return props


def check_settings(config: DeviceConfig) -> None:
    """Fail with a plain message on a hint, stream count or backend that cannot work."""
    if config.performance_hint not in PERFORMANCE_HINTS:
        raise DeviceError(f"performance hint must be one of {', '.join(PERFORMANCE_HINTS)}")
    if config.num_streams is not None and config.num_streams < 1:
        raise DeviceError("number of streams must be at least 1")
    if config.attention_backend not in (None, *ATTENTION_BACKENDS):
        raise DeviceError(f"attention backend must be one of {', '.join(ATTENTION_BACKENDS)}")


def check_device(config: DeviceConfig) -> None:
    """Fail with a plain message if the settings or the device cannot work here.

    Listing the devices costs ~50 ms (a second ov.Core), so open_model() only does it to
    explain a failed load.
    """
    check_settings(config)
    available = ov.Core().available_devices
    head, _, tail = config.device.upper().partition(":")
    wanted = tail.split(",") if head in META_DEVICES and tail else ([] if head in META_DEVICES else [head])
    for device in wanted:
        if not any(d == device or d.split(".")[0] == device for d in available):
            raise DeviceError(
                f"device '{device}' is not available on this machine (available: {', '.join(available)})"
            )


def openvino_message(exc: BaseException) -> str:
    """OpenVINO's error text without its C++ file paths and check expressions."""
    lines = [ln.strip() for ln in str(exc).splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith(("Exception from", "Check '"))]
    return useful[-1] if useful else lines[0] if lines else type(exc).__name__


@dataclass
class Model:
    """An opened model: the pipeline plus what ovchat knows about the model."""

    dir: ModelDir
    pipeline: ov_genai.LLMPipeline
    device: DeviceConfig
    load_seconds: float

    @property
    def tokenizer(self) -> ov_genai.Tokenizer:
        return self.pipeline.get_tokenizer()

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` as the model sees it (special tokens in the text included)."""
        return int(self.tokenizer.encode(text, add_special_tokens=False).input_ids.get_shape()[1])


def open_model(spec: str | os.PathLike[str] | None = None, device: DeviceConfig | None = None) -> Model:
    """Find, validate and load a model on a device."""
    device = device or DeviceConfig()
    model_dir = find_model(spec)
    check_settings(device)
    started = time.perf_counter()
    try:
        pipeline = ov_genai.LLMPipeline(str(model_dir.path), device.device, **device.properties())
    except RuntimeError as exc:
        check_device(device)  # a missing device explains the failure best
        raise ModelError(f"cannot load the model at {model_dir.path}: {openvino_message(exc)}") from None
    return Model(model_dir, pipeline, device, time.perf_counter() - started)
