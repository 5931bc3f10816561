"""The engine's scheduling and recovery, in milliseconds, over a stand-in for GenAI's pipeline.

The stand-in behaves as ContinuousBatchingPipeline does when a request breaks a step: that step
and every later one throw. The end-to-end proof with the real pipeline is in test_server_faults.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openvino_genai as ov_genai
import pytest

from ovchat.errors import ContextError, GenerationError, OvchatError, RequestRejected, Unavailable
from ovchat.model.device import DeviceConfig
from ovchat.model.files import ModelFiles
from ovchat.options import GenerationOptions
from ovchat.prompt.request import GenerationRequest
from ovchat.prompt.template import ToolFormat
from ovchat.server.engine.engine import Engine
from ovchat.server.engine.jobs import Delta, Done, Job
from ovchat.server.engine.lifecycle import EngineState
from ovchat.server.engine.recovery import MAX_FAILED_STEPS
from ovchat.server.metrics import ServerMetrics
from ovchat.server.models import ServedModels
from ovchat.server.settings import EngineConfig

POISON = "poison"


ANSWER_IDS = 1000  # the stand-in model answers with ids 1000 + n, shown as the letters a, b, c, ...


class LetterTokenizer:
    """One token per character of the prompt; answer ids decode to letters; no template to speak
    tools in (the messages' contents joined, then ">")."""

    tool_format = ToolFormat.NONE
    thinks = False

    def encode(self, text: str, *, add_special: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def render(self, messages: list[dict[str, Any]], tools: Any = None, context: Any = None) -> str:
        return "".join(m["content"] for m in messages) + ">"

    def decode(self, ids: list[int], *, keep_special: bool = False) -> str:
        return "".join(chr(97 + (i - ANSWER_IDS) % 26) if i >= ANSWER_IDS else chr(i) for i in ids)


@dataclass
class Output:
    generated_ids: list[int]
    finish_reason: ov_genai.GenerationFinishReason
    generated_log_probs: list[float]


def stand_in_logprob(token: int) -> float:
    """The stand-in model's logprob for each answer token: -0.5 for a, -1.0 for b, ..."""
    return -0.5 * (token - ANSWER_IDS + 1)


@dataclass
class Handle:
    """Answers with the letters a, b, c, ... until max_new_tokens."""

    prompt: list[int]
    limit: int
    logprobs: bool = False
    made: int = 0
    unread: list[int] = field(default_factory=list)
    status: ov_genai.GenerationStatus = ov_genai.GenerationStatus.RUNNING
    finish_read: bool = False

    def can_read(self) -> bool:
        return bool(self.unread) or (
            self.status == ov_genai.GenerationStatus.FINISHED and not self.finish_read
        )

    def read(self) -> dict[int, Output]:
        done = self.status == ov_genai.GenerationStatus.FINISHED
        self.finish_read = done
        reason = ov_genai.GenerationFinishReason.LENGTH if done else ov_genai.GenerationFinishReason.NONE
        logprobs = [stand_in_logprob(i) for i in self.unread] if self.logprobs else [0.0] * len(self.unread)
        out, self.unread = Output(self.unread, reason, logprobs), []
        return {0: out}

    def get_status(self) -> ov_genai.GenerationStatus:
        return self.status

    def cancel(self) -> None:
        self.status = ov_genai.GenerationStatus.CANCEL


class Pipeline:
    """Steps every running request by one token; a prompt containing POISON breaks it for good."""

    opened = 0

    def __init__(self, fail_always: bool = False) -> None:
        Pipeline.opened += 1
        self.handles: list[Handle] = []
        self.broken = fail_always

    def get_config(self) -> ov_genai.GenerationConfig:
        return ov_genai.GenerationConfig()

    def add_request(self, _: int, ids: Any, config: ov_genai.GenerationConfig) -> Handle:
        if "refused" in LetterTokenizer().decode([int(i) for i in ids.data[0]]):
            raise RuntimeError("Check 'x' failed at src/cpp/src/generation_config.cpp:343:\nrefused by GenAI")
        handle = Handle([int(i) for i in ids.data[0]], config.max_new_tokens, config.logprobs > 0)
        self.handles.append(handle)
        return handle

    def step(self) -> None:
        running = [h for h in self.handles if h.status == ov_genai.GenerationStatus.RUNNING]
        if self.broken or any(POISON in LetterTokenizer().decode(h.prompt) for h in running):
            self.broken = True
            raise RuntimeError("/home/ci/xgrammar-src/cpp/x.cc:1: Internal error: in scheduling phase")
        for handle in running:
            # continuing after a restart: the answer so far is at the end of the prompt
            position = handle.made + sum(1 for i in handle.prompt if i >= ANSWER_IDS)
            handle.unread.append(ANSWER_IDS + position)
            handle.made += 1
            if handle.made >= handle.limit:
                handle.status = ov_genai.GenerationStatus.FINISHED


def make_engine(config: EngineConfig | None = None, fail_always: bool = False) -> tuple[Engine, list[str]]:
    fatal: list[str] = []
    model = ModelFiles(Path("/nowhere"), False, 1000)
    engine = Engine(
        model,
        DeviceConfig(cache_dir=""),
        config or EngineConfig(),
        ServerMetrics().for_model("m"),
        opener=lambda: (Pipeline(fail_always), LetterTokenizer()),
    )
    engine.start(fatal.append)
    while engine.state == EngineState.LOADING:
        threading.Event().wait(0.001)
    return engine, fatal


def serve_engine(engine: Engine, metrics: ServerMetrics | None = None, load: bool = True) -> ServedModels:
    """The server's models over one stand-in engine, served as "m" (loaded, unless `load` is False)."""
    served = ServedModels(
        {"m": engine.model},
        engine.device,
        engine.config,
        metrics or ServerMetrics(),
        make_engine=lambda _: engine,
    )
    if load:
        served.pool.load("m")
    return served


def ask(text: str, tokens: int = 8, schema: str | None = None) -> GenerationRequest:
    options = GenerationOptions(max_new_tokens=tokens)
    return GenerationRequest(options, messages=[{"role": "user", "content": text}], json_schema=schema)


async def answer(engine: Engine, request: GenerationRequest) -> tuple[str, Done | OvchatError]:
    try:
        job = engine.submit(request)
    except OvchatError as exc:
        return "", exc
    return await collect(job)


def run(coro: Callable[[], Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro(), timeout=10))


def test_requests_batch_and_finish_with_their_token_budgets() -> None:
    engine, _ = make_engine()

    async def go() -> list[tuple[str, Done | OvchatError]]:
        return await asyncio.gather(answer(engine, ask("one", 3)), answer(engine, ask("two", 5)))

    (first, done1), (second, done2) = run(go)
    assert (first, second) == ("abc", "abcde")
    assert isinstance(done1, Done) and (done1.finish_reason, done1.completion_tokens) == ("length", 3)
    assert isinstance(done2, Done) and done2.prompt_tokens == len("two>")
    engine.close()


def test_a_request_that_breaks_the_pipeline_fails_alone_and_the_others_continue() -> None:
    engine, fatal = make_engine()

    async def go() -> list[tuple[str, Done | OvchatError]]:
        healthy = asyncio.create_task(answer(engine, ask("healthy", 12)))
        await asyncio.sleep(0.05)  # the healthy answer is running when the poison arrives
        poisoned = asyncio.create_task(answer(engine, ask(POISON, 12, schema='{"type": "object"}')))
        later = asyncio.create_task(answer(engine, ask("later", 4)))
        return list(await asyncio.gather(healthy, poisoned, later))

    (healthy, healthy_end), (_, poison_end), (later, later_end) = run(go)
    assert isinstance(poison_end, RequestRejected) and poison_end.param == "json_schema"
    assert ".cc" not in str(poison_end) and "Internal error" in str(poison_end)
    # the healthy answer went on where it stopped: every letter once, in order, all 12 tokens
    assert healthy == "abcdefghijkl" and isinstance(healthy_end, Done) and healthy_end.completion_tokens == 12
    assert later == "abcd" and isinstance(later_end, Done)
    assert engine.restarts >= 1 and engine.state == "ready" and not fatal
    engine.close()


def test_suspects_admitted_together_are_retried_one_at_a_time() -> None:
    engine, _ = make_engine(EngineConfig(max_batch=4))

    async def go() -> list[tuple[str, Done | OvchatError]]:
        # all three arrive in the same instant, so the failing step cannot tell them apart
        return list(await asyncio.gather(*(answer(engine, ask(t, 4)) for t in ("x", POISON, "y"))))

    results = run(go)
    assert [type(end).__name__ for _, end in results] == ["Done", "GenerationError", "Done"]
    assert results[0][0] == results[2][0] == "abcd"
    engine.close()


def test_an_engine_whose_every_step_fails_gives_up_and_says_so() -> None:
    engine, fatal = make_engine(fail_always=True)

    async def go() -> list[tuple[str, Done | OvchatError]]:
        return [await answer(engine, ask(f"q{i}", 3)) for i in range(MAX_FAILED_STEPS + 2)]

    results = run(go)
    assert all(isinstance(end, OvchatError) for _, end in results)
    assert engine.state == "failed" and fatal and "steps in a row" in fatal[0]
    with pytest.raises(Unavailable):
        engine.submit(ask("after"))
    engine.close()


def test_context_and_ceiling_errors_fail_before_acceptance() -> None:
    engine, _ = make_engine(EngineConfig(max_tokens_ceiling=50))

    async def go() -> list[tuple[str, Done | OvchatError]]:
        return [await answer(engine, ask("x" * 999, None)), await answer(engine, ask("x", 51))]  # type: ignore[arg-type]

    (_, too_long), (_, too_many) = run(go)
    assert isinstance(too_long, ContextError) and isinstance(too_many, OvchatError)
    assert "at most 50" in str(too_many)
    engine.close()


def test_a_full_queue_is_unavailable_with_a_code() -> None:
    engine, _ = make_engine(EngineConfig(max_batch=1, max_queue=0))

    async def go() -> str:
        with engine._queue.wake:  # the engine thread cannot admit "a" while this lock is held
            first = engine.submit(ask("a"))
            with pytest.raises(Unavailable) as caught:
                engine.submit(ask("b"))  # "a" holds the one batch slot's place in the queue
            engine.cancel(first)
        return caught.value.code

    assert run(go) == "queue_full"
    engine.close()


def test_a_draining_engine_refuses_new_work_and_finishes_the_rest() -> None:
    engine, _ = make_engine()

    async def go() -> tuple[str, Done | OvchatError]:
        running = asyncio.create_task(answer(engine, ask("keep", 6)))
        await asyncio.sleep(0.02)
        engine.drain()
        with pytest.raises(Unavailable, match="shutting down"):
            engine.submit(ask("late"))
        return await running

    text, end = run(go)
    assert text == "abcdef" and isinstance(end, Done)
    engine.close()
    assert engine.state == "stopped"


def test_generation_error_messages_have_no_paths() -> None:
    error = GenerationError("generation failed: x")
    assert "failed" in str(error)


def test_a_request_genai_refuses_to_add_fails_alone_and_the_engine_lives_on() -> None:
    engine, fatal = make_engine()

    async def go() -> list[tuple[str, Done | OvchatError]]:
        return list(await asyncio.gather(answer(engine, ask("refused", 3)), answer(engine, ask("fine", 3))))

    (_, refused), (text, done) = run(go)
    assert (
        isinstance(refused, RequestRejected)
        and "refused by GenAI" in str(refused)
        and ".cpp" not in str(refused)
    )
    assert text == "abc" and isinstance(done, Done)
    assert engine.state == "ready" and not fatal
    engine.close()


def test_a_job_cancelled_while_queued_still_hears_that_it_ended() -> None:
    engine, _ = make_engine()

    async def go() -> OvchatError | None:
        with engine._queue.wake:  # the engine thread cannot admit the job before it is cancelled
            job = engine.submit(ask("gone"))
            engine.cancel(job)
        try:
            await job.accepted()  # a handler still waiting here must wake up, not wait for shutdown
        except OvchatError as exc:
            return exc
        return None

    error = run(go)
    assert error is not None and "cancelled" in str(error)
    assert engine.state == "ready"
    engine.close()


def test_jobs_picked_to_continue_hear_the_failure_when_the_engine_gives_up() -> None:
    engine, fatal = make_engine(EngineConfig(max_batch=4), fail_always=True)

    async def go() -> list[tuple[str, Done | OvchatError]]:
        # Submitted in one instant: the first four fill the batch and, retried one at a time, use up
        # the failed steps; the next four go in together, are picked to continue, and the engine
        # gives up on that very step.
        with engine._queue.wake:
            jobs = [engine.submit(ask(f"q{i}", 3)) for i in range(8)]
        return list(await asyncio.gather(*(collect(job) for job in jobs)))

    results = run(go)
    assert all(isinstance(end, OvchatError) for _, end in results)
    assert [isinstance(end, Unavailable) for _, end in results[4:]] == [True] * 4
    assert engine.state == "failed" and fatal
    engine.close()


async def collect(job: Job) -> tuple[str, Done | OvchatError]:
    text = ""
    try:
        await job.accepted()
        async for event in job.stream():
            if isinstance(event, Delta):
                text += event.text
            else:
                return text, event
    except OvchatError as exc:
        return text, exc
    raise AssertionError("the stream ended without Done")


def test_each_token_of_an_answer_carries_the_logprob_genai_reported_only_when_asked() -> None:
    engine, _ = make_engine()

    async def go(logprobs: bool) -> list[Delta]:
        request = GenerationRequest(GenerationOptions(max_new_tokens=3), prompt="x", logprobs=logprobs)
        job = engine.submit(request)
        await job.accepted()
        return [event async for event in job.stream() if isinstance(event, Delta)]

    asked = [t for delta in run(lambda: go(True)) for t in delta.logprobs]
    assert [(t.token, t.logprob, t.bytes, t.offset) for t in asked] == [
        ("a", -0.5, [97], 0),
        ("b", -1.0, [98], 1),
        ("c", -1.5, [99], 2),
    ]
    assert all(not delta.logprobs for delta in run(lambda: go(False)))
    engine.close()
