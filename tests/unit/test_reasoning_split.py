"""Reasoning apart from content: the <think> block read whole and in pieces, and the request fields
that reach the template (chat_template_kwargs, reasoning_effort)."""

from __future__ import annotations

from typing import Any

import pytest

from ovchat.prompt.answer import read_whole
from ovchat.prompt.reasoning import Part, ReasoningSplitter, opens_thinking
from ovchat.server.protocol.http_errors import HttpRefusal
from ovchat.server.protocol.openai.requests import ChatRequest

ANSWERS = [
    ("<think>Paris is the capital.</think>\n\nParis.", False, ("Paris is the capital.", "Paris.")),
    ("The capital.</think>Paris.", True, ("The capital.", "Paris.")),
    ("still thinking when the tokens ran out", True, ("still thinking when the tokens ran out", "")),
    ("<think>never closed", False, ("never closed", "")),
    ("Paris.", False, (None, "Paris.")),
    ("Use <think> tags like this.", False, (None, "Use <think> tags like this.")),
    ("  <thi", False, (None, "  <thi")),  # a tag's start at the end is content after all
    ("a</thi", True, ("a</thi", "")),
]


@pytest.mark.parametrize(("text", "thinking", "expected"), ANSWERS)
def test_any_split_gives_the_whole_answers_reasoning_and_content(
    text: str, thinking: bool, expected: tuple[str | None, str]
) -> None:
    whole = read_whole(text, thinking=thinking).answer("stop")
    assert (whole.reasoning, whole.content) == expected
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            splitter = ReasoningSplitter(thinking)
            pieces = [*splitter.feed(text[:i]), *splitter.feed(text[i:j]), *splitter.feed(text[j:])]
            pieces += splitter.finish()
            reasoning = "".join(p for part, p in pieces if part is Part.REASONING)
            content = "".join(p for part, p in pieces if part is Part.CONTENT)
            assert ((reasoning if splitter.reasoned else None), content) == expected, (i, j)


def test_reasoning_streams_as_it_comes_holding_back_only_a_possible_tag() -> None:
    splitter = ReasoningSplitter(thinking=True)
    assert splitter.feed("Let me see</th") == [(Part.REASONING, "Let me see")]
    assert splitter.feed("ink>\n\nIt is") == [(Part.CONTENT, "It is")]


def test_a_prompt_that_ends_inside_a_think_block_opens_the_answers_reasoning() -> None:
    assert opens_thinking("<|im_start|>assistant\n<think>\n")
    assert not opens_thinking("<think>a</think><|im_start|>assistant\n")
    assert not opens_thinking("<|im_start|>assistant\n")


def chat(**fields: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], **fields})


def test_reasoning_effort_none_turns_the_templates_thinking_off_and_kwargs_reach_the_template() -> None:
    assert chat(reasoning_effort="none").generation_request().template_context == {"enable_thinking": False}
    kwargs = {"enable_thinking": True, "custom": [1]}
    given = chat(chat_template_kwargs=kwargs, reasoning_effort="none").generation_request()
    assert given.template_context == kwargs  # the explicit kwargs win
    assert chat().generation_request().template_context is None
    with pytest.raises(HttpRefusal) as caught:
        chat(reasoning_effort="high").generation_request()
    assert caught.value.param == "reasoning_effort" and 'only "none"' in str(caught.value)


def test_chat_template_kwargs_cannot_stand_in_for_the_requests_own_fields() -> None:
    for name in ("messages", "tools", "add_generation_prompt"):
        with pytest.raises(HttpRefusal) as caught:
            chat(chat_template_kwargs={name: 1}).generation_request()
        assert caught.value.param == "chat_template_kwargs" and name in str(caught.value)
