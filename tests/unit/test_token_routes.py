"""llama-server's token routes over the engine's stand-in: the work runs on the engine thread, in
llama-server's shapes, behind the key; bad input is a 400 naming the field, and the engine serves on."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from test_engine_scheduler import make_engine, serve_engine

from ovchat.server.app import create_app
from ovchat.server.metrics import ServerMetrics
from ovchat.server.settings import ServerSettings


def post_each(calls: list[tuple[str, Any]], key: str | None = "k") -> list[httpx.Response]:
    engine, _ = make_engine()
    app = create_app(serve_engine(engine), ServerSettings(api_key="k"), ServerMetrics())
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            return [await client.post(path, json=body) for path, body in calls]

    try:
        return asyncio.run(asyncio.wait_for(go(), timeout=10))
    finally:
        engine.close()


def test_tokenize_detokenize_and_apply_template_answer_in_llama_servers_shapes() -> None:
    tokenized, pieces, text, prompt = post_each(
        [
            ("/tokenize", {"content": "hi"}),
            ("/tokenize", {"content": "hi", "with_pieces": True}),
            ("/detokenize", {"tokens": [104, 105]}),
            ("/apply-template", {"messages": [{"role": "user", "content": "hi"}]}),
        ]
    )
    assert tokenized.json() == {"tokens": [104, 105]}  # the stand-in: one token per character
    assert pieces.json() == {"tokens": [{"id": 104, "piece": "h"}, {"id": 105, "piece": "i"}]}
    assert text.json() == {"content": "hi"}
    assert prompt.json() == {"prompt": "hi>"}  # the stand-in's template


def test_the_token_routes_need_the_key() -> None:
    answers = post_each([("/tokenize", {"content": "hi"}), ("/detokenize", {"tokens": [1]})], key=None)
    assert [a.status_code for a in answers] == [401, 401]


def test_bad_token_route_input_is_a_400_naming_the_field_and_the_engine_serves_on() -> None:
    answers = post_each(
        [
            ("/tokenize", {"content": 5}),
            ("/tokenize", {"content": "hi", "parse_special": False}),
            ("/detokenize", {"tokens": [-1]}),
            ("/detokenize", {"tokens": ["a"]}),
            ("/apply-template", {"messages": []}),
            ("/apply-template", {"messages": [{"role": "tool", "content": "x", "tool_call_id": "nope"}]}),
            ("/tokenize", {"content": "ok"}),
        ]
    )
    params = [a.json()["error"]["param"] for a in answers[:-1]]
    assert [a.status_code for a in answers[:-1]] == [400] * 6
    assert params[:4] == ["content", "parse_special", "tokens", "tokens[0]"]
    assert all(p.startswith("messages") for p in params[4:])
    assert answers[-1].json() == {"tokens": [111, 107]}
