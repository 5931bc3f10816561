"""Answering one generation request, for every API: queue it, wait for the engine to accept it, read
its text (ovchat.prompt.answer, as ChatSession does), and hand the events to the API's writer, as
one JSON body or as a stream.

The event loop only parses, queues and streams: every pipeline call happens on the engine thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ovchat.errors import OvchatError
from ovchat.prompt.answer import AnswerReader
from ovchat.prompt.request import GenerationRequest
from ovchat.prompt.tokens import TokenLogprob, Usage
from ovchat.server.engine.engine import Engine
from ovchat.server.engine.jobs import Delta, Job
from ovchat.server.protocol.stream import STREAM_HEADERS, AnswerWriter

# An error from below as the request tells it (its field names): each API's request model has one.
Refine = Callable[[OvchatError], OvchatError]


async def respond(
    engine: Engine,
    request: GenerationRequest,
    writer: AnswerWriter,
    receive: Receive,
    stream: bool,
    refine: Refine,
    on_end: Callable[[], None] = lambda: None,
) -> Any:
    """Queue the request, wait until the engine accepts it, then answer as JSON or as a stream;
    `on_end` runs once the answer is over (sent, failed or abandoned)."""
    try:
        answer = await _respond(engine, request, writer, receive, stream, refine, on_end)
    except BaseException:
        on_end()
        raise
    if not isinstance(answer, Streamed):
        on_end()
    return answer


class Streamed(StreamingResponse):
    """A streamed answer that runs `on_end` once it is over, however it ends (the client may leave
    before its generator ever starts, and then no `finally` of the generator runs)."""

    def __init__(self, content: AsyncIterator[bytes], on_end: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_end()


async def _respond(
    engine: Engine,
    request: GenerationRequest,
    writer: AnswerWriter,
    receive: Receive,
    stream: bool,
    refine: Refine,
    on_end: Callable[[], None],
) -> Any:
    job = engine.submit(request)
    # Until the response starts, only the disconnect tells the server that the client left (a
    # timed-out SDK retries, and the abandoned answer would keep a batch slot busy to its end).
    watcher = asyncio.create_task(cancel_on_disconnect(engine, job, receive))
    try:
        await job.accepted()
    except OvchatError as exc:
        watcher.cancel()
        engine.cancel(job)
        raise refine(exc) from None
    except BaseException:
        watcher.cancel()
        engine.cancel(job)
        raise
    reader = AnswerReader(chat=request.chat, thinking=job.thinking, calls=request.calls)
    if stream:
        watcher.cancel()
        events = stream_events(engine, job, reader, writer, refine)
        return Streamed(events, on_end, media_type=writer.media_type, headers=STREAM_HEADERS)
    try:
        return await whole_answer(job, reader, writer)
    except OvchatError as exc:
        raise refine(exc) from None
    finally:
        watcher.cancel()
        engine.cancel(job)


async def whole_answer(job: Job, reader: AnswerReader, writer: AnswerWriter) -> dict[str, Any]:
    """The body of an answer read to its end."""
    logprobs: list[TokenLogprob] | None = [] if job.request.logprobs else None
    async for event in job.stream():
        if isinstance(event, Delta):
            reader.feed(event.text)
            if logprobs is not None:
                logprobs.extend(event.logprobs)
            continue
        reader.finish()
        usage = Usage(event.prompt_tokens, event.completion_tokens)
        return writer.whole(reader.answer(event.finish_reason), usage, logprobs)
    raise AssertionError("the answer ended without Done")


async def stream_events(
    engine: Engine,
    job: Job,
    reader: AnswerReader,
    writer: AnswerWriter,
    refine: Refine,
) -> AsyncIterator[bytes]:
    """The streamed body; leaving early (client gone) cancels the job."""
    try:
        for chunk in writer.opening():
            yield chunk
        try:
            async for event in job.stream():
                if isinstance(event, Delta):
                    chunks = writer.events(reader.feed(event.text), list(event.logprobs))
                else:
                    usage = Usage(event.prompt_tokens, event.completion_tokens)
                    chunks = writer.events(reader.finish(), [])
                    chunks += writer.closing(reader.answer(event.finish_reason), usage)
                for chunk in chunks:
                    yield chunk
        except OvchatError as exc:
            for chunk in writer.failure(refine(exc)):
                yield chunk
    finally:
        engine.cancel(job)


async def cancel_on_disconnect(engine: Engine, job: Job, receive: Receive) -> None:
    """Cancel the job when the client disconnects before its response starts."""
    while (await receive())["type"] != "http.disconnect":
        pass
    engine.cancel(job)
