"""OpenAI's wire format for one answer: the whole JSON body, or its server-sent-event chunks."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ovchat.server.engine.engine import Done
from ovchat.server.engine.jobs import TokenLogprob

# A stream's or an answer's token logprobs; None: the client did not ask for them.
Logprobs = list[TokenLogprob] | None


@dataclass(frozen=True)
class ReplyWriter:
    """Writes one answer in OpenAI's wire shape, whole or as chunks: chat (`chat.completion`) or
    plain text (`text_completion`)."""

    chat: bool
    model: str
    id: str
    created: int

    @classmethod
    def new(cls, chat: bool, model: str) -> ReplyWriter:
        prefix = "chatcmpl" if chat else "cmpl"
        return cls(chat, model, f"{prefix}-{uuid.uuid4().hex[:24]}", int(time.time()))

    def _envelope(
        self, choices: list[dict[str, Any]], chunk: bool, usage: dict[str, int] | None
    ) -> dict[str, Any]:
        kind = "chat.completion" if self.chat else "text_completion"
        body: dict[str, Any] = {
            "id": self.id,
            "object": f"{kind}.chunk" if chunk and self.chat else kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None or not chunk:
            body["usage"] = usage
        return body

    def chunk(
        self,
        text: str | None,
        finish: str | None,
        usage_field: bool,
        first: bool = False,
        logprobs: Logprobs = None,
    ) -> bytes:
        """One SSE event carrying new text (or, with `finish`, the end of the answer), and the
        logprobs of the tokens it carries."""
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
            if text:
                delta["content"] = text
            return self.delta_chunk(delta, finish, usage_field, logprobs)
        choice = {"index": 0, "text": text or "", "logprobs": logprobs_body(False, logprobs)}
        return self._choice_chunk(choice, finish, usage_field)

    def delta_chunk(
        self, delta: dict[str, Any], finish: str | None, usage_field: bool, logprobs: Logprobs = None
    ) -> bytes:
        """One chat SSE event carrying `delta` (content, or tool_calls pieces)."""
        choice = {"index": 0, "delta": delta, "logprobs": logprobs_body(True, logprobs)}
        return self._choice_chunk(choice, finish, usage_field)

    def _choice_chunk(self, choice: dict[str, Any], finish: str | None, usage_field: bool) -> bytes:
        body = self._envelope([{**choice, "finish_reason": finish}], True, None)
        if usage_field:
            body["usage"] = None  # the usage chunk comes last
        return sse(body)

    def usage_chunk(self, done: Done) -> bytes:
        return sse(self._envelope([], True, usage(done)))

    def whole(
        self,
        text: str,
        done: Done,
        message: dict[str, Any] | None = None,
        finish: str | None = None,
        logprobs: Logprobs = None,
    ) -> dict[str, Any]:
        """The non-streamed response body (a chat's `message` and `finish` reason, if given)."""
        choice: dict[str, Any] = {"index": 0}
        if self.chat:
            choice["message"] = message or {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        choice["logprobs"] = logprobs_body(self.chat, logprobs)
        choice["finish_reason"] = finish or done.finish_reason
        return self._envelope([choice], False, usage(done))


def logprobs_body(chat: bool, logprobs: Logprobs) -> dict[str, Any] | None:
    """A choice's `logprobs`: chat's `content` list, or the legacy completions arrays; None when
    not asked for. No alternatives: the engine reports only the chosen token's logprob."""
    if logprobs is None:
        return None
    if chat:
        content = [
            {"token": t.token, "logprob": t.logprob, "bytes": t.bytes, "top_logprobs": []} for t in logprobs
        ]
        return {"content": content}
    return {
        "tokens": [t.token for t in logprobs],
        "token_logprobs": [t.logprob for t in logprobs],
        "top_logprobs": None,
        "text_offset": [t.offset for t in logprobs],
    }


def usage(done: Done) -> dict[str, int]:
    total = done.prompt_tokens + done.completion_tokens
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": total,
    }


def sse(body: dict[str, Any] | str) -> bytes:
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n".encode()
