"""OpenAI request bodies, validated strictly, and turned into ovchat's GenerationOptions."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ovchat.errors import OvchatError
from ovchat.options import DEFAULT_MAX_NEW_TOKENS, GenerationOptions


class RequestError(OvchatError):
    """A request the server refuses, with the HTTP status and the field to blame."""

    def __init__(self, message: str, status: int = 400, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error") -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code
        self.kind = kind


class Strict(BaseModel):
    """No type coercion ("5" is not a number); unknown fields are ignored, as OpenAI's SDK adds some."""

    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(Strict):
    type: Literal["text"]
    text: str


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def as_dict(self) -> dict[str, str]:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": self.role, "content": text}


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


class SamplingRequest(Strict):
    """Fields shared by /v1/chat/completions and /v1/completions."""

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    ignore_eos: bool = False  # not OpenAI's; vLLM's name for it: always generate max_tokens (benchmarks)
    # Accepted only with their neutral values: anything else would change what is returned.
    n: int | None = None
    logprobs: bool | int | None = None
    logit_bias: dict[str, float] | None = None

    def reject_unsupported(self) -> None:
        """Raise RequestError naming the first field whose value ovchat cannot honour."""
        if self.n not in (None, 1):
            raise RequestError("n > 1 is not supported: send one request per answer", param="n")
        if self.logprobs not in (None, False, 0):
            raise RequestError("logprobs are not supported", param="logprobs")
        if self.logit_bias:
            raise RequestError("logit_bias is not supported", param="logit_bias")
        stops = [self.stop] if isinstance(self.stop, str) else self.stop or []
        if len(stops) > 4 or any(not s for s in stops):
            raise RequestError("stop takes up to 4 non-empty strings", param="stop")

    @property
    def max_tokens_given(self) -> int | None:
        return self.max_tokens

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def options(self) -> GenerationOptions:
        """The generation options this request asks for (None: the model's default)."""
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return GenerationOptions(
            max_new_tokens=self.max_tokens_given or DEFAULT_MAX_NEW_TOKENS,
            temperature=self.temperature,
            top_p=self.top_p,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=self.seed,
            stop=stop,
            ignore_eos=self.ignore_eos,
        )


class ChatRequest(SamplingRequest):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    top_logprobs: int | None = None

    def reject_unsupported(self) -> None:
        super().reject_unsupported()
        for name in ("tools", "functions"):
            if getattr(self, name):
                raise RequestError(f"{name} (function calling) is not supported", param=name)
        if self.tool_choice not in (None, "none"):
            raise RequestError("tool_choice is not supported", param="tool_choice")
        if self.top_logprobs:
            raise RequestError("top_logprobs is not supported", param="top_logprobs")
        fmt = self.response_format
        if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is None:
            raise RequestError("response_format json_schema needs a 'json_schema' object",
                               param="response_format.json_schema")  # fmt: skip

    @property
    def max_tokens_given(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def chat_messages(self) -> list[dict[str, str]]:
        return [m.as_dict() for m in self.messages]

    def json_schema(self) -> str | None:
        """The JSON schema the answer must follow, as text, or None for free text."""
        fmt = self.response_format
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object" or fmt.json_schema is None:
            return json.dumps({"type": "object"})
        return json.dumps(fmt.json_schema.json_schema or {"type": "object"})


class CompletionRequest(SamplingRequest):
    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    def reject_unsupported(self) -> None:
        super().reject_unsupported()
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise RequestError("prompt must be one string (batches of prompts are not supported)",
                               param="prompt")  # fmt: skip
        if self.echo:
            raise RequestError("echo is not supported", param="echo")
        if self.suffix:
            raise RequestError("suffix is not supported", param="suffix")
        if self.best_of not in (None, 1):
            raise RequestError("best_of > 1 is not supported", param="best_of")

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]
