"""OpenAI request bodies: their shape checked strictly, their values mapped onto GenerationOptions.

The fields that carry generation options, their types and their documented bounds are derived from
GenerationOptions' declarations; the values are checked there alone, and an out-of-range value comes
back as a 400 that names the field by its OpenAI name. Below the HTTP layer errors name fields by
their neutral names (GenerationOptions', GenerationRequest's); refine() is where they become the
request's own.
"""

from __future__ import annotations

import copy
import json
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from ovchat.errors import ContextError, OptionsError, OvchatError, RequestRejected
from ovchat.options import FIELD_SPECS, OPENAI_NAMES, FieldSpec, GenerationOptions, Kind
from ovchat.prompt.messages import Message
from ovchat.prompt.request import GenerationRequest
from ovchat.server.protocol.http_errors import HttpRefusal
from ovchat.server.protocol.json_schema import check_json_schema
from ovchat.server.protocol.openai.tools import (
    ToolCallSpec,
    ToolChoiceField,
    ToolSpec,
    check_tool_turns,
    tool_use,
)


class Strict(BaseModel):
    """No type coercion ("5" is not a number); unknown fields are ignored, as OpenAI's SDK adds some."""

    model_config = ConfigDict(strict=True, extra="ignore")


def documented(spec: FieldSpec) -> Any:
    """A field whose bounds the OpenAPI document states, read from the GenerationOptions field's spec
    (checked there, not here: an out-of-range value gets the same plain 400 from every front end)."""
    bounds: dict[str, Any] = {"minimum" if spec.low_inclusive else "exclusiveMinimum": spec.low}
    if spec.high != float("inf"):
        bounds["maximum" if spec.high_inclusive else "exclusiveMaximum"] = spec.high
    return Field(default=None, json_schema_extra=bounds)


def _request_field(spec: FieldSpec) -> tuple[Any, Any]:
    """The type and default of the request field for one GenerationOptions field."""
    if spec.kind is Kind.TEXTS:
        return str | list[str] | None, None
    if spec.kind is Kind.SWITCH:
        return bool, False
    return (int if spec.kind is Kind.INTEGER else float) | None, documented(spec)


# The request fields derived from GenerationOptions. mypy cannot see fields made at run time, so it
# sees the bare base; the code reads them through SamplingRequest.value().
if TYPE_CHECKING:
    GenerationFields = Strict
else:
    GenerationFields = create_model(
        "GenerationFields",
        __base__=Strict,
        **{openai: _request_field(FIELD_SPECS[name]) for name, openai in OPENAI_NAMES.items()},
    )


class TextPart(Strict):
    type: Literal["text"]
    text: str


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None  # None only for an assistant's tool calls
    name: str | None = None
    tool_calls: list[ToolCallSpec] | None = None  # assistant
    tool_call_id: str | None = None  # tool

    def as_dict(self) -> Message:
        content = self.content or ""
        text = content if isinstance(content, str) else "".join(p.text for p in content)
        turn: Message = {"role": "system" if self.role == "developer" else self.role, "content": text}
        if self.tool_calls and self.role == "assistant":
            turn["tool_calls"] = [call.as_dict() for call in self.tool_calls]
        if self.role == "tool":
            turn["tool_call_id"] = self.tool_call_id
        return turn


class JsonSchemaSpec(Strict):
    name: str
    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class StreamOptions(Strict):
    include_usage: bool = False


