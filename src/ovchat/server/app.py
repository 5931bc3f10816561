"""The OpenAI-compatible HTTP API: routes, the request gate, and the one place errors become HTTP."""

from __future__ import annotations

import asyncio
import hmac
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ovchat.errors import ContextError, OptionsError, OvchatError
from ovchat.server.engine import Delta, Done, Engine, EngineUnavailableError, Job, QueueFullError
from ovchat.server.metrics import ServerMetrics
from ovchat.server.schemas import ChatRequest, CompletionRequest, RequestError, SamplingRequest

KNOWN_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics")
OPEN_PATHS = ("/health",)  # answered without an API key


@dataclass(frozen=True)
class ServerSettings:
    model_name: str
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_000_000


def error_response(exc: Exception) -> JSONResponse:
    """Every error the server returns, as OpenAI's {"error": {message, type, param, code}} body."""
    status, kind, param, code, headers = 500, "server_error", None, None, {}
    message = str(exc.detail) if isinstance(exc, HTTPException) else str(exc)
    if isinstance(exc, RequestError):
        status, kind, param, code = exc.status, exc.kind, exc.param, exc.code
    elif isinstance(exc, OptionsError):
        status, kind = 400, "invalid_request_error"
    elif isinstance(exc, QueueFullError):
        status, code, headers = 503, "queue_full", {"Retry-After": str(exc.retry_after_s)}
    elif isinstance(exc, EngineUnavailableError):
        status, code, headers = 503, "model_not_ready", {"Retry-After": "1"}
    elif isinstance(exc, RequestValidationError):
        status, kind = 400, "invalid_request_error"
        param, message = _validation_problem(exc)
    elif isinstance(exc, HTTPException):
        status, kind = exc.status_code, "invalid_request_error"
    if status == 500 and not isinstance(exc, OvchatError):
        message = "internal server error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _is_field_name(part: str) -> bool:
    return part not in {"str", "list", "int", "float", "bool"} and not any(c in part for c in "[]-")


def _validation_problem(exc: RequestValidationError) -> tuple[str | None, str]:
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        return None, "the request body is not valid JSON"
    loc = [part for part in first.get("loc", ()) if part != "body"]
    # pydantic names union members ("str", "list[...]") and wrappers in the location: skip them.
    names = [p for p in loc if isinstance(p, int) or _is_field_name(p)]
    param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in names).lstrip(".") or None
    if first.get("type") == "missing" and not names:
        return None, "the request body is missing"
    return param, f"{param or 'body'}: {first.get('msg', 'invalid value')}"


class Gate:
    """Pure ASGI middleware in front of every route: API key, body size limit, request counting."""

    def __init__(self, app: ASGIApp, settings: ServerSettings, metrics: ServerMetrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            problem = self._check_key(scope)
            body = b""
            if problem is None:
                body, problem = await self._read_body(scope, receive)
            if problem is not None:
                await error_response(problem)(scope, receive, counting_send)
                return
            await self.app(scope, _replay(body, receive), counting_send)
        finally:
            path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
            self.metrics.count_request(path, status)

    def _check_key(self, scope: Scope) -> RequestError | None:
        key = self.settings.api_key
        if key is None or scope["path"] in OPEN_PATHS or scope["method"] == "OPTIONS":
            return None
        headers = dict(scope["headers"])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode()):
            return None
        return RequestError("missing or wrong API key: send 'Authorization: Bearer <key>'", 401,
                            code="invalid_api_key", kind="authentication_error")  # fmt: skip

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, RequestError | None]:
        limit = self.settings.max_body_bytes
        too_big = RequestError(f"the request body is larger than {limit} bytes", 413, code="body_too_large")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return b"", too_big
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return b"", too_big
            more = message.get("more_body", False)
        return b"".join(chunks), None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands over the already-read body once, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


