"""The shared generation rules, in milliseconds: a fake tokenizer stands in for the model's."""

from __future__ import annotations

import math

import pytest

from ovchat.errors import ContextError, OptionsError, plain_message
from ovchat.options import DEFAULT_MAX_NEW_TOKENS, GenerationOptions
from ovchat.prompt.budget import Fit, answer_budget, fit_conversation
from ovchat.prompt.endings import finish_reason, is_degenerate, with_calls
from ovchat.prompt.messages import Message, check_messages
from ovchat.prompt.tools.hermes import ToolCall


def encode(text: str) -> list[int]:
    """One token per word."""
    return [len(word) for word in text.split()]


def render(messages: list[Message]) -> str:
    """The template frames each message in two tokens."""
    return " ".join(f"<{m['role']}> {m['content']} </>" for m in messages) + " <assistant>"


def fit(messages: list[Message], context: int | None, requested: int | None) -> Fit:
    return fit_conversation(messages, render, encode, context, requested)


def turns(*texts: str) -> list[Message]:
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": text} for i, text in enumerate(texts)]


def test_budget_defaults_to_512_and_is_cut_to_the_room_left() -> None:
    assert answer_budget(10, None, None) == DEFAULT_MAX_NEW_TOKENS
    assert answer_budget(10, 8192, None) == DEFAULT_MAX_NEW_TOKENS
    assert answer_budget(8000, 8192, None) == 192
    assert answer_budget(8000, 8192, 1000) == 192  # an explicit request is cut too, unless strict
    assert answer_budget(10, 8192, 64) == 64


def test_budget_strict_refuses_an_explicit_request_that_does_not_fit() -> None:
    assert answer_budget(8000, 8192, None, strict=True) == 192  # no request: the room decides
    with pytest.raises(
        ContextError, match="context window is 8192 tokens, but the prompt takes 8000 plus 1000"
    ):
        answer_budget(8000, 8192, 1000, strict=True)


def test_budget_refuses_a_prompt_that_fills_the_context() -> None:
    with pytest.raises(ContextError, match=r"prompt takes 8192: shorten the input$"):
        answer_budget(8192, 8192, None)


def test_budget_ceiling_caps_the_default_and_refuses_more() -> None:
    assert answer_budget(10, 8192, None, ceiling=100) == 100
    assert answer_budget(10, 8192, 100, ceiling=100) == 100
    with pytest.raises(
        OptionsError, match=r"^max_new_tokens must be at most 100 on this server, not 101$"
    ) as caught:
        answer_budget(10, 8192, 101, ceiling=100)
    assert caught.value.option == "max_new_tokens"


def test_fit_keeps_a_conversation_that_fits_untouched() -> None:
    messages = [{"role": "system", "content": "Be brief."}, *turns("hi", "hello", "how are you")]
    fitted = fit(messages, 1000, 8)
    assert (fitted.messages, fitted.dropped, fitted.max_new_tokens) == (messages, 0, 8)
    assert fitted.prompt == render(messages)


def test_fit_drops_whole_oldest_exchanges_but_never_the_system_prompt() -> None:
    system = {"role": "system", "content": "Be brief."}
    messages = [system, *turns("one two three four", "five six seven eight", "nine ten", "eleven", "last")]
    fitted = fit(messages, 20, 4)
    assert fitted.messages[0] == system and fitted.messages[-1]["content"] == "last"
    assert fitted.dropped % 2 == 0 and fitted.dropped > 0  # user + assistant pairs
    assert fitted.ids == encode(fitted.prompt) and fitted.prompt == render(fitted.messages)
    assert len(fitted.ids) + fitted.max_new_tokens <= 20


def test_fit_drops_a_tool_exchange_whole_so_no_result_outlives_its_call() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "one two three four five"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "six seven eight nine"},
        {"role": "assistant", "content": "ten eleven"},
        {"role": "user", "content": "last"},
    ]
    fitted = fit(messages, 12, 4)
    assert fitted.dropped == 4 and fitted.messages == messages[4:]


def test_fit_cuts_the_answer_budget_only_when_the_last_message_alone_is_left() -> None:
    fitted = fit(turns("a b c d e f g h"), 14, 100)
    assert fitted.dropped == 0 and fitted.max_new_tokens == 14 - 11


def test_fit_refuses_a_single_message_larger_than_the_context() -> None:
    with pytest.raises(ContextError, match="context window is 10"):
        fit(turns("word " * 20), 10, None)


