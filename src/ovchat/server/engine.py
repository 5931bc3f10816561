"""The batching engine: one thread owns a ContinuousBatchingPipeline; answers stream back to asyncio.

Every pipeline call (chat template, tokenizing, add_request, step, read, cancel) runs on the
engine thread, so the event loop only parses, queues and streams, and the pipeline is never used
from two threads at once. The HTTP side submits a Request, sets a job's `cancelled` flag, and
awaits the job's events: Accepted (or Failed) first, then Deltas, then Done.

step() holds the GIL for its whole run, so a long prompt prefilled in one step would freeze the
event loop (measured: 1.4 s for 1,800 tokens on 2 cores). The scheduler therefore splits prompts
into chunks of `prefill_chunk` tokens (dynamic split-fuse), which bounds each stall to one chunk.

A step that throws leaves GenAI's pipeline unusable for good (every later step fails with
"already in scheduling phase"), so one bad request would fail every request after it. The engine
therefore rebuilds the pipeline, fails only the request that caused it (the one admitted just
before the failure; several suspects are re-admitted one at a time until the step fails again),
and continues every other answer where it stopped: its prompt plus the tokens already streamed
become the new prompt. While it rebuilds, /health answers 503; if rebuilding fails, or steps keep
failing, the engine reports itself failed and the server exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import openvino as ov
import openvino_genai as ov_genai

from ovchat.device import DeviceConfig
from ovchat.errors import GenerationError, ModelError, OvchatError, RequestRejected, Unavailable
from ovchat.model import ModelDir, TextTokenizer, weight_pages
from ovchat.options import GenerationOptions
from ovchat.rules import Message, answer_budget, finish_reason, plain_message
from ovchat.server.metrics import ServerMetrics

log = logging.getLogger("ovchat.server")
MAX_FAILED_STEPS = 5  # failed steps in a row (no step succeeding between them) before giving up
KV_BLOCK_TOKENS = 32  # tokens per KV-cache block of GenAI's CPU paged attention


@dataclass(frozen=True)
class EngineConfig:
    """How many requests run and wait, and how the scheduler batches them."""

    max_batch: int = 16  # sequences generated together (scheduler max_num_seqs)
    max_queue: int = 64  # requests waiting for a batch slot before new ones get 503
    prefill_chunk: int = 256  # tokens per step; bounds how long one step holds the GIL
    kv_cache_gb: int = 1  # the KV cache's upper bound: GenAI allocates it as blocks are first used
    kv_cache_tokens: int | None = None  # an exact capacity instead, in tokens (blocks of KV_BLOCK_TOKENS)
    prefix_cache: bool = True  # reuse the KV blocks of a prompt prefix seen before (multi-turn chats)
    max_tokens_ceiling: int | None = None  # the most tokens one answer may ask for


@dataclass(frozen=True)
class GenerationRequest:
    """What a client asks for: chat `messages` (templated on the engine thread) or a raw `prompt`."""

    options: GenerationOptions
    messages: list[Message] | None = None
    prompt: str | None = None
    json_schema: str | None = None
    max_tokens_name: str = "max_tokens"  # the client's name for the answer budget, for messages


@dataclass(frozen=True)
class Accepted:
    prompt_tokens: int


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
    error: OvchatError


Event = Accepted | Delta | Done | Failed


@dataclass(eq=False)
class Job:
    """One request in flight, and the queue its events go to."""

    id: int
    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.perf_counter)
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    cancelled: bool = False  # set by the HTTP side, acted on by the engine thread
    # Set on the engine thread:
    prompt_ids: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    budget: int = 0
    config: ov_genai.GenerationConfig | None = None
    handle: ov_genai.GenerationHandle | None = None  # kept referenced: dropping it stops the request
    ids: list[int] = field(default_factory=list)  # generated so far
    text: str = ""
    last_token_at: float | None = None
    fresh: bool = False  # admitted since the last step that succeeded
    suspect: bool = False  # was in a batch whose step failed: admitted alone until cleared

    async def accepted(self) -> int:
        """Wait until the engine has admitted the request; its prompt tokens, or the failure raised."""
        event = await self.events.get()
        if isinstance(event, Failed):
            raise event.error
        assert isinstance(event, Accepted)
        return event.prompt_tokens

    async def stream(self) -> AsyncIterator[Delta | Done]:
        """Deltas as they are generated, then Done; a failure raises its OvchatError."""
        while True:
            event = await self.events.get()
            if isinstance(event, Failed):
                raise event.error
            if isinstance(event, Accepted):
                continue
            yield event
            if isinstance(event, Done):
                return

    def post(self, event: Event) -> None:
        """Hand an event to the job's event loop (called on the engine thread)."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled = True


