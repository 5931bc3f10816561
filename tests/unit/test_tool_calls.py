"""Reading Hermes-style tool calls out of an answer, whole and in pieces."""

from __future__ import annotations

import json

import pytest

from ovchat.prompt.tools.hermes import (
    ArgumentsPiece,
    CallStarted,
    ContentPiece,
    ParseEvent,
    ToolCall,
    ToolCallParser,
    call_text,
)

WEATHER = call_text("get_weather", '{"city": "Paris", "unit": "c"}')


def parse_answer(text: str) -> tuple[str | None, list[ToolCall]]:
    """A whole answer read by the parser alone: its content (None when there is none) and its calls."""
    parser = ToolCallParser()
    parser.feed(text)
    parser.finish()
    return parser.content or None, parser.calls


def fed(pieces: list[str]) -> tuple[ToolCallParser, list[ParseEvent]]:
    parser = ToolCallParser()
    events = [event for piece in pieces for event in parser.feed(piece)]
    return parser, events + parser.finish()


def replay(events: list[ParseEvent]) -> tuple[str, dict[int, tuple[str, str]]]:
    """What a client accumulating the events ends with: the content and each call's name, arguments."""
    content, calls = "", {}
    for event in events:
        if isinstance(event, ContentPiece):
            content += event.text
        elif isinstance(event, CallStarted):
            assert event.index not in calls, "a call starts once"
            calls[event.index] = (event.name, "")
        else:
            name, arguments = calls[event.index]
            calls[event.index] = (name, arguments + event.text)
    return content, calls


def test_a_whole_call_is_its_name_and_arguments_and_no_content() -> None:
    assert parse_answer(WEATHER) == (None, [ToolCall("get_weather", '{"city": "Paris", "unit": "c"}')])
    assert json.loads(parse_answer(WEATHER)[1][0].arguments) == {"city": "Paris", "unit": "c"}


def test_text_without_calls_is_content() -> None:
    assert parse_answer("Paris is sunny.") == ("Paris is sunny.", [])


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11, 1000])
def test_any_split_gives_the_whole_answer(size: int) -> None:
    text = "Let me check.\n" + WEATHER + "\n" + call_text("get_time", '{"tz": "CET}"}') + "\n"
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    parser, events = fed(pieces)
    content, calls = replay(events)
    whole_content, whole_calls = parse_answer(text)
    assert content == whole_content == "Let me check."
    assert [ToolCall(*calls[i]) for i in sorted(calls)] == whole_calls == parser.calls
    assert [c.name for c in whole_calls] == ["get_weather", "get_time"]
    assert json.loads(whole_calls[1].arguments) == {"tz": "CET}"}


def test_the_name_comes_before_the_arguments_end() -> None:
    parser = ToolCallParser()
    events = parser.feed('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par')
    assert events == [CallStarted(0, "get_weather"), ArgumentsPiece(0, '{"city": "Par')]


def test_a_closing_brace_is_held_back_until_the_call_closes() -> None:
    parser = ToolCallParser()
    parser.feed('<tool_call>{"name": "f", "arguments": {"a": 1}')
    assert parser.feed("}") == [ArgumentsPiece(0, "}")]  # the last "}" may close the call: held
    assert parser.feed("\n</tool_call>") == []
    assert parser.calls == [ToolCall("f", '{"a": 1}')]


def test_other_spacing_and_key_order_still_parse() -> None:
    text = '<tool_call>{"arguments": {"q": "x"}, "name": "search"}</tool_call>'
    assert parse_answer(text) == (None, [ToolCall("search", '{"q": "x"}')])
    compact = '<tool_call>{"name":"search","arguments":{"q":"x"}}</tool_call>'
    assert parse_answer(compact) == (None, [ToolCall("search", '{"q":"x"}')])


def test_a_tag_that_holds_no_call_stays_content() -> None:
    text = "see <tool_call>not json</tool_call> here"
    assert parse_answer(text) == (text, [])


def test_a_partial_tag_at_the_end_is_content() -> None:
    assert parse_answer("a <tool_ca") == ("a <tool_ca", [])


def test_an_answer_cut_inside_a_call_keeps_it_incomplete() -> None:
    content, calls = parse_answer('<tool_call>\n{"name": "f", "arguments": {"a": "lo')
    assert content is None and calls == [ToolCall("f", '{"a": "lo', complete=False)]
    _, events = fed(['<tool_call>\n{"name": "f", "arguments": {"a": "lo'])
    assert replay(events)[1] == {0: ("f", '{"a": "lo')}


def test_an_answer_cut_before_the_name_is_content() -> None:
    assert parse_answer('<tool_call>\n{"na') == ('<tool_call>\n{"na', [])