class SamplingRequest(GenerationFields):
    """Fields shared by /v1/chat/completions and /v1/completions (and those of GenerationFields)."""

    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # Accepted only with their neutral values: anything else would change what is returned.
    n: int | None = None
    logit_bias: dict[str, float] | None = None

    def reject_unsupported(self) -> None:
        """Raise HttpRefusal naming the first field whose value ovchat cannot honour."""
        if self.n not in (None, 1):
            raise HttpRefusal("n > 1 is not supported: send one request per answer", param="n")
        if self.logit_bias:
            raise HttpRefusal("logit_bias is not supported", param="logit_bias")
        stops = self.value("stop")
        if len(stops) > 4 or any(not s for s in stops):
            raise HttpRefusal("stop takes up to 4 non-empty strings", param="stop")

    def value(self, option: str) -> Any:
        """The request's value for a GenerationOptions field, as GenerationOptions takes it."""
        given = getattr(self, OPENAI_NAMES[option])
        if FIELD_SPECS[option].kind is Kind.TEXTS:
            return (given,) if isinstance(given, str) else tuple(given or ())
        return given

    @property
    def max_tokens_name(self) -> str:
        """The field the client used for the answer budget."""
        return "max_tokens"

    @property
    def requested_tokens(self) -> int | None:
        tokens: int | None = self.value("max_new_tokens")
        return tokens

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def client_names(self) -> dict[str, str]:
        """The request's name for each neutral field name: OpenAI's, from the FieldSpecs, and for the
        answer budget the field this client used."""
        return {**OPENAI_NAMES, "max_new_tokens": self.max_tokens_name}

    def param_name(self, option: str | None) -> str | None:
        """The request field behind a GenerationOptions name."""
        return self.client_names().get(option, option) if option else None

    def name_fields(self, error: OvchatError) -> OvchatError:
        """`error` (from GenerationOptions or the engine) with the fields it names called as this
        request calls them: in its message (the first mention, ovchat's own words before GenAI's),
        and in a RequestRejected's `param`."""
        names = self.client_names()
        message = str(error)
        for neutral, own in names.items():
            if own != neutral:
                message = re.sub(rf"\b{re.escape(neutral)}\b", own, message, count=1)
        named = copy.copy(error)
        named.args = (message,)
        if isinstance(named, RequestRejected) and named.param:
            named.param = names.get(named.param, named.param)
        return named

    def refine(self, error: OvchatError) -> OvchatError:
        """An error from below, as this request tells it: its fields by its names, and a prompt that
        does not fit blamed on the field that holds it."""
        if isinstance(error, ContextError):
            return HttpRefusal(str(self.name_fields(error)), param=self.prompt_field, code=error.code)
        return self.name_fields(error)

    @property
    def prompt_field(self) -> str:
        return "prompt"

    def options(self) -> GenerationOptions:
        """The generation options this request asks for (None: the default); bad values -> 400."""
        values = {name: self.value(name) for name in OPENAI_NAMES}
        values["max_new_tokens"] = self.requested_tokens  # a chat's max_completion_tokens wins
        try:
            return GenerationOptions(**values)
        except OptionsError as exc:
            raise RequestRejected(str(self.name_fields(exc)), self.param_name(exc.option)) from None


class ChatRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = documented(FIELD_SPECS["max_new_tokens"])
    response_format: ResponseFormat | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoiceField = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    chat_template_kwargs: dict[str, Any] | None = None  # vLLM's and llama-server's: the template's variables
    reasoning_effort: str | None = None

    def reject_unsupported(self) -> None:
        super().reject_unsupported()
        if self.functions:
            raise HttpRefusal(
                "functions (the old function calling) is not supported: send tools", param="functions"
            )
        check_top_logprobs(self.top_logprobs, "top_logprobs")
        fmt = self.response_format
        if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is None:
            raise HttpRefusal(
                "response_format json_schema needs a 'json_schema' object",
                param="response_format.json_schema",
            )

    @property
    def prompt_field(self) -> str:
        return "messages"

    @property
    def max_tokens_name(self) -> str:
        return "max_completion_tokens" if self.max_completion_tokens is not None else "max_tokens"

    def client_names(self) -> dict[str, str]:
        return {**super().client_names(), "json_schema": "response_format"}

    @property
    def requested_tokens(self) -> int | None:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return super().requested_tokens

    def json_schema(self) -> str | None:
        """The JSON schema the answer must follow, as text, or None for free text."""
        fmt = self.response_format
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object" or fmt.json_schema is None:
            return json.dumps({"type": "object"})
        schema = fmt.json_schema.json_schema or {"type": "object"}
        check_json_schema(schema)
        return json.dumps(schema)

    def generation_request(self) -> GenerationRequest:
        self.reject_unsupported()
        messages = [m.as_dict() for m in self.messages]
        check_tool_turns(messages)
        tools = tool_use(self.tools, self.tool_choice, self.parallel_tool_calls)
        schema = self.json_schema()
        if tools is not None and tools.calls and schema is not None:
            raise HttpRefusal("response_format cannot be combined with tools", param="response_format")
        if tools is not None and tools.calls and self.logprobs:
            raise HttpRefusal("logprobs cannot be combined with tools that may be called", param="logprobs")
        return GenerationRequest(
            self.options(),
            messages=messages,
            json_schema=schema,
            tools=tools,
            logprobs=bool(self.logprobs),
            template_context=self.template_context(),
        )

    def template_context(self) -> dict[str, Any] | None:
        """The chat template's extra variables: chat_template_kwargs, and reasoning_effort "none" as
        enable_thinking false (the switch Qwen3-style templates read), unless the kwargs set it."""
        context = template_kwargs(self.chat_template_kwargs) or {}
        if self.reasoning_effort == "none":
            context.setdefault("enable_thinking", False)
        elif self.reasoning_effort is not None:
            raise HttpRefusal(
                f'reasoning_effort takes only "none" here, not {self.reasoning_effort!r}: it turns the '
                "template's thinking off (enable_thinking false); the model has no effort levels",
                param="reasoning_effort",
            )
        return context or None


class CompletionRequest(SamplingRequest):
    prompt: str | list[str]
    logprobs: bool | int | None = None  # the legacy field: how many alternatives besides the chosen token
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    def reject_unsupported(self) -> None:
        super().reject_unsupported()
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise HttpRefusal(
                "prompt must be one string (batches of prompts are not supported)", param="prompt"
            )
        if self.echo:
            raise HttpRefusal("echo is not supported", param="echo")
        if self.suffix:
            raise HttpRefusal("suffix is not supported", param="suffix")
        if not isinstance(self.logprobs, bool):
            check_top_logprobs(self.logprobs, "logprobs")
        if self.best_of not in (None, 1):
            raise HttpRefusal("best_of > 1 is not supported", param="best_of")
        if not self.text():
            raise HttpRefusal("prompt must not be empty", param="prompt")

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def generation_request(self) -> GenerationRequest:
        self.reject_unsupported()
        wanted = self.logprobs is not None and self.logprobs is not False  # 0 asks for the chosen token's
        return GenerationRequest(self.options(), prompt=self.text(), logprobs=wanted)


# What the request itself gives the template: chat_template_kwargs may not stand in for it.
TEMPLATE_OWN = ("messages", "tools", "add_generation_prompt")


def template_kwargs(kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    """chat_template_kwargs, checked: none of the template's own variables."""
    taken = sorted(set(kwargs or {}) & set(TEMPLATE_OWN))
    if taken:
        raise HttpRefusal(
            f"chat_template_kwargs cannot set {', '.join(taken)}: the request's own fields give those",
            param="chat_template_kwargs",
        )
    return dict(kwargs) if kwargs else None


def check_top_logprobs(count: int | None, name: str) -> None:
    """How many alternatives to each token a request may ask for: none, as the engine reports only
    the chosen token's logprob (GenAI's GenerationConfig.logprobs treats any value above 1 as 1)."""
    if count is not None and count != 0:
        raise HttpRefusal(
            f"{name} takes at most 0 here, not {count}: openvino-genai reports only the chosen token's "
            "logprob, not those of the alternatives (logprobs: true gives the chosen one's)",
            param=name,
        )