@dataclass(frozen=True)
class Answer:
    """The wire shape of one answer: chat (`chat.completion`) or plain text (`text_completion`)."""

    chat: bool
    model: str
    id: str
    created: int

    @classmethod
    def new(cls, chat: bool, model: str) -> Answer:
        prefix = "chatcmpl" if chat else "cmpl"
        return cls(chat, model, f"{prefix}-{uuid.uuid4().hex[:24]}", int(time.time()))

    def _envelope(self, choices: list[dict[str, Any]], chunk: bool,
                  usage: dict[str, int] | None) -> dict[str, Any]:  # fmt: skip
        kind = "chat.completion" if self.chat else "text_completion"
        body: dict[str, Any] = {"id": self.id, "object": f"{kind}.chunk" if chunk and self.chat else kind,
                                "created": self.created, "model": self.model, "choices": choices}  # fmt: skip
        if usage is not None or not chunk:
            body["usage"] = usage
        return body

    def chunk(self, text: str | None, finish: str | None, usage_field: bool, first: bool = False) -> bytes:
        """One SSE event carrying new text (or, with `finish`, the end of the answer)."""
        if self.chat:
            delta: dict[str, str] = {"role": "assistant", "content": ""} if first else {}
            if text:
                delta["content"] = text
            choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        body = self._envelope([choice], True, None)
        if usage_field:
            body["usage"] = None
        return sse(body)

    def usage_chunk(self, done: Done) -> bytes:
        return sse(self._envelope([], True, usage(done)))

    def whole(self, text: str, done: Done) -> dict[str, Any]:
        """The non-streamed response body."""
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                      "logprobs": None, "finish_reason": done.finish_reason}  # fmt: skip
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": done.finish_reason}
        return self._envelope([choice], False, usage(done))


def usage(done: Done) -> dict[str, int]:
    total = done.prompt_tokens + done.completion_tokens
    return {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
            "total_tokens": total}  # fmt: skip


def sse(body: dict[str, Any] | str) -> bytes:
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


async def stream_events(engine: Engine, job: Job, answer: Answer,
                        include_usage: bool) -> AsyncIterator[bytes]:  # fmt: skip
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


async def respond(engine: Engine, request: SamplingRequest, prompt: str, answer: Answer,
                  receive: Receive, json_schema: str | None = None) -> Any:  # fmt: skip
    """Submit the prompt and answer as one JSON body or as a stream of SSE events."""
    request.reject_unsupported()
    try:
        job = engine.submit(prompt, request.options(), request.max_tokens_given is not None, json_schema)
    except ContextError as exc:
        raise RequestError(str(exc), param="messages" if answer.chat else "prompt",
                           code="context_length_exceeded") from exc  # fmt: skip
    if request.stream:
        events = stream_events(engine, job, answer, request.include_usage)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    # Nothing is written until the answer is whole, so listen for the client leaving (a timed-out
    # SDK retries, and the abandoned answer would keep a batch slot busy to its last token).
    watcher = asyncio.create_task(cancel_on_disconnect(engine, job, receive))
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


def create_app(engine: Engine, settings: ServerSettings, metrics: ServerMetrics,
               on_fatal: Callable[[str], None] | None = None) -> FastAPI:  # fmt: skip
    """The FastAPI app over a (not yet started) engine; the lifespan starts and stops it."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start(on_fatal)
        yield
        engine.close()

    app = FastAPI(title="ovchat", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    handler: Callable[[Request, Exception], Awaitable[JSONResponse]] = _handle
    for kind in (OvchatError, RequestValidationError, HTTPException):
        app.add_exception_handler(kind, handler)
    app.add_middleware(Gate, settings=settings, metrics=metrics)
    if settings.cors_origins:
        origins = list(settings.cors_origins)
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])  # fmt: skip

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request) -> Any:
        body.reject_unsupported()
        prompt = engine.chat_prompt(body.chat_messages())
        answer = Answer.new(True, settings.model_name)
        return await respond(engine, body, prompt, answer, request.receive, body.json_schema())

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Any:
        body.reject_unsupported()
        if not body.text():
            raise RequestError("prompt must not be empty", param="prompt")
        answer = Answer.new(False, settings.model_name)
        return await respond(engine, body, body.text(), answer, request.receive)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": settings.model_name, "object": "model", "created": 0, "owned_by": "ovchat"}
        return {"object": "list", "data": [card]}

    @app.get("/health")
    async def health() -> JSONResponse:
        ready = engine.state == "ready"
        body = {"status": "ok" if ready else engine.state, "model": settings.model_name}
        if engine.error:
            body["error"] = engine.error
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        text = metrics.render(engine.running, engine.queued)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return app


async def _handle(_: Request, exc: Exception) -> JSONResponse:
    return error_response(exc)


class GracefulServer(uvicorn.Server):
    """uvicorn, but a SIGTERM-triggered graceful shutdown exits 0 (uvicorn re-raises the signal)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM and sig in self._captured_signals:
            self._captured_signals.remove(sig)
