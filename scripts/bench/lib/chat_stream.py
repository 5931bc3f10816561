"""A streamed chat completion, timed: time to the first content, the span of the content, its text,
and the token counts of its usage chunk (asked for with stream_options.include_usage).

One reader for the SSE lines, fed by a sync or an async httpx client.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

ROUTE = "/v1/chat/completions"


def chat_body(messages: list[dict[str, str]], max_tokens: int, **fields: Any) -> dict[str, Any]:
    """A greedy streamed chat request whose last chunk carries the usage; `fields` add to it."""
    return {
        "model": "bench",
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        **fields,
    }


@dataclass(frozen=True)
class Streamed:
    ttft_s: float  # to the first content chunk (to the end of the stream when none came)
    first_s: float | None  # the first and the last content chunk, from the request's start
    last_s: float | None
    text: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens after the first over the time from the first content chunk to the last (nan when
        that span is empty)."""
        if self.first_s is None or self.last_s is None or self.completion_tokens < 2:
            return float("nan")
        span = self.last_s - self.first_s
        return (self.completion_tokens - 1) / span if span > 0 else float("nan")


@dataclass
class StreamReader:
    """Reads a stream's SSE lines as they arrive, timing its content chunks from `started`."""

    started: float = field(default_factory=time.perf_counter)
    first: float | None = None
    last: float | None = None
    parts: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)

    def feed(self, line: str) -> None:
        if not line.startswith("data: {"):  # blank lines, comments, "data: [DONE]"
            return
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if piece := choice.get("delta", {}).get("content"):
                now = time.perf_counter() - self.started
                self.first = now if self.first is None else self.first
                self.last = now
                self.parts.append(piece)

    def result(self) -> Streamed:
        ttft = self.first if self.first is not None else time.perf_counter() - self.started
        return Streamed(
            ttft,
            self.first,
            self.last,
            "".join(self.parts),
            int(self.usage.get("prompt_tokens", 0)),
            int(self.usage.get("completion_tokens", 0)),
        )


def stream_chat(client: httpx.Client, body: dict[str, Any]) -> Streamed:
    """POST a streamed chat request on `client` (its base_url the server's) and read it to the end."""
    reader = StreamReader()
    with client.stream("POST", ROUTE, json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            reader.feed(line)
    return reader.result()


async def astream_chat(client: httpx.AsyncClient, body: dict[str, Any]) -> Streamed:
    """stream_chat on an async client: many streams at once on one event loop."""
    reader = StreamReader()
    async with client.stream("POST", ROUTE, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            reader.feed(line)
    return reader.result()
