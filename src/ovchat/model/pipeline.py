"""Open a model's pipeline: LLMPipeline for one conversation (the CLI, the library) or
ContinuousBatchingPipeline for the server, with the runtime properties its build verified."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import openvino as ov
import openvino_genai as ov_genai

from ovchat.errors import ModelError, plain_message
from ovchat.model.contract import CHAT, EMBEDDING, KIND_WORDS
from ovchat.model.device import DeviceConfig, check_device
from ovchat.model.files import ModelFiles, find_model
from ovchat.model.gguf_cache import Conversion, cached_ir, start_conversion
from ovchat.model.paging import PageDropper
from ovchat.prompt.messages import Message
from ovchat.prompt.template import ToolFormat, render, tool_format, writes_thinking
from ovchat.prompt.tools.use import ToolUse


class TextTokenizer:
    """GenAI's tokenizer as the generation core uses it: ids in and out, and the chat template
    (prompt.plan.PromptTokenizer). How its template carries tools and whether it thinks are read once."""

    def __init__(self, tokenizer: ov_genai.Tokenizer) -> None:
        self._tokenizer = tokenizer
        self.tool_format: ToolFormat = tool_format(tokenizer)
        self.thinks: bool = writes_thinking(tokenizer)

    def encode(self, text: str, *, add_special: bool = False) -> list[int]:
        """The ids of `text`; `add_special`: with the BOS and such the tokenizer adds to a bare text."""
        ids = self._tokenizer.encode(text, add_special_tokens=add_special).input_ids
        return [int(i) for i in ids.data[0]]

    def decode(self, ids: list[int], *, keep_special: bool = False) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=not keep_special))

    def render(
        self, messages: list[Message], tools: ToolUse | None = None, context: dict[str, Any] | None = None
    ) -> str:
        return render(self._tokenizer, self.tool_format, messages, tools, context)


def token_input(ids: list[int]) -> ov.Tensor:
    """A prompt's ids as the pipelines take them (a batch of one)."""
    return ov.Tensor(np.array([ids], dtype=np.int64))


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
        """GenAI's own tokenizer."""
        return self.pipeline.get_tokenizer()

    @functools.cached_property
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
    files = spec if isinstance(spec, ModelFiles) else find_model(spec)
    check_chat_kind(files)
    started = time.perf_counter()
    converted_before = gguf_ir(files, device)
    # The pages keep being dropped until the first token (Model.settle_memory): ovchat.model.paging.
    pipeline, pages = open_pipeline(ov_genai.LLMPipeline, files, device)
    seconds = time.perf_counter() - started
    converted = gguf_ir(files, device)
    note = None
    if files.is_gguf and converted and not converted_before:
        size = sum(f.stat().st_size for f in converted.iterdir()) / 1e6
        note = (
            f"converted {files.path.name} for openvino-genai once, into {converted} ({size:.0f} MB); "
            "later starts open that instead"
        )
    return Model(files, pipeline, device, seconds, pages, note)


def check_chat_kind(files: ModelFiles) -> None:
    """A chat model, or a ModelError that says what the folder is and what opens it."""
    if files.kind == CHAT:
        return
    embedding = files.kind == EMBEDDING
    opener = "ovchat embed / ovchat.open_embedder" if embedding else "ovchat rerank / ovchat.open_reranker"
    raise ModelError(f"{files.name} is {KIND_WORDS[files.kind]}, not a chat model: use {opener}")


def gguf_ir(files: ModelFiles, device: DeviceConfig) -> Path | None:
    """The IR an earlier start converted this GGUF file to (none without a cache: --no-cache)."""
    if not files.is_gguf or device.compiled_cache == "":
        return None
    return cached_ir(files.path)


Pipeline = TypeVar("Pipeline", ov_genai.LLMPipeline, ov_genai.ContinuousBatchingPipeline)


def open_pipeline(
    kind: type[Pipeline],
    files: ModelFiles,
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
    props = device.properties(files.runtime, paged=True if batching else None)
    if batching:
        props.pop("ATTENTION_BACKEND", None)  # continuous batching always uses paged attention
    source = gguf_ir(files, device) or files.path
    pages = weight_pages(source, device).start(loading=True)  # see ovchat.model.paging
    try:
        pipeline = _construct(kind, files, source, device, props, scheduler)
        if device.prompt_lookup and isinstance(pipeline, ov_genai.LLMPipeline):
            pipeline.set_generation_config(request_defaults(pipeline, files, device)())
        pages.start()
        if warm:
            warm_up_pipeline(pipeline, device=device)
            pages.stop()
    except RuntimeError as exc:
        pages.stop()
        check_device(device)  # a missing device explains the failure best
        raise ModelError(f"cannot load the model at {files.path}: {plain_message(exc)}") from None
    return pipeline, pages


def request_defaults(
    pipeline: ov_genai.LLMPipeline | ov_genai.ContinuousBatchingPipeline,
    files: ModelFiles,
    device: DeviceConfig,
) -> Callable[[], ov_genai.GenerationConfig]:
    """With prompt lookup on: a fresh copy of the config every answer starts from, the model's
    generation_config.json plus the fields prompt lookup needs. GenAI's prompt-lookup pipelines
    forget that file (their config says greedy, eos -1, no stop tokens); other pipelines' own
    get_generation_config() / get_config() already give it."""
    defaults = (gguf_ir(files, device) or files.path) / "generation_config.json"
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
    two). A `streamer` can stop it after the prompt step, the part that pays the most. The prompt is a
    chat's token ids, as the answers that follow are."""
    ids = _warm_up_ids(pipeline.get_tokenizer())
    config = (device or DeviceConfig()).assisted(ov_genai.GenerationConfig(max_new_tokens=2))
    if isinstance(pipeline, ov_genai.ContinuousBatchingPipeline):
        pipeline.generate([token_input(ids)], [config], streamer)
    else:
        pipeline.generate(token_input(ids), config, streamer)


def _warm_up_ids(tokenizer: ov_genai.Tokenizer) -> list[int]:
    text = TextTokenizer(tokenizer)
    try:
        return text.encode(text.render([{"role": "user", "content": "Hi"}]))
    except RuntimeError:  # no chat template (a bare GGUF file): plain text warms up as well
        return text.encode("Hi")


def _construct(
    kind: type[Pipeline],
    files: ModelFiles,
    source: Path,
    device: DeviceConfig,
    props: dict[str, Any],
    scheduler: ov_genai.SchedulerConfig | None,
) -> Pipeline:
    if source == files.path and files.is_gguf and device.compiled_cache != "":
        converted = _convert_once(source, device, props)
        if isinstance(converted, Path):
            source = converted
        elif kind is ov_genai.LLMPipeline:
            return cast(Pipeline, converted)  # the pipeline that converted the file: the CLI's own
        else:  # ContinuousBatchingPipeline does not save the tokenizers: open what this one saved
            del converted
            source = gguf_ir(files, device) or source
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
