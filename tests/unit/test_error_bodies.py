"""One OpenAI error body for every failure, the same bytes as a JSON response and inside a stream."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from test_engine_scheduler import POISON, make_engine, serve_engine

from ovchat.errors import ContextError, GenerationError, OptionsError, OvchatError, Unavailable
from ovchat.server.app import create_app
from ovchat.server.metrics import ServerMetrics
from ovchat.server.protocol.http_errors import HttpRefusal, error_reply
from ovchat.server.settings import ServerSettings


@pytest.mark.parametrize(
    "error",
    [
        OvchatError("l'invite est trop longue ✓"),  # not ASCII: both paths keep it as it is
        ContextError("too long"),
        OptionsError("top_p must be in (0, 1]", option="top_p"),
        Unavailable("busy", "queue_full", 3),
        GenerationError("generation failed: x"),
        HttpRefusal("no key", 401, code="invalid_api_key", error_type="authentication_error"),
        RequestValidationError([{"type": "missing", "loc": ("body", "messages"), "msg": "Field required"}]),
        HTTPException(404, "Not Found"),
        RuntimeError("/secret/path.cpp:1 boom"),
    ],
)
def test_a_streamed_error_carries_the_bytes_of_the_json_error(error: Exception) -> None:
    reply = error_reply(error)
    assert reply.event() == b"data: " + bytes(reply.response().body) + b"\n\n"


def test_the_status_type_and_code_come_from_the_error_class() -> None:
    for error, status, kind, code in (
        (ContextError("x"), 400, "invalid_request_error", "context_length_exceeded"),
        (GenerationError("x"), 500, "server_error", "generation_failed"),
        (Unavailable("x", "shutting_down"), 503, "server_error", "shutting_down"),
        (HttpRefusal("x", 413, code="body_too_large"), 413, "invalid_request_error", "body_too_large"),
    ):
        reply = error_reply(error)
        assert (reply.status, reply.body["error"]["type"], reply.body["error"]["code"]) == (
            status,
            kind,
            code,
        )


def test_a_generation_that_fails_has_the_same_body_streamed_as_not() -> None:
    engine, _ = make_engine()
    app = create_app(serve_engine(engine), ServerSettings(), ServerMetrics())
    chat = {"messages": [{"role": "user", "content": POISON}], "max_tokens": 3}

    async def go() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            whole = await client.post("/v1/chat/completions", json=chat)
            streamed = await client.post("/v1/chat/completions", json={**chat, "stream": True})
            return whole, streamed

    whole, streamed = asyncio.run(asyncio.wait_for(go(), timeout=10))
    engine.close()
    events = [line.removeprefix("data: ") for line in streamed.text.split("\n\n") if line]
    assert whole.status_code == 500 and whole.json()["error"]["code"] == "generation_failed"
    assert streamed.status_code == 200 and events[-1] == "[DONE]"
    assert events[-2] == whole.text and json.loads(events[-2]) == whole.json()
