"""The batching engine: one thread drives a ContinuousBatchingPipeline; requests stream back to asyncio.

Every call into the pipeline (add_request, step, read, cancel) happens on the engine thread, so
the pipeline is never used from two threads at once. The HTTP side only appends to a pending
queue, sets a job's `cancelled` flag and awaits the job's asyncio queue of events.

step() holds the GIL for its whole run, so a long prompt prefilled in one step would freeze the
event loop (measured: 1.4 s for 1,800 tokens on 2 cores). The scheduler therefore splits prompts
into chunks of `prefill_chunk` tokens (dynamic split-fuse), which bounds each stall to one chunk.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import openvino_genai as ov_genai

from ovchat.errors import ContextError, ModelError, OvchatError
from ovchat.model import DeviceConfig, ModelDir, openvino_message
from ovchat.options import GenerationOptions
from ovchat.server.metrics import ServerMetrics
from ovchat.session import FINISH_REASONS

log = logging.getLogger("ovchat.server")


class QueueFullError(OvchatError):
    """Too many requests are waiting; the client should retry later (HTTP 503 + Retry-After)."""

    retry_after_s = 1


class EngineUnavailableError(OvchatError):
    """The model is still loading, failed to load, or the server is shutting down (HTTP 503)."""


@dataclass(frozen=True)
class EngineConfig:
    """How many requests run and wait, and how the scheduler batches them."""

    max_batch: int = 16  # sequences generated together (scheduler max_num_seqs)
    max_queue: int = 64  # requests waiting for a batch slot before new ones get 503
    prefill_chunk: int = 256  # tokens per step; bounds how long one step holds the GIL
    kv_cache_gb: int = 1
    prefix_cache: bool = True  # reuse the KV blocks of a prompt prefix seen before (multi-turn chats)


@dataclass(frozen=True)
class Delta:
    """New text of a running answer and how many tokens it took."""

    text: str
    tokens: int


@dataclass(frozen=True)
class Done:
    """The answer is complete."""

    finish_reason: str  # stop | length
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Failed:
    message: str


Event = Delta | Done | Failed


@dataclass(eq=False)
class Job:
    """One request in flight: its prompt, its config and the queue its events go to."""

    id: int
    prompt: Any  # openvino.Tensor of token ids, shape [1, n]
    prompt_tokens: int
    config: ov_genai.GenerationConfig
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.perf_counter)
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    cancelled: bool = False  # set by the HTTP side, acted on by the engine thread
    handle: ov_genai.GenerationHandle | None = None  # kept referenced: dropping it stops the request
    ids: list[int] = field(default_factory=list)
    text: str = ""
    last_token_at: float | None = None

    async def stream(self) -> AsyncIterator[Delta | Done]:
        """Deltas as they are generated, then Done; a failure raises OvchatError."""
        while True:
            event = await self.events.get()
            if isinstance(event, Failed):
                raise OvchatError(event.message)
            yield event
            if isinstance(event, Done):
                return

    def post(self, event: Event) -> None:
        """Hand an event to the job's event loop (called on the engine thread)."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled = True