@pytest.mark.parametrize(
    ("genai", "cancelled", "expected"),
    [
        ("STOP", False, "stop"),
        ("LENGTH", False, "length"),
        ("NONE", False, "stop"),
        ("LENGTH", True, "cancelled"),
    ],
)
def test_finish_reasons(genai: str, cancelled: bool, expected: str) -> None:
    assert finish_reason(genai, cancelled) == expected


def test_an_answer_that_made_a_whole_call_finishes_with_tool_calls() -> None:
    whole, cut = ToolCall("f", "{}"), ToolCall("f", '{"a": ', complete=False)
    assert with_calls("stop", [whole]) == "tool_calls"
    assert with_calls("stop", [cut]) == "stop" and with_calls("stop", []) == "stop"
    assert with_calls("length", [whole]) == "length"  # out of tokens is said as such


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        (
            "[01:11:23] /home/jenkins/agent/workspace/b/repos/openvino.genai/_deps/xgrammar-src/cpp/"
            'json_schema_converter.cc:898: Unsupported type "nonsense"\n',
            'Unsupported type "nonsense"',
        ),
        (
            "[01:11:23] /home/x/xgrammar-src/cpp/json_schema_converter.cc:1896: Check failed: "
            "(!(start && end) || *start <= *end) is false: Invalid range: minimum greater than maximum\n",
            "Invalid range: minimum greater than maximum",
        ),
        (
            "Exception from src/inference/src/cpp/core.cpp:117:\n"
            "Exception from src/inference/src/dev/core_impl.cpp:706:\n"
            'Device with "NOPE" name is not registered in the OpenVINO Runtime\n\n',
            'Device with "NOPE" name is not registered in the OpenVINO Runtime',
        ),
        (
            "Check 'x' failed at src/core/src/model.cpp:12:\nIncorrect weights in bin file",
            "Incorrect weights in bin file",
        ),
        ("", "RuntimeError"),
    ],
)
def test_genai_errors_lose_their_build_machine_paths(raw: str, plain: str) -> None:
    message = plain_message(RuntimeError(raw))
    assert message == plain
    assert "/home/" not in message and ".cc" not in message and ".cpp" not in message


def test_a_loop_to_the_limit_is_degenerate_and_a_long_answer_is_not() -> None:
    phrase = [5, 6, 7, 8, 9, 10]
    looping = [1, 2, 3] + phrase * 30
    assert is_degenerate(looping, hit_limit=True)
    assert not is_degenerate(looping, hit_limit=False)  # it ended by itself: not a runaway loop
    varied = [(i * 7919) % 1000 for i in range(200)]
    assert not is_degenerate(varied, hit_limit=True)
    assert is_degenerate(varied + [42] * 60, hit_limit=True)  # one token repeated at the end


def test_messages_must_have_known_roles_and_text() -> None:
    assert check_messages([{"role": "user", "content": "hi", "extra": 1}]) == [
        {"role": "user", "content": "hi"}
    ]
    for bad, message in [
        ("x", "must be a list"),
        ([{"role": "robot", "content": "x"}], "role 'robot'"),
        ([{"role": "user", "content": 5}], "text 'content'"),
        ([3], "text 'content'"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_messages(bad)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_new_tokens": 0}, r"max_new_tokens must be in \[1, ∞\], not 0"),
        ({"temperature": 2.5}, r"temperature must be in \[0, 2\], not 2.5"),
        ({"temperature": math.nan}, "temperature must be in"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\], not 0.0"),
        ({"top_p": 5e-324}, r"top_p must be in \(0, 1\], not 0.0"),  # 0 in GenAI's float32
        ({"temperature": 1e300}, r"temperature must be in \[0, 2\], not inf"),
        ({"top_k": 0}, "top_k must be in"),
        ({"min_p": 1.0}, r"min_p must be in \[0, 1\), not 1.0"),
        ({"repetition_penalty": math.inf}, "repetition_penalty must be in"),
        ({"presence_penalty": -3}, "presence_penalty must be in"),
        ({"seed": 2**64}, "seed must be in"),
        ({"temperature": True}, "temperature must be a number"),
        ({"max_new_tokens": 1.5}, "max_new_tokens must be an integer"),
        ({"stop": ("",)}, "stop strings must be non-empty"),
    ],
)
def test_options_bounds_are_checked_in_one_place(changes: dict[str, object], message: str) -> None:
    with pytest.raises(OptionsError, match=message) as caught:
        GenerationOptions(**changes)  # type: ignore[arg-type]
    assert caught.value.option == next(iter(changes))


def test_options_none_means_the_default() -> None:
    options = GenerationOptions()
    assert options.max_new_tokens is None and options.temperature is None
    assert "max_new_tokens = (default: 512" in options.describe()
