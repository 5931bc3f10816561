"""Find and validate a model (a built folder, a model name, or a .gguf file) and open its pipeline."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import openvino_genai as ov_genai

from ovchat.errors import ModelError, plain_message
from ovchat.model.contract import (
    BUILD_COMMAND,
    BUILD_HINT,
    DEFAULT_MODEL_NAME,
    LOSSY_GGUF_FILE_TYPES,
    MODEL_FILES,
    Manifest,
    ManifestError,
    find_named,
    model_folders,
)
from ovchat.model.device import DeviceConfig, check_device
from ovchat.model.gguf_cache import Conversion, cached_ir, check_genai_reads, start_conversion
from ovchat.model.gguf_head import GGUFFormatError, read_gguf_head
from ovchat.model.paging import PageDropper
from ovchat.prompt.messages import Message

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


class TextTokenizer:
    """GenAI's tokenizer through the methods ovchat needs (budget.PromptTokenizer and decode)."""

    def __init__(self, tokenizer: ov_genai.Tokenizer) -> None:
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False).input_ids
        return [int(i) for i in ids.data[0]]

    def chat_prompt(self, messages: list[Message]) -> str:
        return str(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True))

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))


@dataclass
class Model:
    """An opened model: the pipeline plus what ovchat knows about the model."""

    files: ModelFiles
    pipeline: ov_genai.LLMPipeline
    device: DeviceConfig
    load_seconds: float
    pages: PageDropper | None = field(default=None, repr=False)
    note: str | None = None  # what this start did once that later starts will not (a GGUF conversion)

    def settle_memory(self) -> None:
        """Call once the first token is out: the weights are repacked, the mapped files can go."""
        if self.pages is not None:
            self.pages.stop()

    @property
    def tokenizer(self) -> ov_genai.Tokenizer:
        return self.pipeline.get_tokenizer()

    @property
    def text_tokenizer(self) -> TextTokenizer:
        return TextTokenizer(self.pipeline.get_tokenizer())

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` as the model sees it (special tokens in the text included)."""
        return len(self.text_tokenizer.encode(text))


def open_model(
    spec: str | os.PathLike[str] | ModelFiles | None = None, device: DeviceConfig | None = None
) -> Model:
    """Find, validate and load a model on a device (`spec` as find_model takes it, or its result)."""
    device = device or DeviceConfig()
    model_dir = spec if isinstance(spec, ModelFiles) else find_model(spec)
    started = time.perf_counter()
    converted_before = gguf_ir(model_dir, device)
    # The pages keep being dropped until the first token (Model.settle_memory): ovchat.model.paging.
    pipeline, pages = open_pipeline(ov_genai.LLMPipeline, model_dir, device)
    seconds = time.perf_counter() - started
    converted = gguf_ir(model_dir, device)
    note = None
    if model_dir.is_gguf and converted and not converted_before:
        size = sum(f.stat().st_size for f in converted.iterdir()) / 1e6
        note = (
            f"converted {model_dir.path.name} for openvino-genai once, into {converted} ({size:.0f} MB); "
            "later starts open that instead"
        )
    return Model(model_dir, pipeline, device, seconds, pages, note)


def gguf_ir(model_dir: ModelFiles, device: DeviceConfig) -> Path | None:
    """The IR an earlier start converted this GGUF file to (none without a cache: --no-cache)."""
    if not model_dir.is_gguf or device.compiled_cache == "":
        return None
    return cached_ir(model_dir.path)


Pipeline = TypeVar("Pipeline", ov_genai.LLMPipeline, ov_genai.ContinuousBatchingPipeline)


def open_pipeline(
    kind: type[Pipeline],
    model_dir: ModelFiles,
    device: DeviceConfig,
    scheduler: ov_genai.SchedulerConfig | None = None,
    *,
    warm: bool = False,
) -> tuple[Pipeline, PageDropper]:
    """Load the model as an LLMPipeline (one conversation: the CLI, the library) or as a
    ContinuousBatchingPipeline on `scheduler` (the server), with the runtime properties its build
    verified; `warm`: warm_up_pipeline() before returning. The PageDropper runs until stop() is called
    (done here once warm)."""
    batching = kind is ov_genai.ContinuousBatchingPipeline
    props = device.properties(model_dir.runtime, paged=True if batching else None)
    if batching:
        props.pop("ATTENTION_BACKEND", None)  # continuous batching always uses paged attention
    source = gguf_ir(model_dir, device) or model_dir.path
    pages = weight_pages(source, device).start(loading=True)  # see ovchat.model.paging
    try:
        pipeline = _construct(kind, model_dir, source, device, props, scheduler)
        if device.prompt_lookup and isinstance(pipeline, ov_genai.LLMPipeline):
            pipeline.set_generation_config(request_defaults(pipeline, model_dir, device)())
        pages.start()
        if warm:
            warm_up_pipeline(pipeline, device=device)
            pages.stop()
    except RuntimeError as exc:
        pages.stop()
        check_device(device)  # a missing device explains the failure best
        raise ModelError(f"cannot load the model at {model_dir.path}: {plain_message(exc)}") from None
    return pipeline, pages


def request_defaults(
    pipeline: ov_genai.LLMPipeline | ov_genai.ContinuousBatchingPipeline,
    model_dir: ModelFiles,
    device: DeviceConfig,
) -> Callable[[], ov_genai.GenerationConfig]:
    """With prompt lookup on: a fresh copy of the config every answer starts from, the model's
    generation_config.json plus the fields prompt lookup needs. GenAI's prompt-lookup pipelines
    forget that file (their config says greedy, eos -1, no stop tokens); other pipelines' own
    get_generation_config() / get_config() already give it."""
    defaults = (gguf_ir(model_dir, device) or model_dir.path) / "generation_config.json"
    eos = pipeline.get_tokenizer().get_eos_token_id()

    def fresh() -> ov_genai.GenerationConfig:
        config = ov_genai.GenerationConfig(*([str(defaults)] if defaults.is_file() else []))
        if config.eos_token_id == -1:
            config.eos_token_id = eos
        return device.assisted(config)

    return fresh


def warm_up_pipeline(
    pipeline: ov_genai.LLMPipeline | ov_genai.ContinuousBatchingPipeline,
    streamer: Callable[[str], ov_genai.StreamingStatus] | None = None,
    device: DeviceConfig | None = None,
) -> None:
    """Generate two throwaway tokens: the first inference of each shape pays the CPU plugin's kernel
    set-up and weight repacking, so the first real answer does not (measured at 135 M: the server's
    first TTFT 800-890 ms after one token, 270-290 ms after two; the CLI's 180 ms cold, 25-31 ms after
    two). A `streamer` can stop it after the prompt step, the part that pays the most."""
    # A chat, as the answers that follow are: the stateful (SDPA) LLMPipeline refuses to switch
    # between text and chat input without a reset.
    hello = ov_genai.ChatHistory([{"role": "user", "content": "Hi"}])
    config = (device or DeviceConfig()).assisted(ov_genai.GenerationConfig(max_new_tokens=2))
    if isinstance(pipeline, ov_genai.ContinuousBatchingPipeline):
        pipeline.generate([hello], [config], streamer)
    else:
        pipeline.generate(hello, config, streamer)


def _construct(
    kind: type[Pipeline],
    model_dir: ModelFiles,
    source: Path,
    device: DeviceConfig,
    props: dict[str, Any],
    scheduler: ov_genai.SchedulerConfig | None,
) -> Pipeline:
    if source == model_dir.path and model_dir.is_gguf and device.compiled_cache != "":
        converted = _convert_once(source, device, props)
        if isinstance(converted, Path):
            source = converted
        elif kind is ov_genai.LLMPipeline:
            return cast(Pipeline, converted)  # the pipeline that converted the file: the CLI's own
        else:  # ContinuousBatchingPipeline does not save the tokenizers: open what this one saved
            del converted
            source = gguf_ir(model_dir, device) or source
    if kind is ov_genai.ContinuousBatchingPipeline:
        return kind(str(source), scheduler or ov_genai.SchedulerConfig(), device.device, props)
    return kind(str(source), device.device, **props)


def _convert_once(path: Path, device: DeviceConfig, props: dict[str, Any]) -> Path | ov_genai.LLMPipeline:
    """Open the GGUF file through GenAI with its converted IR saved into the cache (gguf_open);
    return the LLMPipeline that did it, or `path` when the cache cannot be written."""
    conversion: Conversion | None = start_conversion(path)
    if conversion is None:
        return path
    try:
        pipeline = ov_genai.LLMPipeline(
            str(conversion.link), device.device, enable_save_ov_model=True, **props
        )
    except BaseException:
        conversion.discard()
        raise
    conversion.publish()
    return pipeline


def weight_pages(path: Path, device: DeviceConfig) -> PageDropper:
    """A PageDropper for the files a model's weights are mapped from (its own, the compiled cache)."""
    cache = device.compiled_cache
    return PageDropper([path, *([Path(cache)] if cache else [])])
