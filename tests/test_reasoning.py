"""Reasoning end to end: a server on the default model given a template that opens a think block at
the end of the prompt, as DeepSeek-R1's does (with enable_thinking false it writes an empty, closed
one, as Qwen3's does), so every answer starts as reasoning unless the switch is off."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import OVCHAT
from servers import Server
from test_tools import serve_with_template, with_template

THINKING_TEMPLATE = Path(__file__).parent / "fixtures" / "thinking_template.jinja"
ASK: dict[str, Any] = {
    "model": "m",
    "messages": [{"role": "user", "content": "Explain how photosynthesis works."}],
    "max_tokens": 8,
    "temperature": 0,
}


@pytest.fixture(scope="module")
def thinking(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_with_template(model_dir, tmp_path_factory.mktemp("thinking"), THINKING_TEMPLATE)


@pytest.fixture(scope="module")
def client(thinking: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{thinking.base}/v1", api_key="none", max_retries=0)


def test_models_says_the_template_reasons(thinking: Server, default_server: Server) -> None:
    def card(server: Server) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{server.base}/v1/models", headers=server.headers()).json()
        return answer["data"][0]

    assert card(thinking)["reasoning"] is True and card(default_server)["reasoning"] is False


def test_tokens_that_run_out_inside_the_think_block_are_returned_as_reasoning_with_length(
    client: openai.OpenAI,
) -> None:
    whole = client.chat.completions.create(**ASK)
    choice = whole.choices[0]
    reasoning = getattr(choice.message, "reasoning_content", None)
    assert choice.finish_reason == "length" and whole.usage is not None and whole.usage.completion_tokens == 8
    assert reasoning and "</think>" not in reasoning and choice.message.content == ""
    streamed = "".join(
        getattr(chunk.choices[0].delta, "reasoning_content", None) or ""
        for chunk in client.chat.completions.create(**ASK, stream=True)
        if chunk.choices
    )
    assert streamed == reasoning


def test_reasoning_effort_none_and_enable_thinking_false_answer_without_a_think_block(
    client: openai.OpenAI, thinking: Server
) -> None:
    plain = client.chat.completions.create(**ASK, reasoning_effort="none")  # type: ignore[arg-type]
    kwargs = client.chat.completions.create(
        **ASK, extra_body={"chat_template_kwargs": {"enable_thinking": False}}
    )
    for answer in (plain, kwargs):
        assert getattr(answer.choices[0].message, "reasoning_content", None) is None
    assert (
        plain.choices[0].message.content
        and plain.choices[0].message.content == kwargs.choices[0].message.content
    )

    # The template saw the switch: /apply-template shows the prompt each way.
    def prompt(**extra: Any) -> str:
        body = {"messages": ASK["messages"], **extra}
        text: str = httpx.post(f"{thinking.base}/apply-template", json=body, timeout=60).json()["prompt"]
        return text

    assert prompt().endswith("<|im_start|>assistant\n<think>\n")
    assert prompt(chat_template_kwargs={"enable_thinking": False}).endswith("<think>\n\n</think>\n\n")


def test_an_effort_the_model_has_not_is_a_400_and_the_next_request_is_served(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**ASK, reasoning_effort="high")
    assert caught.value.body["param"] == "reasoning_effort"  # type: ignore[index]
    assert client.chat.completions.create(**ASK).choices[0].finish_reason == "length"


def test_an_answer_that_stops_inside_the_block_is_all_reasoning(client: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "What is the capital of France?"}]
    answer = client.chat.completions.create(**{**ASK, "messages": question, "max_tokens": 40})
    choice = answer.choices[0]
    assert choice.finish_reason == "stop" and choice.message.content == ""
    assert "Paris" in (getattr(choice.message, "reasoning_content", None) or "")


def test_info_says_whether_the_template_reasons(model_dir: Path, tmp_path: Path) -> None:
    folder = with_template(model_dir, tmp_path / "model", THINKING_TEMPLATE.read_text())

    def reasoning(model: Path) -> str:
        shown = subprocess.run(
            [str(OVCHAT), "info", "--model", str(model), "--json"], capture_output=True, text=True, check=True
        )
        return str(json.loads(shown.stdout)["reasoning"])

    assert reasoning(folder).startswith("yes") and reasoning(model_dir) == "no"
