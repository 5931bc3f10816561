"""OpenAI's response shapes, declared once: the writer (openai.writer) builds these models and the
routes document them, so the OpenAPI document and the wire cannot drift.

A field is on the wire when the writer sets it, even to null (OpenAI's clients read `content: null`,
`logprobs: null`); a field it leaves unset (`reasoning_content`, `tool_calls`) is absent: the
writer dumps with exclude_unset.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, Field


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


ChatFinish = Literal["stop", "length", "tool_calls"]


class ChatChoice(BaseModel):
    index: int
    message: AnswerMessage
    logprobs: ChatLogprobs | None
    finish_reason: ChatFinish


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class FunctionDelta(BaseModel):
    name: str | None = None  # in a call's first delta only
    arguments: str


class ToolCallDelta(BaseModel):
    index: int
    id: str | None = None  # in a call's first delta only, with type and the function's name
    type: Literal["function"] | None = None
    function: FunctionDelta


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None  # the first chunk's
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None
    finish_reason: ChatFinish | None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed chat answer."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = Field(
        default=None, description="with stream_options.include_usage: null, then the last chunk's"
    )


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


class TextChunkChoice(BaseModel):
    index: int
    text: str
    logprobs: TextLogprobs | None
    finish_reason: Literal["stop", "length"] | None


class TextCompletionChunk(BaseModel):
    """One server-sent event of a streamed completion."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextChunkChoice]
    usage: Usage | None = Field(
        default=None, description="with stream_options.include_usage: null, then the last chunk's"
    )


class ModelState(str, Enum):
    LOADED = "loaded"
    LOADING = "loading"
    UNLOADED = "unloaded"
    UNLOADING = "unloading"
    RECOVERING = "recovering"
    FAILED = "failed"


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    kind: Literal["chat", "embedding", "rerank"] = Field(
        default="chat",
        description="ovchat extension: what the model serves (chat: chat and completions; embedding: "
        "/v1/embeddings; rerank: /v1/rerank)",
    )
    state: ModelState = Field(
        default=ModelState.LOADED,
        description="ovchat extension: loaded (answers at once), loading, unloaded (loads on the first "
        "request), unloading, recovering (rebuilding after a failed step), failed (its last load failed: "
        "`error` says why; POST /v1/models/{id}/load tries again)",
    )
    error: str | None = Field(default=None, description="ovchat extension: why the model failed")
    context_length: int | None = Field(
        description="ovchat extension: the most tokens one request (prompt and answer) may use; "
        "null when unknown"
    )
    tool_calls: Literal["native", "fallback", "none"] | None = Field(
        description="ovchat extension: how prompts carry tools — native: the model's chat template "
        "renders them; fallback: ovchat's Hermes-style system message; none: no chat template; "
        "null until the model has been loaded"
    )

    reasoning: bool | None = Field(
        description="ovchat extension: whether the chat template writes a <think> block (answers then "
        "carry message.reasoning_content); null until the model has been loaded"
    )


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class Health(BaseModel):
    status: str
    model: str | None = Field(default=None, description="the model, when one is served")
    models: dict[str, ModelState] | None = Field(default=None, description="each model's state")
