"""Readiness while a replica leaves, and Retry-After on every 503, over the stand-in pipeline.

The end-to-end proof (a real server, SIGTERM, a real load balancer) is in test_failover.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from test_engine_scheduler import MAX_FAILED_STEPS, make_engine, serve_engine

from ovchat.server.app import create_app
from ovchat.server.engine.engine import Engine
from ovchat.server.metrics import ServerMetrics
from ovchat.server.settings import ServerSettings

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def call(engine: Engine, requests: Callable[[httpx.AsyncClient], Any]) -> Any:
    """Run `requests` against the app in process (no lifespan: the engine is already started)."""
    app = create_app(serve_engine(engine), ServerSettings(), ServerMetrics())

    async def go() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await requests(client)

    return asyncio.run(asyncio.wait_for(go(), timeout=10))


def test_a_leaving_server_says_503_on_health_and_still_answers_requests() -> None:
    engine, _ = make_engine()

    async def requests(client: httpx.AsyncClient) -> list[httpx.Response]:
        before = await client.get("/health")
        engine.lifecycle.leave()  # what SIGTERM does first when the server has a drain delay
        health = await client.get("/health")
        answer = await client.post("/v1/chat/completions", json=CHAT)
        streamed = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        return [before, health, answer, streamed, await client.get("/live")]

    before, health, answer, streamed, live = call(engine, requests)
    assert before.status_code == 200 and before.json()["status"] == "ok"
    assert health.status_code == 503 and health.headers["Retry-After"] == "1"
    assert health.json()["status"] == "draining"
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "abc"
    assert streamed.status_code == 200 and "data: [DONE]" in streamed.text
    assert live.status_code == 200  # leaving is not dying: a supervisor must not restart it
    engine.close()


def test_every_503_carries_retry_after() -> None:
    # A full queue's 503: test_server.py::test_a_full_queue_answers_503_with_retry_after.
    draining, _ = make_engine()
    draining.drain()  # past the drain delay: the engine refuses new work

    async def refused(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.post("/v1/chat/completions", json=CHAT), await client.get("/health")]

    shutting_down = call(draining, refused)
    draining.close()

    failed, _ = make_engine(fail_always=True)

    async def broken(client: httpx.AsyncClient) -> list[httpx.Response]:
        for _ in range(4 * MAX_FAILED_STEPS):  # each request fails a step until the engine gives up
            if failed.state == "failed":
                break
            await client.post("/v1/chat/completions", json=CHAT)
        return [
            await client.get("/health"),
            await client.get("/live"),
            await client.post("/v1/chat/completions", json=CHAT),
        ]

    gave_up = call(failed, broken)
    failed.close()

    assert [r.json()["error"]["code"] for r in (shutting_down[0], gave_up[2])] == [
        "shutting_down",
        "model_not_ready",
    ]
    assert [r.json()["status"] for r in (shutting_down[1], *gave_up[:2])] == ["draining", "failed", "failed"]
    unavailable = [*shutting_down, *gave_up]
    assert all(r.status_code == 503 for r in unavailable), [r.status_code for r in unavailable]
    assert all(r.headers.get("Retry-After") == "1" for r in unavailable)
