"""Streaming an answer in an API's shape: what every API's writer does, and server-sent events.

The server's one answer path (ovchat.server.respond) reads the engine's text with the answer reader
(ovchat.prompt.answer) and hands the events to the request's AnswerWriter, which alone knows its
API's field names: a whole body, or the chunks of a stream from its opening to its end.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from ovchat.errors import OvchatError
from ovchat.prompt.answer import Answer, AnswerEvent
from ovchat.prompt.tokens import TokenLogprob, Usage

# Proxies (nginx) buffer a response unless told not to, which would hold back every token.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class AnswerWriter(Protocol):
    """One answer in one API's shape (a writer per request: it may keep the stream's state)."""

    media_type: str  # of a streamed answer

    def whole(self, answer: Answer, usage: Usage, logprobs: list[TokenLogprob] | None) -> dict[str, Any]:
        """The body of an answer read to its end."""
        ...

    def opening(self) -> list[bytes]:
        """What a stream sends before the first token."""
        ...

    def events(self, events: list[AnswerEvent], logprobs: list[TokenLogprob]) -> list[bytes]:
        """The chunks of the answer's new events (`logprobs`: of the tokens that made them)."""
        ...

    def closing(self, answer: Answer, usage: Usage) -> list[bytes]:
        """What a stream sends once the answer is over."""
        ...

    def failure(self, error: OvchatError) -> list[bytes]:
        """What a stream sends when the answer fails after its first chunk (its status is sent)."""
        ...


def sse(body: dict[str, Any] | str) -> bytes:
    """One server-sent event carrying `body` (JSON, or a word such as [DONE])."""
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n".encode()
