"""simonw/llm's `llm` command against the real server, configured as its docs say for an
OpenAI-compatible model (extra-openai-models.yaml with supports_tools and supports_schema):
streamed and whole answers, an enforced --schema, and tools offered with -T.

llm sends tools without a tool_choice ("auto"): whether the model calls one is its own choice
(the 135 M default rarely does), so the tool test holds either way: the request is accepted and
llm finishes the exchange, running the tool and sending its result back if it was called."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from servers import Server

LLM = Path(sys.executable).with_name("llm")


@pytest.fixture(scope="module")
def llm_home(default_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("llm")
    (home / "extra-openai-models.yaml").write_text(
        "- model_id: ovchat\n"
        "  model_name: smollm2-135m-instruct-int4\n"
        f'  api_base: "{default_server.base}/v1"\n'
        "  supports_tools: true\n"
        "  supports_schema: true\n"
    )
    return home


def llm(home: Path, *args: str) -> str:
    done = subprocess.run(
        [str(LLM), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LLM_USER_PATH": str(home), "OPENAI_API_KEY": "", "PYTHONPATH": ""},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_streamed_and_whole_answers_agree(llm_home: Path) -> None:
    streamed = llm(llm_home, "-m", "ovchat", "-o", "temperature", "0", "What is the capital of France?")
    whole = llm(
        llm_home, "-m", "ovchat", "--no-stream", "-o", "temperature", "0", "What is the capital of France?"
    )
    assert "Paris" in streamed and streamed == whole


def test_a_schema_is_enforced(llm_home: Path) -> None:
    out = llm(llm_home, "-m", "ovchat", "--schema", "city str, country str", "Paris is in France.")
    data = json.loads(out)
    assert set(data) == {"city", "country"} and all(isinstance(v, str) for v in data.values())


def test_tools_offered_with_t_are_accepted_and_the_exchange_finishes(llm_home: Path) -> None:
    llm(llm_home, "-m", "ovchat", "-o", "temperature", "0", "-T", "llm_version", "--td",
        "What version of llm is installed? Use the llm_version tool.")  # fmt: skip
    [logged] = json.loads(llm(llm_home, "logs", "-n", "1", "--json"))
    assert [t["name"] for t in logged["tools"]] == ["llm_version"]  # llm sent the tool to the server
    assert logged["response"] or logged["tool_calls"]
    for call in logged["tool_calls"]:  # if the model called it, the call named the tool it was offered
        assert call["name"] == "llm_version"
