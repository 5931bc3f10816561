"""Tool fields of a chat request -> ToolUse, the prompt's fallback turns and the grammar, without a model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ovchat.errors import RequestRejected
from ovchat.model.config import structural_tags
from ovchat.prompt.answer import read_whole
from ovchat.prompt.tools.fallback import fallback_turns, native_turns
from ovchat.prompt.tools.hermes import call_header
from ovchat.prompt.tools.use import ToolChoice
from ovchat.server.engine.recovery import culprit_error
from ovchat.server.protocol.http_errors import HttpRefusal, error_reply
from ovchat.server.protocol.openai.requests import ChatRequest
from ovchat.server.protocol.openai.tools import MAX_TOOLS

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
}
LOOP = [
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "-3 C"},
]


def chat(messages: list[dict[str, Any]] | None = None, **fields: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": messages or [{"role": "user", "content": "hi"}], **fields})


def refusal(**fields: Any) -> tuple[str | None, str]:
    """The param and message of the 400 the request gets."""
    messages = fields.pop("messages", None)
    with pytest.raises((RequestRejected, HttpRefusal)) as caught:
        chat(messages, **fields).generation_request()
    body = error_reply(caught.value)
    assert body.status == 400
    return body.body["error"]["param"], body.body["error"]["message"]


def test_tools_and_choice_map_onto_tool_use() -> None:
    use = chat(tools=[WEATHER]).generation_request().tools
    assert use is not None and use.choice is ToolChoice.AUTO and use.parallel and use.calls
    assert use.tools[0].name == "get_weather" and use.tools[0].parameters["required"] == ["city"]
    named = {"type": "function", "function": {"name": "get_weather"}}
    use = chat(tools=[WEATHER], tool_choice=named, parallel_tool_calls=False).generation_request().tools
    assert use is not None and (use.choice, use.function, use.parallel) == (
        ToolChoice.REQUIRED,
        "get_weather",
        False,
    )
    none = chat(tools=[WEATHER], tool_choice="none").generation_request().tools
    assert none is not None and not none.calls and none.grammar() is None


def test_a_tool_without_parameters_takes_an_empty_object() -> None:
    bare = {"type": "function", "function": {"name": "now"}}
    use = chat(tools=[bare]).generation_request().tools
    assert use is not None and use.tools[0].parameters == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    ("choice", "parallel", "forced", "once"),
    [
        ("auto", None, False, False),
        ("auto", False, False, True),
        ("required", None, True, True),
        ({"type": "function", "function": {"name": "get_weather"}}, None, True, True),
    ],
)
def test_every_choice_builds_a_grammar_genai_takes(
    choice: Any, parallel: bool | None, forced: bool, once: bool
) -> None:
    use = chat(tools=[WEATHER], tool_choice=choice, parallel_tool_calls=parallel).generation_request().tools
    grammar = use.grammar() if use is not None else None
    assert grammar is not None and (grammar.at_least_one, grammar.stop_after_first) == (forced, once)
    assert [tag.begin for tag in grammar.tags] == [call_header("get_weather")]
    assert structural_tags(grammar).structural_tags_config is not None  # GenAI's own object takes it


def with_parameters(schema: Any) -> dict[str, Any]:
    return {"tools": [{**WEATHER, "function": {**WEATHER["function"], "parameters": schema}}]}


def replaying(arguments: str) -> dict[str, Any]:
    call = {**CALL, "function": {"name": "get_weather", "arguments": arguments}}
    return {"messages": [LOOP[0], {**LOOP[1], "tool_calls": [call]}]}


BACKREFERENCE = {"type": "object", "properties": {"a": {"type": "string", "pattern": "(a)\\1"}}}
ORPHAN_RESULT = [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "1"}]
PARAMETERS = "tools[0].function.parameters"
ARGUMENTS = "messages[1].tool_calls[0].function.arguments"


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        (with_parameters({"type": "object", "properties": 3}), PARAMETERS, "invalid JSON schema"),
        (with_parameters({"type": "string"}), PARAMETERS, "must describe an object"),
        (with_parameters(BACKREFERENCE), PARAMETERS, "backreference"),
        ({"tools": [{**WEATHER, "function": {**WEATHER["function"], "name": "no spaces"}}]},
         "tools[0].function.name", "letters, digits"),
        ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name", "two tools"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}},
         "tool_choice.function.name", "not in tools"),
        ({"tool_choice": "required"}, "tool_choice", "needs tools"),
        ({"tools": [WEATHER], "response_format": {"type": "json_object"}}, "response_format", "combined"),
        ({"messages": ORPHAN_RESULT}, "messages[1].tool_call_id", "no assistant message"),
        (replaying("{no"), ARGUMENTS, "not JSON"),
        (replaying("[1]"), ARGUMENTS, "not a JSON object"),
    ],
)  # fmt: skip
def test_bad_tool_fields_are_a_400_naming_the_field(fields: dict[str, Any], param: str, words: str) -> None:
    got_param, message = refusal(**fields)
    assert got_param == param and words in message


def test_more_tools_than_openai_allows_is_a_400() -> None:
    many = [{**WEATHER, "function": {**WEATHER["function"], "name": f"f{i}"}} for i in range(1000)]
    assert refusal(tools=many)[0] == "tools"
    assert MAX_TOOLS == 128


def test_tool_choice_none_without_tools_is_accepted() -> None:
    assert chat(tool_choice="none").generation_request().tools is None


def test_a_replayed_call_and_its_result_reach_the_engine() -> None:
    request = chat(LOOP, tools=[WEATHER]).generation_request()
    assert request.messages is not None and request.messages[1]["tool_calls"] == [CALL]
    assert request.messages[2] == {"role": "tool", "content": "-3 C", "tool_call_id": "call_1"}


def test_the_fallback_writes_tools_calls_and_results_as_plain_turns() -> None:
    tools = [WEATHER]
    turns = fallback_turns([{"role": "system", "content": "Be brief."}, *LOOP, LOOP[2]], tools)
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[0]["content"].startswith("Be brief.\n\n") and json.dumps(WEATHER) in turns[0]["content"]
    # The call comes back through the parser as it went in; both results share one user turn.
    (call,) = read_whole(turns[2]["content"], calls=True).answer("stop").calls
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Oslo"}
    assert (
        turns[3]["content"].count("<tool_response>") == 2 and '"name": "get_weather"' in turns[3]["content"]
    )


def test_without_tools_shown_the_fallback_adds_no_system_turn() -> None:
    assert fallback_turns(LOOP, [])[0] == {"role": "user", "content": "Weather in Oslo?"}


def test_native_templates_get_arguments_as_objects_and_results_named() -> None:
    turns = native_turns(LOOP)
    assert turns[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert turns[2]["name"] == "get_weather"


def test_a_step_broken_by_a_tool_grammar_is_the_clients_400_naming_tools() -> None:
    request = chat(tools=[WEATHER], tool_choice="required").generation_request()
    assert request.constrained
    error = culprit_error(request, "Regex parsing error")
    assert isinstance(error, RequestRejected) and error.param == "tools"
    assert not chat(tools=[WEATHER], tool_choice="none").generation_request().constrained
