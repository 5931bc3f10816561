"""The one generation core of the library (ChatSession, complete_raw), on the fake model: every turn,
plain, with tools or raw, is planned, generated from token ids and read by the same rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fake_model import FakePipeline, FakeTokenizer, fake_model

from ovchat.chat.session import ChatSession, complete_raw
from ovchat.errors import ContextError
from ovchat.model.pipeline import Model
from ovchat.options import GenerationOptions
from ovchat.prompt.tools.hermes import call_text
from ovchat.prompt.tools.use import Tool, ToolChoice, ToolUse

WEATHER = Tool(
    "get_weather", "The weather in a city", {"type": "object", "properties": {"city": {"type": "string"}}}
)
LONG = "word " * 300


def long_chat(model: Model) -> ChatSession:
    """A session whose history (two long exchanges) leaves no room for another turn in 700 tokens."""
    session = ChatSession(model, GenerationOptions(max_new_tokens=8))
    for _ in range(2):
        session._messages += [{"role": "user", "content": LONG}, {"role": "assistant", "content": LONG}]
    return session


def answering(model: Model, text: str) -> Model:
    pipeline: FakePipeline = model.pipeline  # type: ignore[assignment]
    pipeline.reply = lambda messages: text
    return model


@pytest.mark.parametrize("tools", [None, ToolUse((WEATHER,))], ids=["plain", "with tools"])
def test_a_chat_with_or_without_tools_drops_its_oldest_exchange_to_fit(tools: ToolUse | None) -> None:
    session = long_chat(fake_model(700))
    reply = session.send("Say hi.", tools=tools)
    assert reply.dropped_messages == 2 and reply.text == "echo: Say hi."
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]
    assert session.messages[-2]["content"] == "Say hi."


def test_a_message_that_cannot_fit_alone_is_refused() -> None:
    session = ChatSession(fake_model(100), GenerationOptions(max_new_tokens=8))
    with pytest.raises(ContextError, match="context window is 100"):
        session.send(LONG)


def test_the_library_returns_reasoning_apart_from_the_answer() -> None:
    model = answering(fake_model(), "<think>It is the capital.</think>\n\nParis.")
    heard: list[str] = []
    thought: list[str] = []
    reply = ChatSession(model).send("Capital of France?", heard.append, on_reasoning=thought.append)
    assert (reply.reasoning, reply.text) == ("It is the capital.", "Paris.")
    assert "".join(heard) == "Paris." and "".join(thought).strip() == "It is the capital."


def test_a_call_gets_an_id_finishes_with_tool_calls_and_its_result_is_answered() -> None:
    model = answering(fake_model(), call_text("get_weather", '{"city": "Paris"}'))
    session = ChatSession(model)
    heard: list[str] = []
    reply = session.send("Weather in Paris?", heard.append, tools=ToolUse((WEATHER,), ToolChoice.REQUIRED))
    (call,) = reply.tool_calls
    assert call.id.startswith("call_") and json.loads(call.arguments) == {"city": "Paris"}
    assert reply.finish_reason == "tool_calls" and reply.text == "" and heard == []
    assert session.messages[-1]["tool_calls"][0]["id"] == call.id
    answering(model, "It is sunny.")
    after = session.send_tool_results({call.id: "sunny"}, tools=ToolUse((WEATHER,)))
    assert after.text == "It is sunny." and after.finish_reason == "stop"
    assert [m["role"] for m in session.messages] == ["user", "assistant", "tool", "assistant"]


def test_a_raw_completion_is_read_as_plain_text() -> None:
    model = answering(fake_model(), "<think>not a block here</think> at all")
    reply = complete_raw(model, "<user>Continue:</user> <assistant>", GenerationOptions())
    assert reply.text == "<think>not a block here</think> at all" and reply.reasoning is None


def test_the_tokenizer_is_only_used_under_the_sessions_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads in GenAI's tokenizer at once deadlock (a message sent during `ovchat chat`'s
    background warm-up hung): planning, generating and reading all happen holding ChatSession.busy."""
    session = ChatSession(fake_model(), GenerationOptions(max_new_tokens=8))
    held: list[bool] = []
    encode, decode = FakeTokenizer.encode, FakeTokenizer.decode

    def watched(real: Any) -> Any:
        def call(self: FakeTokenizer, *args: Any, **kwargs: Any) -> Any:
            held.append(session.busy.locked())
            return real(self, *args, **kwargs)

        return call

    monkeypatch.setattr(FakeTokenizer, "encode", watched(encode))
    monkeypatch.setattr(FakeTokenizer, "decode", watched(decode))
    session.send("hello there")
    session.templated_prompt()
    assert held and all(held)