Opener = Callable[[], tuple[Any, TextTokenizer]]


class Engine:
    """Loads the model on its own thread, then runs step() while there is work.

    `opener` returns the pipeline and its tokenizer; the default opens a ContinuousBatchingPipeline
    on the model (the fast tests pass a stand-in to drive the scheduler in milliseconds)."""

    def __init__(
        self,
        model: ModelDir,
        device: DeviceConfig,
        config: EngineConfig,
        metrics: ServerMetrics,
        opener: Opener | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.config = config
        self.metrics = metrics
        self.state = "loading"  # loading | ready | recovering | draining | failed | stopped
        self.error: str | None = None
        self.restarts = 0
        self._opener = opener or self._open_pipeline
        self._pipeline: Any = None  # a ContinuousBatchingPipeline
        self._tokenizer: TextTokenizer | None = None
        self._pending: deque[Job] = deque()
        self._active: list[Job] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._abort = False
        self._failed_steps = 0
        self._next_id = 0
        self._thread = threading.Thread(target=self._run, name="ovchat-engine", daemon=True)
        self._on_fatal: Callable[[str], None] | None = None

    @property
    def running(self) -> int:
        return len(self._active)

    @property
    def context_length(self) -> int | None:
        """The most tokens one request can hold: the model's context, or less if the KV cache is smaller."""
        limits = [n for n in (self.model.context_length, self.config.kv_cache_tokens) if n]
        return min(limits) if limits else None

    @property
    def queued(self) -> int:
        return len(self._pending)

    def start(self, on_fatal: Callable[[str], None] | None = None) -> None:
        """Start loading; `on_fatal(message)` is called on the engine thread if the engine gives up."""
        self._on_fatal = on_fatal
        self._thread.start()

    def submit(self, request: GenerationRequest) -> Job:
        """Queue a request (call on the event loop); all the work on it happens on the engine thread."""
        with self._wake:
            if self._stopping:
                raise Unavailable("the server is shutting down: retry on another replica", "shutting_down")
            if self.state in ("loading", "failed", "stopped"):
                raise Unavailable(
                    "the model is still loading: retry shortly"
                    if self.state == "loading"
                    else "the model is not available",
                    "model_not_ready",
                )
            free_slots = max(0, self.config.max_batch - len(self._active))
            if len(self._pending) >= self.config.max_queue + free_slots:
                raise Unavailable(
                    f"the server is busy ({len(self._pending)} requests waiting): retry later", "queue_full"
                )
            job = Job(self._next_id, request, asyncio.get_running_loop())
            self._next_id += 1
            self._pending.append(job)
            self._wake.notify()
        return job

    def cancel(self, job: Job) -> None:
        """Stop `job` at the engine's next step (safe to call at any time, more than once)."""
        job.cancelled = True
        with self._wake:
            self._wake.notify()

    def drain(self) -> None:
        """Refuse new requests from now on (SIGTERM): /health turns 503 so balancers look elsewhere."""
        with self._wake:
            self._stopping = True
            if self.state == "ready":
                self.state = "draining"
            self._wake.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new work, let running jobs finish for up to `timeout` s, then cancel the rest."""
        self.drain()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort = True
            with self._wake:
                self._wake.notify()
            self._thread.join()
        if self.state != "failed":
            self.state = "stopped"

    # --- the engine thread -------------------------------------------------------------------

    def _load(self) -> None:
        self._pipeline, self._tokenizer = self._opener()

    def _open_pipeline(self) -> tuple[Any, TextTokenizer]:
        scheduler = ov_genai.SchedulerConfig()
        scheduler.max_num_seqs = self.config.max_batch
        scheduler.max_num_batched_tokens = max(self.config.prefill_chunk, self.config.max_batch)
        scheduler.dynamic_split_fuse = True
        if self.config.kv_cache_tokens:
            scheduler.num_kv_blocks = -(-self.config.kv_cache_tokens // KV_BLOCK_TOKENS)
            scheduler.cache_size = 0
        else:
            scheduler.cache_size = self.config.kv_cache_gb
        scheduler.enable_prefix_caching = self.config.prefix_cache
        props = self.device.properties(self.model.runtime, paged=True)
        props.pop("ATTENTION_BACKEND", None)  # continuous batching always uses paged attention
        pages = weight_pages(self.model, self.device).start(loading=True)  # see ovchat.paging
        try:
            pipeline = ov_genai.ContinuousBatchingPipeline(
                str(self.model.path), scheduler, self.device.device, props
            )
            pages.start()
            # The first inference pays the CPU plugin's kernel set-up and weight repacking: pay it
            # before /health says ready rather than in a client's first token, and let the
            # PageDropper finish with it instead of waiting for the first request.
            warm_up = ov_genai.GenerationConfig()
            warm_up.max_new_tokens = 1
            pipeline.generate(["Hi"], [warm_up])
        except RuntimeError as exc:
            raise ModelError(f"cannot load the model: {plain_message(exc)}") from None
        finally:
            pages.stop()
        return pipeline, TextTokenizer(pipeline.get_tokenizer())

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            if self.state not in ("failed", "stopped") and not (self._stopping and not self._active):
                self._give_up("the engine thread stopped unexpectedly")  # /health must not say ok

    def _serve(self) -> None:
        try:
            self._load()
        except OvchatError as exc:
            self._give_up(str(exc))
            return
        with self._wake:
            self.state = "draining" if self._stopping else "ready"
        log.info("model %s ready for continuous batching", self.model.name)
        while self._wait_for_work():
            try:
                self._admit()
                self._drop_cancelled()
                if self._active:
                    self._step()
            except Exception as exc:  # never let the engine thread die quietly: treat it as a failed step
                log.exception("unexpected error in the engine loop")
                self._recover(exc)
            if self.state == "failed":
                return
            time.sleep(0)  # step() held the GIL: let the event loop run before the next one

    def _give_up(self, message: str) -> None:
        """The engine cannot go on: say so (health, on_fatal), then fail whatever is left."""
        self.state, self.error = "failed", message
        log.error("%s", message)
        if self._on_fatal is not None:
            self._on_fatal(message)
        with self._wake:
            jobs = [*self._pending, *self._active]
            self._pending.clear()
        self._active = []
        for job in jobs:
            job.post(Failed(Unavailable("the model is not available", "model_not_ready")))
            self._finish(job, "failed")

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
        """Move waiting jobs into the batch; a suspect goes in alone, so a failing step names it."""
        assert self._pipeline is not None
        while self._pending and len(self._active) < self.config.max_batch:
            with self._wake:
                job = self._pending[0]
                fresh = any(j.fresh for j in self._active)
                if job.suspect and fresh:
                    return
                self._pending.popleft()
            if job.cancelled:
                self._finish(job, "cancelled")
                continue
            if job.config is None and not self._prepare(job):
                continue
            assert job.config is not None
            try:
                job.handle = self._pipeline.add_request(job.id, ov.Tensor([job.prompt_ids]), job.config)
            except Exception as exc:  # GenAI refused this request: it fails alone
                job.post(Failed(RequestRejected(f"the request cannot be generated: {plain_message(exc)}")))
                self._finish(job, "rejected")
                continue
            job.fresh = True
            self._active.append(job)
            if job.suspect:
                return

    def _prepare(self, job: Job) -> bool:
        """Template, tokenize and budget the request; on a problem it fails alone (False)."""
        assert self._pipeline is not None and self._tokenizer is not None
        request = job.request
        try:
            prompt = request.prompt
            if request.messages is not None:
                try:
                    prompt = self._tokenizer.chat_prompt(request.messages)
                except RuntimeError as exc:
                    raise RequestRejected(
                        f"the model's chat template refused the messages: {plain_message(exc)}",
                        param="messages",
                    ) from None
            assert prompt is not None
            job.prompt_ids = self._tokenizer.encode(prompt)
            job.prompt_tokens = len(job.prompt_ids)
            job.budget = answer_budget(
                job.prompt_tokens,
                self.context_length,
                request.options.max_new_tokens,
                strict=True,
                ceiling=self.config.max_tokens_ceiling,
                name=request.max_tokens_name,
            )
            job.config = request.options.to_config(self._pipeline.get_config(), job.budget)
            if request.json_schema is not None:
                job.config.structured_output_config = ov_genai.StructuredOutputConfig(
                    json_schema=request.json_schema
                )
            try:
                job.config.validate()  # GenAI's own checks, on this thread, before add_request
            except RuntimeError as exc:
                raise RequestRejected(f"invalid generation settings: {plain_message(exc)}") from None
        except OvchatError as exc:
            job.post(Failed(exc))
            self._finish(job, "rejected")
            return False
        except Exception as exc:  # a GenAI error on one request must not stop the engine
            log.warning("request %d refused: %s", job.id, plain_message(exc))
            job.post(Failed(RequestRejected(f"the request cannot be processed: {plain_message(exc)}")))
            self._finish(job, "rejected")
            return False
        job.post(Accepted(job.prompt_tokens))
        return True

    def _drop_cancelled(self) -> None:
        with self._wake:
            waiting = [job for job in self._pending if job.cancelled]
            for job in waiting:
                self._pending.remove(job)
        for job in waiting + [job for job in self._active if job.cancelled]:
            if job.handle is not None:
                job.handle.cancel()
                self._active.remove(job)
            job.post(Failed(OvchatError("the request was cancelled")))  # wakes a waiter, if any is left
            self._finish(job, "cancelled")

    def _step(self) -> None:
        assert self._pipeline is not None
        try:
            self._pipeline.step()
        except Exception as exc:
            self._recover(exc)
            return
        self._failed_steps = 0
        self.metrics.count_step()
        for job in list(self._active):
            job.fresh = False
            self._collect(job)

    def _collect(self, job: Job) -> None:
        """Read the job's new tokens, post them as text, and retire it when it is over."""
        assert job.handle is not None
        reason = ov_genai.GenerationFinishReason.NONE
        new: list[int] = []
        while job.handle.can_read():
            for output in job.handle.read().values():
                new.extend(output.generated_ids)
                reason = output.finish_reason
        status = job.handle.get_status()
        over = status != ov_genai.GenerationStatus.RUNNING or reason != ov_genai.GenerationFinishReason.NONE
        if new:
            job.suspect = False  # it got through a step: it is not what breaks the pipeline
        if new or over:
            self._post_text(job, new, over)
        if not over:
            return
        self._active.remove(job)
        if status == ov_genai.GenerationStatus.IGNORED:
            job.post(
                Failed(
                    Unavailable(
                        "the request does not fit in the KV cache now: retry later, or lower max_tokens",
                        "kv_cache_full",
                    )
                )
            )
            self._finish(job, "failed")
            return
        outcome = finish_reason(reason.name)
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
        text = self._tokenizer.decode(job.ids)
        if text.endswith("\ufffd") and not final:  # a character cut in half: wait for the rest
            text = job.text
        if text != job.text or new:
            job.post(Delta(text[len(job.text) :], len(new)))
        job.text = text

    def _recover(self, exc: Exception) -> None:
        """A step failed: blame the job(s) admitted just before it, rebuild, continue the others."""
        message = plain_message(exc)
        self._failed_steps += 1
        self.metrics.count_restart()
        fresh = [job for job in self._active if job.fresh]
        suspects = fresh or list(self._active)  # nothing new went in: any running job may be at fault
        log.error(
            "generation step failed (%s); %d request(s) suspected; rebuilding the pipeline",
            message,
            len(suspects),
        )
        retry: list[Job] = []
        for job in self._active:
            job.handle = None
            if job in suspects and (len(suspects) == 1 or job.suspect):
                self._fail_culprit(job, message)
            elif job.request.json_schema is not None and job.ids:
                # Its grammar would restart from the top: it cannot be continued, only retried.
                job.post(
                    Failed(
                        Unavailable("the server restarted its engine: retry the request", "engine_restart")
                    )
                )
                self._finish(job, "failed")
            else:
                job.suspect = job.suspect or job in suspects
                retry.append(self._continuation(job))
        self._active = []
        if self._failed_steps > MAX_FAILED_STEPS:
            self._give_up(f"the engine failed {self._failed_steps} steps in a row: {message}")
            return
        with self._wake:
            self._pending.extendleft(reversed(retry))  # ahead of new arrivals, in their order
            self.state = "recovering"
        self._pipeline = None
        gc.collect()  # the old pipeline's memory goes before the new one loads
        try:
            self._load()
        except OvchatError as exc:
            self._give_up(f"the engine could not be rebuilt: {exc}")
            return
        self.restarts += 1
        with self._wake:
            self.state = "draining" if self._stopping else "ready"

    def _fail_culprit(self, job: Job, message: str) -> None:
        if job.request.json_schema is not None:
            error: OvchatError = RequestRejected(
                f"the response_format schema cannot be used: {message}", param="response_format"
            )
        else:
            error = GenerationError(f"generation failed: {message}")
        log.warning("request %d failed the engine step: %s", job.id, message)
        job.post(Failed(error))
        self._finish(job, "failed")

    def _continuation(self, job: Job) -> Job:
        """Set `job` up to resume: what it generated so far joins its prompt."""
        if job.ids and job.config is not None:
            job.prompt_ids = job.prompt_ids + job.ids[len(job.prompt_ids) - job.prompt_tokens :]
            job.config.max_new_tokens = max(1, job.budget - len(job.ids))
        job.fresh = False
        return job

    def _finish(self, job: Job, outcome: str) -> None:
        self.metrics.count_generation(outcome, job.prompt_tokens, len(job.ids))
        job.handle = None


def describe(engine: Engine) -> dict[str, Any]:
    """The engine's state for /health."""
    return {"status": "ok" if engine.state == "ready" else engine.state, "restarts": engine.restarts}
