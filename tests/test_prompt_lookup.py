"""--prompt-lookup: the tokens that followed the last n-gram earlier in the conversation are proposed
and checked in one step. The real model through ask, the library and serve; the speed is measured
by scripts/bench/bench_lookup.py, never here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openvino_genai as ov_genai
import pytest

from ovchat.chat.session import ChatSession
from ovchat.model.device import PROMPT_LOOKUP_NGRAM, PROMPT_LOOKUP_TOKENS, DeviceConfig
from ovchat.model.pipeline import open_model
from ovchat.options import GenerationOptions
from servers import Server, start_server
from test_cli_options import ask_json, run

LIST = "Repeat this list exactly: apples, bananas, cherries, dates, elderberries, figs, grapes, honeydew."
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "Rome", "Madrid"]}},
    "required": ["city"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def lookup_server(model_dir: Path) -> Iterator[Server]:
    server = start_server(model_dir, "--prompt-lookup")
    yield server
    server.stop()


def test_ask_copies_the_list_and_stops_on_its_own(model_dir: Path) -> None:
    data = ask_json(model_dir, "--prompt-lookup", "-t", "0", LIST)
    assert "elderberries, figs, grapes" in data["text"]
    assert data["finish_reason"] == "stop"


def test_prompt_lookup_on_sdpa_is_a_one_line_error(model_dir: Path) -> None:
    args = ("--prompt-lookup", "--attention-backend", "SDPA")
    code, out, err = run("ask", "--model", str(model_dir), *args, "hi")
    assert code != 0 and out == ""
    assert err.strip().splitlines() == [
        "ovchat: error: prompt lookup runs on paged attention only: drop the SDPA attention backend"
    ]


def test_the_library_keeps_the_models_own_generation_defaults(model_dir: Path) -> None:
    """GenAI's prompt-lookup pipelines forget generation_config.json (greedy, eos -1): ovchat reads it."""
    own = ov_genai.GenerationConfig(str(model_dir / "generation_config.json"))
    model = open_model(model_dir, DeviceConfig(prompt_lookup=True))
    config = model.pipeline.get_generation_config()
    assert (config.do_sample, config.eos_token_id) == (own.do_sample, own.eos_token_id) == (True, 2)
    assert config.temperature == pytest.approx(own.temperature)
    assert config.top_p == pytest.approx(own.top_p)
    assert (config.num_assistant_tokens, config.max_ngram_size) == (PROMPT_LOOKUP_TOKENS, PROMPT_LOOKUP_NGRAM)
    # A conversation, as `ovchat chat` holds it: the second turn sees the first.
    session = ChatSession(model, GenerationOptions(temperature=0.0, max_new_tokens=60))
    pieces: list[str] = []
    first = session.send(LIST, on_text=pieces.append)
    assert "elderberries" in first.text and "".join(pieces) == first.text
    assert "elderberries" in session.send("Say the list again.").text


def _chat(server: Server, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{server.base}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _stream(server: Server, **body: Any) -> tuple[str, int, int]:
    """(text, content chunks, completion tokens) of one streamed answer."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    pieces, tokens = [], 0
    with httpx.stream("POST", f"{server.base}/v1/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                tokens = chunk["usage"]["completion_tokens"] if chunk.get("usage") else tokens
                pieces += [c["delta"]["content"] for c in chunk["choices"] if c["delta"].get("content")]
    return "".join(pieces), len(pieces), tokens


def test_the_server_streams_several_tokens_a_step_and_whole_equals_streamed(
    lookup_server: Server, default_server: Server
) -> None:
    ask = {"messages": [{"role": "user", "content": LIST}], "temperature": 0, "max_tokens": 80}
    whole = _chat(lookup_server, **ask)
    text, chunks, tokens = _stream(lookup_server, **ask)
    assert text == whole["choices"][0]["message"]["content"] and "elderberries, figs" in text
    assert tokens == whole["usage"]["completion_tokens"]
    assert whole["choices"][0]["finish_reason"] == "stop"
    # The last token (<|im_end|>) has no text: without lookup every other token is a chunk of its
    # own; with it, accepted proposals arrive together.
    assert chunks < tokens - 1
    _, plain_chunks, plain_tokens = _stream(default_server, **ask)
    assert plain_chunks == plain_tokens - 1, "the control"


def test_grammars_hold_and_sampling_works_under_lookup(lookup_server: Server) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY}}
    ask = [{"role": "user", "content": "Which city is the capital of France? Answer in JSON."}]
    answer = _chat(lookup_server, messages=ask, response_format=schema, max_tokens=60)
    assert json.loads(answer["choices"][0]["message"]["content"])["city"] in {"Paris", "Rome", "Madrid"}
    sampled = [
        _chat(lookup_server, messages=ask, temperature=1.0, seed=seed, max_tokens=24)["choices"][0]
        for seed in (1, 1)
    ]
    assert sampled[0]["message"]["content"] == sampled[1]["message"]["content"]  # the seed holds
