"""OpenAI response bodies, as the OpenAPI document describes them (wire.py writes them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CalledFunctionBody(BaseModel):
    name: str
    arguments: str = Field(description="the arguments, a JSON object as text")


class ToolCallBody(BaseModel):
    id: str
    type: Literal["function"]
    function: CalledFunctionBody


class AnswerMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None = Field(description="null when the answer is only tool calls")
    reasoning_content: str | None = Field(
        default=None,
        description="the answer's <think> block, when the template opened one or the answer did; "
        "absent otherwise",
    )
    tool_calls: list[ToolCallBody] | None = None


class TokenLogprobBody(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[dict[str, object]] = Field(
        description="always empty: openvino-genai reports only the chosen token's logprob"
    )


class ChatLogprobs(BaseModel):
    content: list[TokenLogprobBody] | None


class ChatChoice(BaseModel):
    index: int
    message: AnswerMessage
    logprobs: ChatLogprobs | None
    finish_reason: Literal["stop", "length", "tool_calls"]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class TextLogprobs(BaseModel):
    """The legacy completions shape."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: None = Field(description="always null: openvino-genai reports only the chosen token's")
    text_offset: list[int]


class TextChoice(BaseModel):
    index: int
    text: str
    logprobs: TextLogprobs | None
    finish_reason: Literal["stop", "length"]


class TextCompletion(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    context_length: int | None = Field(
        description="ovchat extension: the most tokens one request (prompt and answer) may use; "
        "null when unknown"
    )
    tool_calls: Literal["native", "fallback", "none"] | None = Field(
        description="ovchat extension: how prompts carry tools — native: the model's chat template "
        "renders them; fallback: ovchat's Hermes-style system message; none: no chat template; "
        "null while the model loads"
    )

    reasoning: bool | None = Field(
        description="ovchat extension: whether the chat template writes a <think> block (answers then "
        "carry message.reasoning_content); null while the model loads"
    )


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class Health(BaseModel):
    status: str
    model: str | None = None
