"""The engine thread over GenAI's ContinuousBatchingPipeline; answers stream back to asyncio.

Every pipeline call (chat template, tokenizing, add_request, step, read, cancel) runs on the
engine thread, so the event loop only parses, queues and streams, and the pipeline is never used
from two threads at once. The HTTP side submits a GenerationRequest, cancels a Job, and awaits the
job's events (jobs); the token routes' work goes through tokenize, detokenize and render.

The parts, each in a module of its own: where the engine is (lifecycle), the queue of waiting jobs
(queue), the batch that is stepped (scheduler), the text of each answer (detokenizer), and who is
blamed and who continues when a step fails (recovery). This facade loads the pipeline and runs the
loop: while it rebuilds the pipeline /health answers 503; if rebuilding fails, or steps keep
failing, the engine reports itself failed and the server exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import openvino_genai as ov_genai

from ovchat.errors import OvchatError, RequestRejected, Unavailable, plain_message
from ovchat.model.device import DeviceConfig
from ovchat.model.files import ModelFiles
from ovchat.model.pipeline import TextTokenizer, open_pipeline, request_defaults
from ovchat.prompt.messages import Message
from ovchat.prompt.request import GenerationRequest
from ovchat.prompt.template import ToolFormat
from ovchat.prompt.tokens import Piece
from ovchat.prompt.tools.use import ToolUse
from ovchat.server.engine.jobs import Failed, Job, Outcome, TokenizerTask
from ovchat.server.engine.lifecycle import EngineState, Lifecycle
from ovchat.server.engine.queue import JobQueue
from ovchat.server.engine.recovery import MAX_FAILED_STEPS, triage
from ovchat.server.engine.scheduler import EngineTokenizer, Scheduler
from ovchat.server.engine.token_bytes import TokenBytes
from ovchat.server.metrics import ModelMetrics
from ovchat.server.settings import KV_BLOCK_TOKENS, EngineConfig

log = logging.getLogger("ovchat.server")
Result = TypeVar("Result")


def scheduler_config(config: EngineConfig) -> ov_genai.SchedulerConfig:
    """GenAI's SchedulerConfig for these settings."""
    scheduler = ov_genai.SchedulerConfig()
    scheduler.max_num_seqs = config.max_batch
    # step() holds the GIL for its whole run, so a long prompt prefilled in one step would freeze
    # the event loop (measured: 1.4 s for 1,800 tokens on 2 cores): prompts go in chunks of
    # `prefill_chunk` tokens (dynamic split-fuse), which bounds each stall to one chunk.
    scheduler.max_num_batched_tokens = max(config.prefill_chunk, config.max_batch)
    scheduler.dynamic_split_fuse = True
    if config.kv_cache_tokens:
        scheduler.num_kv_blocks = -(-config.kv_cache_tokens // KV_BLOCK_TOKENS)
        scheduler.cache_size = 0
    else:
        scheduler.cache_size = config.kv_cache_gb
    scheduler.enable_prefix_caching = config.prefix_cache
    return scheduler


Opener = Callable[[], tuple[Any, EngineTokenizer]]


class Engine:
    """Loads the model on its own thread, then runs step() while there is work.

    `opener` returns the pipeline and its tokenizer; the default opens a ContinuousBatchingPipeline
    on the model (the fast tests pass a stand-in to drive the scheduler in milliseconds)."""

    def __init__(
        self,
        model: ModelFiles,
        device: DeviceConfig,
        config: EngineConfig,
        metrics: ModelMetrics,
        opener: Opener | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.config = config
        self.metrics = metrics
        self.lifecycle = Lifecycle()
        self.restarts = 0
        self._opener = opener or self._open_pipeline
        self._queue = JobQueue(config.max_queue, self.lifecycle)
        self._batch: Scheduler | None = None  # one per pipeline, made on the engine thread
        self._token_bytes = TokenBytes(None if model.is_gguf else model.path)  # kept across rebuilds
        self._failed_steps = 0
        self.tool_format: ToolFormat | None = None  # known once loaded
        self.thinks: bool | None = None  # whether the template writes a <think> block; known once loaded
        self._thread = threading.Thread(target=self._run, name="ovchat-engine", daemon=True)
        self._on_fatal: Callable[[str], None] | None = None

    @property
    def state(self) -> EngineState:
        return self.lifecycle.state

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def context_length(self) -> int | None:
        """The most tokens one request can hold: the model's context, or less if the KV cache is smaller."""
        limits = [n for n in (self.model.context_length, self.config.kv_cache_tokens) if n]
        return min(limits) if limits else None

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def _running(self) -> list[Job]:
        return self._batch.running if self._batch is not None else []

    def start(self, on_fatal: Callable[[str], None] | None = None) -> None:
        """Start loading; `on_fatal(message)` is called on the engine thread if the engine gives up."""
        self._on_fatal = on_fatal
        self._thread.start()

    def submit(self, request: GenerationRequest) -> Job:
        """Queue a request (call on the event loop); all the work on it happens on the engine thread."""
        return self._queue.put(request, free_slots=max(0, self.config.max_batch - self.running))

    def cancel(self, job: Job) -> None:
        """Stop `job` at the engine's next step (safe to call at any time, more than once)."""
        job.cancelled = True
        self._queue.notify()

    def drain(self) -> None:
        """Refuse new requests from now on (SIGTERM): /health turns 503 so balancers look elsewhere."""
        self.lifecycle.drain()

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new work, let running jobs finish for up to `timeout` s, then cancel the rest."""
        self.lifecycle.close(self._thread, timeout)

    # --- the token routes' work, on the engine thread between two steps -----------------------------

    async def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        """The ids of `text` as a prompt's budget counts them (with the BOS and such if `add_special`)."""
        return await self._on_tokenizer(lambda batch: batch.tokenizer.encode(text, add_special=add_special))

    async def pieces(self, ids: list[int]) -> list[Piece]:
        """Each token of `ids` on its own: its text, or its bytes when it holds part of a character."""
        return await self._on_tokenizer(lambda batch: batch.token_bytes.pieces(batch.tokenizer, ids))

    async def detokenize(self, ids: list[int], param: str = "tokens") -> str:
        """The text of `ids`, special tokens kept (so it round-trips tokenize); an id outside the
        vocabulary is the request's error, naming `param`."""

        def work(batch: Scheduler) -> str:
            vocabulary = batch.token_bytes.vocab_size()
            for number, token in enumerate(ids):
                if token < 0 or (vocabulary is not None and token >= vocabulary):
                    raise RequestRejected(
                        f"{param}[{number}]: {token} is not a token of this model "
                        f"(ids go from 0 to {(vocabulary or 2**31) - 1})",
                        param=param,
                    )
            return batch.tokenizer.decode(ids, keep_special=True)

        return await self._on_tokenizer(work)

    async def render(
        self, messages: list[Message], tools: ToolUse | None = None, context: dict[str, Any] | None = None
    ) -> str:
        """The prompt the chat template makes of `messages`, as a chat answer reads it."""

        def work(batch: Scheduler) -> str:
            try:
                return batch.tokenizer.render(messages, tools, context)
            except RuntimeError as exc:
                raise RequestRejected(
                    f"the model's chat template refused the messages: {plain_message(exc)}", param="messages"
                ) from None

        return await self._on_tokenizer(work)

    async def _on_tokenizer(self, work: Callable[[Scheduler], Result]) -> Result:
        """`work` run on the engine thread between two steps, with the pipeline's tokenizer and chat
        template: the tokenizer is never used from two threads at once."""
        loop = asyncio.get_running_loop()
        task = TokenizerTask(work, loop, loop.create_future())
        self._queue.put_task(task)
        result: Result = await task.future
        return result

    # --- the engine thread -------------------------------------------------------------------

    def _open_pipeline(self) -> tuple[Any, TextTokenizer]:
        # Warm before /health says ready, so that no client's first tokens pay the set-up, and the
        # PageDropper finishes with it instead of waiting for the first request.
        kind = ov_genai.ContinuousBatchingPipeline
        pipeline, _ = open_pipeline(kind, self.model, self.device, scheduler_config(self.config), warm=True)
        return pipeline, TextTokenizer(pipeline.get_tokenizer())

    def _load(self) -> None:
        pipeline, tokenizer = self._opener()
        self._batch = Scheduler(
            pipeline,
            tokenizer,
            self.metrics,
            self.config.max_batch,
            self.context_length,
            self.config.max_tokens_ceiling,
            self._token_bytes,
            request_defaults(pipeline, self.model, self.device) if self.device.prompt_lookup else None,
        )
        self.tool_format, self.thinks = tokenizer.tool_format, tokenizer.thinks

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            done = self.lifecycle.stopping and not self._running
            if self.state not in (EngineState.FAILED, EngineState.STOPPED) and not done:
                self._give_up("the engine thread stopped unexpectedly")  # /health must not say ok

    def _serve(self) -> None:
        try:
            self._load()
        except OvchatError as exc:
            self._give_up(str(exc))
            return
        self.lifecycle.loaded()
        log.info("model %s ready for continuous batching", self.model.name)
        while self._queue.wait_for_work(self._running):
            try:
                self._turn()
            except Exception as exc:  # never let the engine thread die quietly: treat it as a failed step
                log.exception("unexpected error in the engine loop")
                self._recover(exc)
            if self.state == EngineState.FAILED:
                return
            time.sleep(0)  # step() held the GIL: let the event loop run before the next one

    def _turn(self) -> None:
        """Run the tokenizer tasks, admit, drop the cancelled, step once."""
        assert self._batch is not None
        for task in self._queue.take_tasks():
            task.run(self._batch)
        self._batch.admit(self._queue)
        self._batch.drop_cancelled(self._queue)
        if self._batch.running:
            failure = self._batch.step()
            if failure is None:
                self._failed_steps = 0
            else:
                self._recover(failure)

    def _give_up(self, message: str) -> None:
        """The engine cannot go on: say so (health, on_fatal), then fail whatever is left."""
        self.lifecycle.failed(message)
        log.error("%s", message)
        if self._on_fatal is not None:
            self._on_fatal(message)
        jobs = [*self._queue.take_all(), *self._running]
        self._running.clear()
        gone = Unavailable("the model is not available", "model_not_ready")
        for job in jobs:
            job.end(Outcome.FAILED, self.metrics, Failed(gone))
        for task in self._queue.take_tasks():
            task.settle(None, gone)

    def _recover(self, exc: Exception) -> None:
        """A step failed: blame the job(s) admitted just before it, rebuild, continue the others."""
        message = plain_message(exc)
        self._failed_steps += 1
        self.metrics.count_restart()
        sorted_out = triage(self._running, message)
        self._running.clear()
        for job, error in sorted_out.failed:
            job.end(Outcome.FAILED, self.metrics, Failed(error))
        # Back in the queue before anything else: giving up fails the queue, so they hear it too.
        self._queue.put_back(sorted_out.retry)
        if self._failed_steps > MAX_FAILED_STEPS:
            self._give_up(f"the engine failed {self._failed_steps} steps in a row: {message}")
            return
        self.lifecycle.recovering()
        self._batch = None
        gc.collect()  # the old pipeline's memory goes before the new one loads
        try:
            self._load()
        except OvchatError as exc:
            self._give_up(f"the engine could not be rebuilt: {exc}")
            return
        self.restarts += 1
        self.lifecycle.loaded()
