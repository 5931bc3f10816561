"""The batch on the pipeline: admitting waiting jobs, stepping, and reading what each step made.

Runs on the engine thread only: the pipeline is never used from two threads at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import openvino_genai as ov_genai

from ovchat.errors import OvchatError, RequestRejected, Unavailable, plain_message
from ovchat.model.config import generation_config
from ovchat.model.pipeline import token_input
from ovchat.prompt.endings import finish_reason
from ovchat.prompt.plan import PromptTokenizer, plan
from ovchat.prompt.template import ToolFormat
from ovchat.server.engine.detokenizer import post_new_text
from ovchat.server.engine.jobs import Accepted, Done, Failed, Job, Outcome
from ovchat.server.engine.queue import JobQueue
from ovchat.server.engine.token_bytes import TokenBytes
from ovchat.server.metrics import ModelMetrics


class EngineTokenizer(PromptTokenizer, Protocol):
    """The model's tokenizer as the engine uses it (ovchat.model.pipeline.TextTokenizer; the fast
    tests' stand-in): planning, decoding, and what its template can do."""

    tool_format: ToolFormat
    thinks: bool

    def encode(self, text: str, *, add_special: bool = False) -> list[int]: ...

    def decode(self, ids: list[int], *, keep_special: bool = False) -> str: ...


log = logging.getLogger("ovchat.server")


class Scheduler:
    """Moves jobs from the queue into the pipeline's batch of at most `max_batch` and steps it."""

    def __init__(
        self,
        pipeline: Any,  # a ContinuousBatchingPipeline, or the fast tests' stand-in
        tokenizer: EngineTokenizer,
        metrics: ModelMetrics,
        max_batch: int,
        context_length: int | None,
        max_tokens_ceiling: int | None,
        token_bytes: TokenBytes | None = None,
        base_config: Callable[[], Any] | None = None,
    ) -> None:
        self.pipeline = pipeline
        # A fresh copy of the config every request starts from (model.request_defaults).
        self.base_config = base_config or pipeline.get_config
        self.tokenizer = tokenizer
        self.metrics = metrics
        self.max_batch = max_batch
        self.context_length = context_length
        self.max_tokens_ceiling = max_tokens_ceiling
        self.running: list[Job] = []
        self.token_bytes = token_bytes or TokenBytes(None)

    def admit(self, queue: JobQueue) -> None:
        """Move waiting jobs into the batch; a suspect goes in alone, so a failing step names it."""
        while len(self.running) < self.max_batch and (job := queue.next(self.running)) is not None:
            if job.cancelled:
                job.end_cancelled(self.metrics)
                continue
            if job.config is None and not self._prepare(job):
                continue
            assert job.config is not None
            try:
                job.handle = self.pipeline.add_request(job.id, token_input(job.prompt_ids), job.config)
            except Exception as exc:  # GenAI refused this request: it fails alone
                error = RequestRejected(f"the request cannot be generated: {plain_message(exc)}")
                job.end(Outcome.REJECTED, self.metrics, Failed(error))
                continue
            job.fresh = True
            self.running.append(job)
            if job.suspect:
                return

    def _prepare(self, job: Job) -> bool:
        """Template, tokenize and budget the request; on a problem it fails alone (False)."""
        try:
            self._configure(job)
        except OvchatError as exc:
            job.end(Outcome.REJECTED, self.metrics, Failed(exc))
            return False
        except Exception as exc:  # a GenAI error on one request must not stop the engine
            log.warning("request %d refused: %s", job.id, plain_message(exc))
            error = RequestRejected(f"the request cannot be processed: {plain_message(exc)}")
            job.end(Outcome.REJECTED, self.metrics, Failed(error))
            return False
        job.post(Accepted(job.prompt_tokens))
        return True

    def _configure(self, job: Job) -> None:
        """The request planned and mapped as ChatSession's are (ovchat.prompt.plan, ovchat.model.config),
        taken as sent: one that does not fit is refused, never trimmed."""
        request = job.request
        planned = plan(
            request, self.tokenizer, self.context_length, fit=False, ceiling=self.max_tokens_ceiling
        )
        job.thinking = planned.thinking
        job.prompt_ids, job.prompt_tokens, job.budget = planned.ids, len(planned.ids), planned.budget
        job.config = generation_config(request, self.base_config(), planned.budget)

    def drop_cancelled(self, queue: JobQueue) -> None:
        """End the jobs whose clients have gone, waiting or running."""
        for job in queue.take_cancelled() + [job for job in self.running if job.cancelled]:
            if job.handle is not None:
                job.handle.cancel()
                self.running.remove(job)
            job.end_cancelled(self.metrics)

    def step(self) -> Exception | None:
        """Run one step and read its tokens; the exception if the step failed (nothing read)."""
        try:
            self.pipeline.step()
        except Exception as exc:
            return exc
        self.metrics.count_step()
        for job in list(self.running):
            job.fresh = False
            self._collect(job)
        return None

    def _collect(self, job: Job) -> None:
        """Read the job's new tokens, post them as text, and retire it when it is over."""
        assert job.handle is not None
        reason = ov_genai.GenerationFinishReason.NONE
        new: list[int] = []
        while job.handle.can_read():
            for output in job.handle.read().values():
                new.extend(output.generated_ids)
                if job.request.logprobs:
                    job.logprobs.extend(output.generated_log_probs)
                reason = output.finish_reason
        status = job.handle.get_status()
        over = status != ov_genai.GenerationStatus.RUNNING or reason != ov_genai.GenerationFinishReason.NONE
        if new:
            job.suspect = False  # it got through a step: it is not what breaks the pipeline
            self._time_tokens(job, len(new))
            job.ids.extend(new)
        if new or over:
            post_new_text(job, self.tokenizer, new, over, self.token_bytes if job.request.logprobs else None)
        if not over:
            return
        self.running.remove(job)
        if status == ov_genai.GenerationStatus.IGNORED:
            full = Unavailable(
                "the request does not fit in the KV cache now: retry later, or lower max_new_tokens",
                "kv_cache_full",
            )
            job.end(Outcome.FAILED, self.metrics, Failed(full))
            return
        ended = finish_reason(reason.name)
        job.end(Outcome(ended), self.metrics, Done(ended, job.prompt_tokens, len(job.ids)))

    def _time_tokens(self, job: Job, count: int) -> None:
        now = time.perf_counter()
        if job.last_token_at is None:
            self.metrics.observe_ttft(now - job.arrived)
        else:
            for _ in range(count):
                self.metrics.observe_token_latency((now - job.last_token_at) / count)
        job.last_token_at = now
