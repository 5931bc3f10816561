"""A request in flight on the engine: what the client asked for, and the events it hears back.

Errors name fields as GenerationOptions and GenerationRequest do (max_new_tokens, json_schema):
each API renames them in its own words.

The HTTP side awaits a Job's events: Accepted (or Failed) first, then Deltas, then Done. The engine
thread posts them through the job's event loop, the only way it talks to asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ovchat.compat import StrEnum
from ovchat.errors import OvchatError, RequestRejected, plain_message
from ovchat.prompt.request import GenerationRequest
from ovchat.prompt.tokens import TokenLogprob

if TYPE_CHECKING:
    import openvino_genai as ov_genai

    from ovchat.server.metrics import ModelMetrics


@dataclass(frozen=True)
class Accepted:
    prompt_tokens: int


@dataclass(frozen=True)
class Delta:
    """New text of a running answer, how many tokens it took, and their logprobs if asked for."""

    text: str
    tokens: int
    logprobs: tuple[TokenLogprob, ...] = ()


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


class Outcome(StrEnum):
    """How a generation ended, as the ovchat_generations metric labels it."""

    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # refused before it ran: the client's fault
    FAILED = "failed"  # it ran and broke, or the engine could not carry it


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
    logprobs: list[float] = field(default_factory=list)  # of the ids not yet posted (if asked for)
    thinking: bool = False  # the templated prompt opened a think block: the answer starts as reasoning
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

    def end(self, outcome: Outcome, metrics: ModelMetrics, last: Done | Failed | None = None) -> None:
        """Post the job's `last` event, if any, and count how it ended; its handle is let go."""
        if last is not None:
            self.post(last)
        metrics.count_generation(outcome, self.prompt_tokens, len(self.ids))
        self.handle = None

    def end_cancelled(self, metrics: ModelMetrics) -> None:
        """End a job whose client has gone; a Failed is still posted, so that a handler awaiting
        accepted() or the stream wakes up instead of waiting for the shutdown."""
        self.end(Outcome.CANCELLED, metrics, Failed(OvchatError("the request was cancelled")))


@dataclass(eq=False)
class TokenizerTask:
    """Work on the model's tokenizer or template (the token routes), run on the engine thread between
    steps like every other pipeline call; its result or OvchatError settles `future` on its loop."""

    work: Callable[[Any], Any]  # given the engine's Scheduler
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]

    def run(self, batch: Any) -> None:
        try:
            result, error = self.work(batch), None
        except OvchatError as exc:
            result, error = None, exc
        except Exception as exc:  # GenAI refused this input: it fails alone
            result, error = None, RequestRejected(f"the tokenizer refused the input: {plain_message(exc)}")
        self.settle(result, error)

    def settle(self, result: Any, error: OvchatError | None) -> None:
        """Hand the outcome to the task's event loop (called on the engine thread)."""

        def done() -> None:
            if self.future.done():  # the client left
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            self.loop.call_soon_threadsafe(done)
