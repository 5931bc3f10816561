"""Answering one generation request: queue it, wait for the engine to accept it, then JSON or SSE.

The event loop only parses, queues and streams: every pipeline call happens on the engine thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Receive

from ovchat.errors import ContextError, OvchatError
from ovchat.prompt.reasoning import Part, ReasoningSplitter, split_whole
from ovchat.server.engine.engine import Delta, Done, Engine, GenerationRequest, Job
from ovchat.server.protocol.errors import error_reply
from ovchat.server.protocol.openai.requests import HttpRefusal
from ovchat.server.protocol.openai.tool_replies import CallDeltas, finish_with_calls, whole_message
from ovchat.server.protocol.openai.writer import Logprobs, ReplyWriter, sse

# The request's names for the fields an engine error names (SamplingRequest.name_fields).
FieldNamer = Callable[[OvchatError], OvchatError]
# Proxies (nginx) buffer a response unless told not to, which would hold back every token.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def respond(
    engine: Engine,
    request: GenerationRequest,
    answer: ReplyWriter,
    receive: Receive,
    stream: bool,
    include_usage: bool,
    name_fields: FieldNamer,
) -> Any:
    """Queue the request, wait until the engine accepts it, then answer as JSON or as SSE events."""
    job = engine.submit(request)
    # Until the response starts, only the disconnect tells the server that the client left (a
    # timed-out SDK retries, and the abandoned answer would keep a batch slot busy to its end).
    watcher = asyncio.create_task(cancel_on_disconnect(engine, job, receive))
    try:
        await job.accepted()
    except ContextError as exc:
        watcher.cancel()
        raise HttpRefusal(
            str(name_fields(exc)),
            param="messages" if answer.chat else "prompt",
            code="context_length_exceeded",
        ) from None
    except OvchatError as exc:
        watcher.cancel()
        engine.cancel(job)
        raise name_fields(exc) from None
    except BaseException:
        watcher.cancel()
        engine.cancel(job)
        raise
    calls = request.tools is not None and request.tools.calls
    if stream:
        watcher.cancel()
        events = stream_events(engine, job, answer, include_usage, name_fields, calls)
        return StreamingResponse(events, media_type="text/event-stream", headers=STREAM_HEADERS)
    try:
        return await whole_answer(job, answer, calls)
    except OvchatError as exc:
        raise name_fields(exc) from None
    finally:
        watcher.cancel()
        engine.cancel(job)


async def whole_answer(job: Job, answer: ReplyWriter, calls: bool) -> dict[str, Any]:
    """The JSON body of an answer read to its end: a chat's reasoning apart, its calls read."""
    parts: list[str] = []
    logprobs: Logprobs = [] if job.request.logprobs else None
    async for event in job.stream():
        if isinstance(event, Delta):
            parts.append(event.text)
            if logprobs is not None:
                logprobs.extend(event.logprobs)
            continue
        if not answer.chat:
            return answer.whole("".join(parts), event, logprobs=logprobs)
        reasoning, content = split_whole("".join(parts), job.thinking)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        finish = event.finish_reason
        if calls:
            message, made = whole_message(content)
            finish = finish_with_calls(finish, made)
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        return answer.whole(content, event, message, finish, logprobs)
    raise AssertionError("the answer ended without Done")


async def stream_events(
    engine: Engine,
    job: Job,
    answer: ReplyWriter,
    include_usage: bool,
    name_fields: FieldNamer,
    calls: bool = False,
) -> AsyncIterator[bytes]:
    """The SSE body of a streamed answer (a chat's reasoning apart, its text read for tool calls if
    `calls`); leaving early (client gone) cancels the job."""
    chunks = StreamChunks(answer, include_usage, CallDeltas() if calls else None, job)
    try:
        yield answer.chunk(None, None, include_usage, first=True)
        try:
            async for event in job.stream():
                if isinstance(event, Delta):
                    for chunk in chunks.delta(event):
                        yield chunk
                else:
                    for chunk in chunks.done(event):
                        yield chunk
        except OvchatError as exc:
            yield error_reply(name_fields(exc)).event()
        yield sse("[DONE]")
    finally:
        engine.cancel(job)


class StreamChunks:
    """The SSE chunks of one streamed answer, event by event: reasoning as `reasoning_content`
    deltas, content as text (or tool-call deltas), logprobs with the chunk that carries their text."""

    def __init__(self, answer: ReplyWriter, usage: bool, deltas: CallDeltas | None, job: Job) -> None:
        self.answer, self.usage, self.deltas = answer, usage, deltas
        self.splitter = ReasoningSplitter(job.thinking) if answer.chat else None
        # Tokens that made no text yet (half a character) wait for the chunk that carries it.
        self.pending: Logprobs = [] if job.request.logprobs else None

    def delta(self, event: Delta) -> list[bytes]:
        if self.pending is not None:
            self.pending.extend(event.logprobs)
        if not event.text:
            return []
        pieces = self.splitter.feed(event.text) if self.splitter else [(Part.CONTENT, event.text)]
        return [chunk for part, text in pieces for chunk in self._piece(part, text)]

    def done(self, event: Done) -> list[bytes]:
        out = [
            c
            for part, text in (self.splitter.finish() if self.splitter else [])
            for c in self._piece(part, text)
        ]
        finish = event.finish_reason
        if self.deltas is not None:
            out += [self.answer.delta_chunk(d, None, self.usage) for d in self.deltas.finish()]
            finish = finish_with_calls(finish, self.deltas.parser.calls)
        out.append(self.answer.chunk(None, finish, self.usage, logprobs=self._take() or None))
        if self.usage:
            out.append(self.answer.usage_chunk(event))
        return out

    def _piece(self, part: Part, text: str) -> list[bytes]:
        if part is Part.REASONING:
            return [self.answer.delta_chunk({"reasoning_content": text}, None, self.usage, self._take())]
        if self.deltas is not None:
            return [self.answer.delta_chunk(d, None, self.usage) for d in self.deltas.feed(text)]
        return [self.answer.chunk(text, None, self.usage, logprobs=self._take())]

    def _take(self) -> Logprobs:
        taken, self.pending = self.pending, [] if self.pending is not None else None
        return taken


async def cancel_on_disconnect(engine: Engine, job: Job, receive: Receive) -> None:
    """Cancel the job when the client disconnects before its response starts."""
    while (await receive())["type"] != "http.disconnect":
        pass
    engine.cancel(job)
