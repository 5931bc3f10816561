"""OpenAI's wire format for one answer: the whole body, or its server-sent-event chunks, built from
the models of openai.responses (AnswerWriter, for chat.completion and text_completion).

Logprobs ride with the chunk that carries their tokens' text; tokens that made no text yet (half a
character) wait for the next one. A chat's reasoning streams as `delta.reasoning_content`, its calls
as `delta.tool_calls` pieces (a call's index, id and name first, then its arguments in pieces).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel

from ovchat.errors import OvchatError
from ovchat.prompt.answer import Answer, AnswerEvent, ReasoningPiece
from ovchat.prompt.tokens import TokenLogprob, Usage
from ovchat.prompt.tools.hermes import ArgumentsPiece, CallStarted, ContentPiece
from ovchat.server.protocol.http_errors import error_reply
from ovchat.server.protocol.openai import responses as body
from ovchat.server.protocol.stream import sse

Logprobs = list[TokenLogprob] | None  # None: the client did not ask for them


def usage_body(usage: Usage) -> body.Usage:
    return body.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def chat_logprobs(logprobs: Logprobs) -> body.ChatLogprobs | None:
    """A chat choice's `logprobs`; no alternatives: the engine reports only the chosen token's."""
    if logprobs is None:
        return None
    listed = [
        body.TokenLogprobBody(token=t.token, logprob=t.logprob, bytes=t.bytes, top_logprobs=[])
        for t in logprobs
    ]
    return body.ChatLogprobs(content=listed)


def text_logprobs(logprobs: Logprobs) -> body.TextLogprobs | None:
    """A completion choice's legacy `logprobs` arrays."""
    if logprobs is None:
        return None
    return body.TextLogprobs(
        tokens=[t.token for t in logprobs],
        token_logprobs=[t.logprob for t in logprobs],
        top_logprobs=None,
        text_offset=[t.offset for t in logprobs],
    )


def wire(model: BaseModel) -> dict[str, Any]:
    """A model as JSON data, with exactly the fields the writer set (nulls included)."""
    return model.model_dump(exclude_unset=True)


def event(model: BaseModel) -> bytes:
    """A model as one server-sent event, serialized by pydantic's own JSON encoder. A stream writes a
    chunk a token: measured per content chunk through the writer, 5.9 us this way, 9.7 through a dict
    and json.dumps (the hand-built dicts before these models: 4.1)."""
    return sse(model.model_dump_json(exclude_unset=True))


class _Writer:
    """What chat and completion answers share: ids, the pending logprobs, the stream's end."""

    media_type = "text/event-stream"
    prefix = ""

    def __init__(self, model: str, include_usage: bool = False, logprobs: bool = False) -> None:
        self.id = f"{self.prefix}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self._pending: Logprobs = [] if logprobs else None

    def _take(self) -> Logprobs:
        taken, self._pending = self._pending, [] if self._pending is not None else None
        return taken

    def _ids(self) -> dict[str, Any]:
        return {"id": self.id, "created": self.created, "model": self.model}

    def _head(self) -> dict[str, Any]:
        head = self._ids()
        if self.include_usage:
            head["usage"] = None  # the usage chunk comes last
        return head

    def failure(self, error: OvchatError) -> list[bytes]:
        return [error_reply(error).event(), sse("[DONE]")]


