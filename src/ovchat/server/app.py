"""The OpenAI-compatible HTTP API: its routes, and answering one request as JSON or as a stream.

The event loop only parses, queues and streams: every pipeline call happens on the engine thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.types import Receive

from ovchat import __version__
from ovchat.errors import ContextError, OvchatError
from ovchat.server.engine import Delta, Done, Engine, GenerationRequest, Job
from ovchat.server.errors import error_response
from ovchat.server.gate import Gate, ServerSettings
from ovchat.server.metrics import CONTENT_TYPE, ServerMetrics
from ovchat.server.schemas import (
    ChatCompletion,
    ChatRequest,
    CompletionRequest,
    ErrorBody,
    Health,
    ModelList,
    RequestError,
    TextCompletion,
)
from ovchat.server.webui import add_web_ui
from ovchat.server.wire import Answer, sse

# Each server-sent event carries one JSON chunk as its data, the last one the text [DONE].
SSE = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
        }
    }
}
# Every 503 says when to come back: clients and balancers that honour it retry instead of failing.
RETRY = {"Retry-After": "1"}
RETRY_DOC = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in (
        (400, "invalid request"),
        (401, "missing or wrong API key"),
        (413, "request body too large"),
        (503, "not ready, busy or shutting down: retry"),
    )
}
ERRORS[503]["headers"] = RETRY_DOC
# The Gate asks for the key on these routes when the server has one.
PROTECTED: dict[str, Any] = {"security": [{"bearer": []}]}

log = logging.getLogger("ovchat.server")


async def stream_events(
    engine: Engine, job: Job, answer: Answer, include_usage: bool
) -> AsyncIterator[bytes]:
    """The SSE body of a streamed answer; leaving early (client gone) cancels the job."""
    try:
        yield answer.chunk(None, None, include_usage, first=True)
        try:
            async for event in job.stream():
                if isinstance(event, Delta) and event.text:
                    yield answer.chunk(event.text, None, include_usage)
                elif isinstance(event, Done):
                    yield answer.chunk(None, event.finish_reason, include_usage)
                    if include_usage:
                        yield answer.usage_chunk(event)
        except OvchatError as exc:
            yield sse(json.loads(bytes(error_response(exc).body)))
        yield sse("[DONE]")
    finally:
        engine.cancel(job)


async def respond(
    engine: Engine,
    request: GenerationRequest,
    answer: Answer,
    receive: Receive,
    stream: bool,
    include_usage: bool,
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
        raise RequestError(
            str(exc), param="messages" if answer.chat else "prompt", code="context_length_exceeded"
        ) from None
    except BaseException:
        watcher.cancel()
        engine.cancel(job)
        raise
    if stream:
        watcher.cancel()
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        events = stream_events(engine, job, answer, include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    try:
        parts: list[str] = []
        async for event in job.stream():
            if isinstance(event, Delta):
                parts.append(event.text)
            else:
                return answer.whole("".join(parts), event)
    finally:
        watcher.cancel()
        engine.cancel(job)


async def cancel_on_disconnect(engine: Engine, job: Job, receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    engine.cancel(job)


def create_app(
    engine: Engine,
    settings: ServerSettings,
    metrics: ServerMetrics,
    on_fatal: Callable[[str], None] | None = None,
    leaving: threading.Event | None = None,
) -> FastAPI:
    """The FastAPI app over a (not yet started) engine; the lifespan starts and stops it.

    Once `leaving` is set (SIGTERM's drain period), /health says 503 while requests are still served."""
    leaving = leaving or threading.Event()

    def ready() -> bool:
        return engine.state == "ready" and not leaving.is_set()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start(on_fatal)
        yield
        engine.close(settings.shutdown_timeout)

    app = FastAPI(title="ovchat", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    handler: Callable[[Request, Exception], Awaitable[JSONResponse]] = _handle
    for kind in (OvchatError, RequestValidationError, HTTPException):
        app.add_exception_handler(kind, handler)
    app.add_middleware(Gate, settings=settings, metrics=metrics)
    if settings.cors_origins:
        origins = list(settings.cors_origins)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    metrics.watch(lambda: engine.running, lambda: engine.queued, lambda: float(ready()))

    @app.post(
        "/v1/chat/completions",
        response_model=None,
        openapi_extra=PROTECTED,
        responses={200: {"model": ChatCompletion, "content": SSE}, **ERRORS},
    )
    async def chat_completions(body: ChatRequest, request: Request) -> Any:
        """A chat answer (stream: server-sent events of chat.completion.chunk)."""
        answer = Answer.new(True, settings.model_name)
        job_request = body.engine_request()
        return await respond(engine, job_request, answer, request.receive, body.stream, body.include_usage)

    @app.post(
        "/v1/completions",
        response_model=None,
        openapi_extra=PROTECTED,
        responses={200: {"model": TextCompletion, "content": SSE}, **ERRORS},
    )
    async def completions(body: CompletionRequest, request: Request) -> Any:
        """A raw continuation of the prompt, without the chat template."""
        answer = Answer.new(False, settings.model_name)
        job_request = body.engine_request()
        return await respond(engine, job_request, answer, request.receive, body.stream, body.include_usage)

    @app.get("/v1/models", response_model=ModelList, openapi_extra=PROTECTED, responses={401: ERRORS[401]})
    async def models() -> dict[str, Any]:
        card = {
            "id": settings.model_name,
            "object": "model",
            "created": 0,
            "owned_by": "ovchat",
            "context_length": engine.context_length,
        }
        return {"object": "list", "data": [card]}

    @app.get("/health", response_model=Health, responses={503: {"model": Health, "headers": RETRY_DOC}})
    async def health() -> JSONResponse:
        """Readiness: 200 while the server takes requests; 503 while loading, recovering or draining."""
        if ready():
            return JSONResponse({"status": "ok", "model": settings.model_name})
        status = "draining" if leaving.is_set() and engine.state == "ready" else engine.state
        body = {"status": status, "model": settings.model_name}
        return JSONResponse(body, status_code=503, headers=RETRY)

    @app.get("/live", response_model=Health, responses={503: {"model": Health, "headers": RETRY_DOC}})
    async def live() -> JSONResponse:
        """Liveness: 200 unless the engine gave up (then the process is on its way out)."""
        if engine.state != "failed":
            return JSONResponse({"status": "alive"})
        return JSONResponse({"status": "failed"}, status_code=503, headers=RETRY)

    @app.get(
        "/metrics",
        response_class=Response,
        openapi_extra=PROTECTED,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, 401: ERRORS[401]},
    )
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    if settings.web_ui:
        add_web_ui(app)

    app.openapi_schema = None
    schema = app.openapi()
    schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return app


async def _handle(_: Request, exc: Exception) -> JSONResponse:
    return error_response(exc)


class GracefulServer(uvicorn.Server):
    """uvicorn that shuts down gracefully on SIGTERM and then exits 0 (uvicorn would re-raise it).

    With a `drain_delay`, SIGTERM first turns /health to 503 and keeps serving for that long, so a
    load balancer's health checks take the replica out before it stops listening; a second SIGTERM
    ends the wait. Then the engine drains: new requests get 503, running answers finish."""

    def __init__(
        self,
        config: uvicorn.Config,
        engine: Engine,
        drain_delay: float = 0.0,
        leaving: threading.Event | None = None,
    ) -> None:
        super().__init__(config)
        self.engine = engine
        self.drain_delay = drain_delay
        self.leaving = leaving or threading.Event()
        self._stop_at: float | None = None  # when the drain period ends

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_delay > 0 and self._stop_at is None:
            # A signal handler must not block: on_tick ends the period on the event loop.
            self.leaving.set()
            self._stop_at = time.monotonic() + self.drain_delay
            log.info("SIGTERM: /health answers 503; serving %g s more, then shutting down", self.drain_delay)
            return
        self._shut_down(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._stop_at is not None and time.monotonic() >= self._stop_at and not self.should_exit:
            self._shut_down(signal.SIGTERM, None)
        return await super().on_tick(counter)

    def _shut_down(self, sig: int, frame: FrameType | None) -> None:
        self.leaving.set()
        self.engine.drain()
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM and sig in self._captured_signals:
            self._captured_signals.remove(sig)
