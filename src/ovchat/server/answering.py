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
from ovchat.server.engine import Delta, Done, Engine, GenerationRequest, Job
from ovchat.server.errors import error_reply
from ovchat.server.schemas import HttpRefusal
from ovchat.server.tool_replies import CallDeltas, finish_with_calls, whole_message
from ovchat.server.wire import Logprobs, ReplyWriter, sse

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
        parts: list[str] = []
        logprobs: Logprobs = [] if request.logprobs else None
        async for event in job.stream():
            if isinstance(event, Delta):
                parts.append(event.text)
                if logprobs is not None:
                    logprobs.extend(event.logprobs)
            elif calls:
                message, made = whole_message("".join(parts))
                return answer.whole("", event, message, finish_with_calls(event.finish_reason, made))
            else:
                return answer.whole("".join(parts), event, logprobs=logprobs)
    except OvchatError as exc:
        raise name_fields(exc) from None
    finally:
        watcher.cancel()
        engine.cancel(job)


async def stream_events(
    engine: Engine,
    job: Job,
    answer: ReplyWriter,
    include_usage: bool,
    name_fields: FieldNamer,
    calls: bool = False,
) -> AsyncIterator[bytes]:
    """The SSE body of a streamed answer (its text read for tool calls if `calls`); leaving early
    (client gone) cancels the job."""
    deltas = CallDeltas() if calls else None
    # Tokens that made no text yet (half a character) wait for the chunk that carries it.
    pending: Logprobs = [] if job.request.logprobs else None
    try:
        yield answer.chunk(None, None, include_usage, first=True)
        try:
            async for event in job.stream():
                if isinstance(event, Delta) and pending is not None:
                    pending.extend(event.logprobs)
                if isinstance(event, Delta) and event.text and deltas is not None:
                    for delta in deltas.feed(event.text):
                        yield answer.delta_chunk(delta, None, include_usage)
                elif isinstance(event, Delta) and event.text:
                    yield answer.chunk(event.text, None, include_usage, logprobs=pending)
                    pending = [] if pending is not None else None
                elif isinstance(event, Done):
                    finish = event.finish_reason
                    if deltas is not None:
                        for delta in deltas.finish():
                            yield answer.delta_chunk(delta, None, include_usage)
                        finish = finish_with_calls(finish, deltas.parser.calls)
                    yield answer.chunk(None, finish, include_usage, logprobs=pending or None)
                    if include_usage:
                        yield answer.usage_chunk(event)
        except OvchatError as exc:
            yield error_reply(name_fields(exc)).event()
        yield sse("[DONE]")
    finally:
        engine.cancel(job)


async def cancel_on_disconnect(engine: Engine, job: Job, receive: Receive) -> None:
    """Cancel the job when the client disconnects before its response starts."""
    while (await receive())["type"] != "http.disconnect":
        pass
    engine.cancel(job)