class ChatWriter(_Writer):
    """A chat answer: chat.completion, or chat.completion.chunk events."""

    prefix = "chatcmpl"

    def whole(self, answer: Answer, usage: Usage, logprobs: Logprobs) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": answer.content or (None if answer.calls else ""),
        }
        if answer.reasoning is not None:
            message["reasoning_content"] = answer.reasoning
        if answer.calls:
            message["tool_calls"] = [
                body.ToolCallBody(
                    id=c.id,
                    type="function",
                    function=body.CalledFunctionBody(name=c.name, arguments=c.arguments),
                )
                for c in answer.calls
            ]
        choice = body.ChatChoice(
            index=0,
            message=body.AnswerMessage(**message),
            logprobs=chat_logprobs(logprobs),
            finish_reason=answer.finish_reason,  # type: ignore[arg-type]  # never "cancelled" here
        )
        completion = body.ChatCompletion(
            **self._ids(), object="chat.completion", choices=[choice], usage=usage_body(usage)
        )
        return wire(completion)

    def opening(self) -> list[bytes]:
        return [self._chunk(body.ChatDelta(role="assistant", content=""), None, None)]

    def events(self, events: list[AnswerEvent], logprobs: list[TokenLogprob]) -> list[bytes]:
        if self._pending is not None:
            self._pending.extend(logprobs)
        return [self._chunk(self._delta(event), None, self._take()) for event in events]

    def closing(self, answer: Answer, usage: Usage) -> list[bytes]:
        out = [self._chunk(body.ChatDelta(), answer.finish_reason, self._take() or None)]
        if self.include_usage:
            last = body.ChatCompletionChunk(
                **{**self._head(), "usage": usage_body(usage)}, object="chat.completion.chunk", choices=[]
            )
            out.append(event(last))
        return [*out, sse("[DONE]")]

    @staticmethod
    def _delta(event: AnswerEvent) -> body.ChatDelta:
        if isinstance(event, ReasoningPiece):
            return body.ChatDelta(reasoning_content=event.text)
        if isinstance(event, ContentPiece):
            return body.ChatDelta(content=event.text)
        if isinstance(event, CallStarted):
            function = body.FunctionDelta(name=event.name, arguments="")
            call = body.ToolCallDelta(index=event.index, id=event.id, type="function", function=function)
            return body.ChatDelta(tool_calls=[call])
        assert isinstance(event, ArgumentsPiece)
        pieces = body.ToolCallDelta(index=event.index, function=body.FunctionDelta(arguments=event.text))
        return body.ChatDelta(tool_calls=[pieces])

    def _chunk(self, delta: body.ChatDelta, finish: str | None, logprobs: Logprobs) -> bytes:
        choice = body.ChunkChoice(
            index=0,
            delta=delta,
            logprobs=chat_logprobs(logprobs),
            finish_reason=finish,  # type: ignore[arg-type]
        )
        return event(
            body.ChatCompletionChunk(**self._head(), object="chat.completion.chunk", choices=[choice])
        )


class CompletionWriter(_Writer):
    """A raw completion: text_completion, whole or as events."""

    prefix = "cmpl"

    def whole(self, answer: Answer, usage: Usage, logprobs: Logprobs) -> dict[str, Any]:
        choice = body.TextChoice(
            index=0,
            text=answer.content,
            logprobs=text_logprobs(logprobs),
            finish_reason=answer.finish_reason,  # type: ignore[arg-type]
        )
        return wire(
            body.TextCompletion(
                **self._ids(), object="text_completion", choices=[choice], usage=usage_body(usage)
            )
        )

    def opening(self) -> list[bytes]:
        return [self._chunk("", None, None)]

    def events(self, events: list[AnswerEvent], logprobs: list[TokenLogprob]) -> list[bytes]:
        if self._pending is not None:
            self._pending.extend(logprobs)
        return [self._chunk(e.text, None, self._take()) for e in events if isinstance(e, ContentPiece)]

    def closing(self, answer: Answer, usage: Usage) -> list[bytes]:
        out = [self._chunk("", answer.finish_reason, self._take() or None)]
        if self.include_usage:
            last = body.TextCompletionChunk(
                **{**self._head(), "usage": usage_body(usage)}, object="text_completion", choices=[]
            )
            out.append(event(last))
        return [*out, sse("[DONE]")]

    def _chunk(self, text: str, finish: str | None, logprobs: Logprobs) -> bytes:
        choice = body.TextChunkChoice(
            index=0,
            text=text,
            logprobs=text_logprobs(logprobs),
            finish_reason=finish,  # type: ignore[arg-type]
        )
        return event(body.TextCompletionChunk(**self._head(), object="text_completion", choices=[choice]))