class Engine:
    """Loads the model on its own thread, then runs step() while there is work."""

    def __init__(self, model: ModelDir, device: DeviceConfig, config: EngineConfig,
                 metrics: ServerMetrics) -> None:  # fmt: skip
        self.model = model
        self.device = device
        self.config = config
        self.metrics = metrics
        self.state = "loading"  # loading | ready | failed | stopped
        self.error: str | None = None
        self._pipeline: ov_genai.ContinuousBatchingPipeline | None = None
        self._tokenizer: ov_genai.Tokenizer | None = None
        self._pending: deque[Job] = deque()
        self._active: list[Job] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._abort = False
        self._next_id = 0
        self._thread = threading.Thread(target=self._run, name="ovchat-engine", daemon=True)
        self._on_fatal: Callable[[str], None] | None = None

    @property
    def running(self) -> int:
        return len(self._active)

    @property
    def queued(self) -> int:
        return len(self._pending)

    def start(self, on_fatal: Callable[[str], None] | None = None) -> None:
        """Start loading; `on_fatal(message)` is called on the engine thread if loading fails."""
        self._on_fatal = on_fatal
        self._thread.start()

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The model's chat template applied to `messages`, ready for the assistant's answer."""
        return str(self._ready_tokenizer().apply_chat_template(messages, add_generation_prompt=True))

    def submit(self, prompt: str, options: GenerationOptions, max_tokens_given: bool,
               json_schema: str | None = None) -> Job:  # fmt: skip
        """Queue `prompt` (already templated, sent as-is) for generation; call on the event loop."""
        tokenizer = self._ready_tokenizer()
        assert self._pipeline is not None
        ids = tokenizer.encode(prompt, add_special_tokens=False).input_ids
        prompt_tokens = int(ids.get_shape()[1])
        options = self._fit_context(prompt_tokens, options, max_tokens_given)
        config = options.to_config(self._pipeline.get_config())
        if json_schema is not None:
            config.structured_output_config = ov_genai.StructuredOutputConfig(json_schema=json_schema)
        with self._wake:
            if self._stopping:
                raise EngineUnavailableError("the server is shutting down")
            free_slots = max(0, self.config.max_batch - len(self._active))
            if len(self._pending) >= self.config.max_queue + free_slots:
                raise QueueFullError(
                    f"the server is busy ({len(self._pending)} requests waiting): retry later"
                )
            job = Job(self._next_id, ids, prompt_tokens, config, asyncio.get_running_loop())
            self._next_id += 1
            self._pending.append(job)
            self._wake.notify()
        return job

    def cancel(self, job: Job) -> None:
        """Stop `job` at the engine's next step (safe to call at any time, more than once)."""
        job.cancelled = True
        with self._wake:
            self._wake.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new work, let running jobs finish for up to `timeout` s, then cancel the rest."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort = True
            with self._wake:
                self._wake.notify()
            self._thread.join()
        self.state = "stopped"

    def _ready_tokenizer(self) -> ov_genai.Tokenizer:
        if self.state != "ready" or self._tokenizer is None:
            raise EngineUnavailableError(
                "the model is still loading: retry shortly" if self.state == "loading"
                else f"the model is not available ({self.error or self.state})"
            )  # fmt: skip
        return self._tokenizer

    def _fit_context(self, prompt_tokens: int, options: GenerationOptions,
                     max_tokens_given: bool) -> GenerationOptions:  # fmt: skip
        context = self.model.context_length
        if context is None:
            return options
        if prompt_tokens >= context or (
            max_tokens_given and prompt_tokens + options.max_new_tokens > context
        ):
            raise ContextError(
                f"this model's context window is {context} tokens, but the request needs {prompt_tokens} "
                f"for the prompt plus {options.max_new_tokens if max_tokens_given else 'at least 1'} "
                "for the answer: shorten the input or lower max_tokens"
            )
        return options.replace(max_new_tokens=min(options.max_new_tokens, context - prompt_tokens))

    def _load(self) -> None:
        scheduler = ov_genai.SchedulerConfig()
        scheduler.max_num_seqs = self.config.max_batch
        scheduler.max_num_batched_tokens = max(self.config.prefill_chunk, self.config.max_batch)
        scheduler.dynamic_split_fuse = True
        scheduler.cache_size = self.config.kv_cache_gb
        scheduler.enable_prefix_caching = self.config.prefix_cache
        props = self.device.properties()
        props.pop("ATTENTION_BACKEND", None)  # continuous batching always uses paged attention
        try:
            self._pipeline = ov_genai.ContinuousBatchingPipeline(
                str(self.model.path), scheduler, self.device.device, props
            )
        except RuntimeError as exc:
            raise ModelError(f"cannot load the model at {self.model.path}: {openvino_message(exc)}") from None
        self._tokenizer = self._pipeline.get_tokenizer()

    def _run(self) -> None:
        try:
            self._load()
        except OvchatError as exc:
            self.state, self.error = "failed", str(exc)
            log.error("%s", exc)
            if self._on_fatal is not None:
                self._on_fatal(str(exc))
            return
        self.state = "ready"
        log.info("model %s ready for continuous batching", self.model.name)
        while self._wait_for_work():
            self._admit()
            self._drop_cancelled()
            if self._active:
                self._step()
            time.sleep(0)  # step() held the GIL: let the event loop run before the next one

    def _wait_for_work(self) -> bool:
        """Block until there is something to do; False once stopping and idle (or aborted)."""
        with self._wake:
            while not (self._pending or self._active or self._stopping):
                self._wake.wait()
            if self._abort:
                for job in [*self._pending, *self._active]:
                    job.cancelled = True
            return not (self._stopping and not self._pending and not self._active)

    def _admit(self) -> None:
        assert self._pipeline is not None
        with self._wake:
            room = self.config.max_batch - len(self._active)
            admitted = [self._pending.popleft() for _ in range(min(room, len(self._pending)))]
        for job in admitted:
            if job.cancelled:
                self._finish(job, "cancelled")
                continue
            job.handle = self._pipeline.add_request(job.id, job.prompt, job.config)
            self._active.append(job)

    def _drop_cancelled(self) -> None:
        with self._wake:
            waiting = [job for job in self._pending if job.cancelled]
            for job in waiting:
                self._pending.remove(job)
        for job in waiting + [job for job in self._active if job.cancelled]:
            if job.handle is not None:
                job.handle.cancel()
                self._active.remove(job)
            job.post(Failed("the request was cancelled"))  # wakes a waiter, if any is left
            self._finish(job, "cancelled")

    def _step(self) -> None:
        assert self._pipeline is not None
        try:
            self._pipeline.step()
        except RuntimeError as exc:
            message = f"generation failed: {openvino_message(exc)}"
            log.error("%s", message)
            for job in self._active:
                job.post(Failed(message))
                self._finish(job, "failed")
            self._active.clear()
            return
        for job in list(self._active):
            self._collect(job)

    def _collect(self, job: Job) -> None:
        """Read the job's new tokens, post them as text, and retire it when it is over."""
        assert job.handle is not None and self._tokenizer is not None
        reason = ov_genai.GenerationFinishReason.NONE
        new: list[int] = []
        while job.handle.can_read():
            for output in job.handle.read().values():
                new.extend(output.generated_ids)
                reason = output.finish_reason
        status = job.handle.get_status()
        over = status != ov_genai.GenerationStatus.RUNNING or reason != ov_genai.GenerationFinishReason.NONE
        if new or over:
            self._post_text(job, new, over)
        if not over:
            return
        self._active.remove(job)
        if status == ov_genai.GenerationStatus.IGNORED:
            job.post(Failed("the request did not fit in the KV cache: lower max_tokens or retry later"))
            self._finish(job, "failed")
            return
        outcome = FINISH_REASONS.get(reason, "stop")
        job.post(Done(outcome, job.prompt_tokens, len(job.ids)))
        self._finish(job, outcome)

    def _post_text(self, job: Job, new: list[int], final: bool) -> None:
        """Post the text the new tokens add (decoding all ids keeps multi-token characters whole)."""
        assert self._tokenizer is not None
        if new:
            now = time.perf_counter()
            if job.last_token_at is None:
                self.metrics.observe_ttft(now - job.arrived)
            else:
                for _ in new:
                    self.metrics.observe_token_latency((now - job.last_token_at) / len(new))
            job.last_token_at = now
            job.ids.extend(new)
        text = self._tokenizer.decode(job.ids, skip_special_tokens=True)
        if text.endswith("\ufffd") and not final:  # a character cut in half: wait for the rest
            text = job.text
        if text != job.text or new:
            job.post(Delta(text[len(job.text) :], len(new)))
        job.text = text

    def _finish(self, job: Job, outcome: str) -> None:
        self.metrics.count_generation(outcome, job.prompt_tokens, len(job.ids))
        job.handle = None
