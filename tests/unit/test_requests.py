"""OpenAI request bodies -> engine requests, JSON-schema checks and error bodies, without a model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ovchat.errors import (
    ContextError,
    GenerationError,
    OptionsError,
    OvchatError,
    RequestRejected,
    Unavailable,
)
from ovchat.options import GenerationOptions
from ovchat.prompt.budget import answer_budget
from ovchat.prompt.request import GenerationRequest
from ovchat.server.engine.recovery import culprit_error
from ovchat.server.protocol.http_errors import HttpRefusal, error_reply
from ovchat.server.protocol.json_schema import check_json_schema, unsupported_regex
from ovchat.server.protocol.openai.requests import ChatRequest, CompletionRequest


def chat(**fields: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], **fields})


def test_openai_names_map_onto_generation_options() -> None:
    request = chat(
        max_tokens=10,
        temperature=0.5,
        top_p=0.9,
        seed=3,
        stop="END",
        presence_penalty=0.1,
        frequency_penalty=-0.1,
        ignore_eos=True,
    ).generation_request()
    options = request.options
    assert (options.max_new_tokens, options.temperature, options.top_p, options.seed) == (10, 0.5, 0.9, 3)
    assert (options.stop, options.presence_penalty, options.frequency_penalty) == (("END",), 0.1, -0.1)
    assert options.ignore_eos and request.messages == [{"role": "user", "content": "hi"}]


def test_no_max_tokens_means_the_default_budget_and_max_completion_tokens_wins() -> None:
    assert chat().generation_request().options.max_new_tokens is None
    body = chat(max_tokens=10, max_completion_tokens=20)
    assert (
        body.generation_request().options.max_new_tokens == 20
        and body.max_tokens_name == "max_completion_tokens"
    )


def test_content_parts_join_and_developer_is_a_system_message() -> None:
    body = {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        ]
    }
    assert ChatRequest.model_validate(body).generation_request().messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "ab"},
    ]


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"max_tokens": 0}, "max_tokens", "max_tokens must be in [1, ∞], not 0"),
        ({"max_completion_tokens": -5}, "max_completion_tokens", "max_completion_tokens must be in"),
        ({"temperature": 7.0}, "temperature", "temperature must be in [0, 2], not 7.0"),
        ({"top_p": 0}, "top_p", "top_p must be in (0, 1]"),
        ({"seed": -1}, "seed", "seed must be in"),
        ({"frequency_penalty": float("nan")}, "frequency_penalty", "frequency_penalty must be in"),
    ],
)
def test_out_of_range_values_get_400_naming_the_openai_field(
    fields: dict[str, Any], param: str, message: str
) -> None:
    with pytest.raises(RequestRejected) as caught:
        chat(**fields).generation_request()
    assert caught.value.param == param and str(caught.value).startswith(message)
    response = error_reply(caught.value).response()
    body = json.loads(bytes(response.body))
    assert response.status_code == 400 and body["error"]["param"] == param


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True, "tools": [{"type": "function", "function": {"name": "f"}}]}, "logprobs"),
        ({"logit_bias": {"1": 2.0}}, "logit_bias"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ],
)
def test_unsupported_fields_are_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(HttpRefusal) as caught:
        chat(**fields).generation_request()
    assert caught.value.param == param


def test_top_logprobs_above_what_the_engine_gives_is_refused_naming_the_limit() -> None:
    for request in (
        chat(logprobs=True, top_logprobs=2),
        CompletionRequest.model_validate({"prompt": "x", "logprobs": 3}),
    ):
        with pytest.raises(HttpRefusal) as caught:
            request.generation_request()
        assert "at most 0" in str(caught.value) and "chosen token" in str(caught.value)
        assert caught.value.param in ("top_logprobs", "logprobs")
    assert chat(logprobs=True, top_logprobs=0).generation_request().logprobs
    assert not chat(logprobs=False).generation_request().logprobs
    for legacy, wanted in ((0, True), (True, True), (None, False), (False, False)):
        body = {"prompt": "x", "logprobs": legacy}
        assert CompletionRequest.model_validate(body).generation_request().logprobs is wanted


def test_completions_take_one_non_empty_prompt() -> None:
    assert CompletionRequest.model_validate({"prompt": ["x"]}).generation_request().prompt == "x"
    for prompt in ("", ["a", "b"]):
        with pytest.raises(HttpRefusal, match="prompt"):
            CompletionRequest.model_validate({"prompt": prompt}).generation_request()


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "nonsense"}, "invalid JSON schema at type"),
        ({"type": "string", "pattern": "(unclosed"}, "is not a 'regex'"),
        ({"$ref": "#/$defs/missing"}, "points to nothing"),
        ({"type": "integer", "minimum": 5, "maximum": 1}, "minimum (5) is greater than maximum (1)"),
        ({"type": "string", "minLength": 5, "maxLength": 1}, "minLength"),
        ({"type": "array", "minItems": 3, "maxItems": 1}, "minItems"),
        ({"type": "object", "minProperties": 3, "maxProperties": 1}, "minProperties"),
        ({"enum": []}, "enum at # is empty"),
        ({"type": "array", "items": False, "minItems": 1}, "needs 1 items but allows 0"),
        ({"type": "string", "pattern": "(?<=a)b"}, "a lookbehind"),
        ({"type": "string", "pattern": "a(?!b)"}, "a lookahead"),
        ({"type": "string", "pattern": "(a)\\1"}, "a backreference"),
        ({"type": "string", "pattern": "\\bword"}, "a word boundary"),
        ({"type": "string", "pattern": "\\N{DIGIT ONE}"}, "a named character escape"),
        ({"type": "string", "pattern": "(?P<x>a)"}, "a group modifier"),
        (
            {"properties": {"a": {"properties": {"b": {"$ref": "#/nowhere"}}}}},
            "at #/properties/a/properties/b",
        ),
        ("not an object", "must be an object"),
        ({"properties": {"a": {"type": "string"}, "b": {"$ref": "#/properties/a/type"}}}, "not a schema"),
        ({"type": "integer", "minimum": 0.5}, "minimum 0.5 of the integer at # is not a whole number"),
        ({"type": "object", "properties": {'a"b': {}}}, "has a quote, backslash or control character"),
        ({"type": "object", "required": ["\u0001"]}, "has a quote, backslash or control character"),
        ({"type": "string", "pattern": "a++"}, "two quantifiers in a row"),
        ({"type": "string", "pattern": "a{2}+"}, "two quantifiers in a row"),
    ],
)
def test_schemas_xgrammar_cannot_compile_are_refused_up_front(schema: Any, message: str) -> None:
    with pytest.raises(RequestRejected, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        check_json_schema(schema)
    assert caught.value.param == "response_format.json_schema.schema"


@pytest.mark.parametrize(
    "pattern",
    ["^\\d{3}-\\w+$", "(?:ab)+", "(?<name>a)", "[(?=]x", "\\(?=", "[\\]]b", "a+?", "a{2,3}b", "{x}+"],
)
def test_regexes_xgrammar_supports_pass(pattern: str) -> None:
    assert unsupported_regex(pattern) is None


def test_supported_schemas_pass() -> None:
    check_json_schema(
        {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 20},
                "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
            },
            "$defs": {"tag": {"enum": ["a", "b"]}},
            "required": ["city"],
        }
    )


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (RequestRejected("bad", "x"), 400, None),
        (ContextError("too long"), 400, "context_length_exceeded"),
        (OptionsError("bad", option="top_p"), 400, None),
        (Unavailable("busy", "queue_full", 3), 503, "queue_full"),
        (GenerationError("generation failed: x"), 500, "generation_failed"),
        (OvchatError("something"), 500, None),
        (RuntimeError("/secret/path.cpp:1 boom"), 500, None),
    ],
)
def test_every_error_is_an_openai_error_body(error: Exception, status: int, code: str | None) -> None:
    response = error_reply(error).response()
    body = json.loads(bytes(response.body))["error"]
    assert response.status_code == status and set(body) == {"message", "type", "param", "code"}
    assert body["code"] == code
    if status == 503:
        assert response.headers["Retry-After"] == "3"
    if not isinstance(error, OvchatError):
        assert body["message"] == "internal server error"  # never an internal message or path


def rendered(body: ChatRequest | CompletionRequest, error: OvchatError) -> dict[str, Any]:
    reply: dict[str, Any] = error_reply(body.name_fields(error)).body["error"]
    return reply


def test_the_engine_s_neutral_names_reach_the_client_as_the_fields_it_sent() -> None:
    with pytest.raises(OptionsError) as ceiling:
        answer_budget(10, 8192, 51, ceiling=50)
    assert rendered(chat(max_tokens=51), ceiling.value) == {
        "message": "max_tokens must be at most 50 on this server, not 51",
        "type": "invalid_request_error",
        "param": "max_new_tokens",  # the option's own name, as the server has always said
        "code": None,
    }
    assert str(chat(max_completion_tokens=51).name_fields(ceiling.value)).startswith("max_completion_tokens ")
    with pytest.raises(ContextError) as context:
        answer_budget(8000, 8192, 1000, strict=True)
    assert str(chat(max_completion_tokens=1000).name_fields(context.value)).endswith(
        "shorten the input or lower max_completion_tokens"
    )
    schema = culprit_error(ask_for_json(), "Regex parsing error (json_schema)")
    assert rendered(chat(), schema) == {
        "message": "the response_format schema cannot be used: Regex parsing error (json_schema)",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": None,
    }
    full = Unavailable("retry later, or lower max_new_tokens", "kv_cache_full")
    assert rendered(CompletionRequest.model_validate({"prompt": "x"}), full)["message"].endswith("max_tokens")


def ask_for_json() -> GenerationRequest:
    return GenerationRequest(
        GenerationOptions(), messages=[{"role": "user", "content": "hi"}], json_schema="{}"
    )
