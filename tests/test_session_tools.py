"""ChatSession with tools: the library's calls, results sent back, through the real model."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from ovchat import ChatSession, GenerationOptions, Model, OvchatError, Tool, ToolChoice, ToolUse

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
}
WEATHER = Tool("get_weather", "The weather in a city", SCHEMA)


def test_a_required_call_its_result_and_the_next_turn(model: Model, tmp_path: Path) -> None:
    session = ChatSession(model, GenerationOptions(temperature=0, max_new_tokens=120))
    heard: list[str] = []
    reply = session.send(
        "What's the weather in Paris?", on_text=heard.append, tools=ToolUse((WEATHER,), ToolChoice.REQUIRED)
    )
    assert reply.finish_reason == "tool_calls" and len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert call.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.arguments), SCHEMA)
    assert reply.text == "" and "".join(heard) == ""  # the call's markup is not content
    with pytest.raises(OvchatError, match="no call"):
        session.send_tool_results({"call_nope": "x"})
    answer = session.send_tool_results({call.id: "sunny, 24 C"}, tools=ToolUse((WEATHER,)))
    assert answer.text or answer.tool_calls
    roles = [m["role"] for m in session.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert session.messages[1]["tool_calls"][0]["function"]["arguments"] == call.arguments
    assert session.send("Thanks!").text  # a plain turn after tool turns still answers
    session.save(tmp_path / "chat.json")
    again = ChatSession(model)
    again.load(tmp_path / "chat.json")
    assert again.messages == session.messages  # the calls and results are kept
