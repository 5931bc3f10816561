"""Reading an answer's text: its reasoning apart from its content, its tool calls read out.

The one answer pipeline of every front end: ChatSession streams the content pieces to `on_text` and
keeps the Answer; the server turns the same events into each API's chunks and the same Answer into
its whole body. The text goes through the reasoning splitter first (a chat's `<think>` block), then,
when the request may call tools, through the Hermes call parser; both read incrementally, so a
streamed answer and a whole one (one feed) come out the same. Each call gets its id here, once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ovchat.prompt.endings import with_calls
from ovchat.prompt.messages import Message
from ovchat.prompt.reasoning import Part, ReasoningSplitter
from ovchat.prompt.tools.hermes import (
    ArgumentsPiece,
    CallStarted,
    ContentPiece,
    ParseEvent,
    ToolCall,
    ToolCallParser,
)


def call_id() -> str:
    """A new tool call's id, in OpenAI's form."""
    return f"call_{uuid.uuid4().hex[:24]}"


def assistant_turn(content: str, calls: Iterable[ToolCall] = ()) -> Message:
    """An answer as the assistant's turn of a conversation (OpenAI's shape: arguments as JSON text)."""
    turn: Message = {"role": "assistant", "content": content}
    listed = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]
    if listed:
        turn["tool_calls"] = listed
    return turn


@dataclass(frozen=True)
class ReasoningPiece:
    text: str


AnswerEvent = ReasoningPiece | ContentPiece | CallStarted | ArgumentsPiece


@dataclass(frozen=True)
class Answer:
    """A whole answer: what it says, what it thought (None: it opened no think block), the calls it
    makes (with their ids), and why it ended (stop, length, cancelled or tool_calls)."""

    content: str
    reasoning: str | None
    calls: tuple[ToolCall, ...]
    finish_reason: str


class AnswerReader:
    """Splits an answer's text, fed in pieces, into reasoning, content and calls.

    `chat`: the answer may open a think block (a raw completion's text is all content); `thinking`:
    the prompt opened one, so the answer starts inside it; `calls`: read tool calls out of the content."""

    def __init__(self, *, chat: bool = True, thinking: bool = False, calls: bool = False) -> None:
        self._splitter = ReasoningSplitter(thinking) if chat else None
        self._parser = ToolCallParser() if calls else None
        self._reasoning: list[str] = []
        self._content: list[str] = []
        self._ids: dict[int, str] = {}

    def feed(self, text: str) -> list[AnswerEvent]:
        """The events the new `text` completes (a possible tag's start waits for the next feed)."""
        pieces = self._splitter.feed(text) if self._splitter is not None else [(Part.CONTENT, text)]
        return self._read(pieces, finished=False)

    def finish(self) -> list[AnswerEvent]:
        """The answer is over: what is still held back."""
        pieces = self._splitter.finish() if self._splitter is not None else []
        return self._read(pieces, finished=True)

    def answer(self, finish_reason: str) -> Answer:
        """The whole answer once finish() was called; `finish_reason` is how the generation ended."""
        reasoned = self._splitter is not None and self._splitter.reasoned
        reasoning = "".join(self._reasoning) if reasoned else None
        if self._parser is None:
            return Answer("".join(self._content), reasoning, (), finish_reason)
        calls = tuple(replace(c, id=self._ids.get(i, "")) for i, c in enumerate(self._parser.calls))
        return Answer(self._parser.content, reasoning, calls, with_calls(finish_reason, calls))

    def _read(self, pieces: list[tuple[Part, str]], finished: bool) -> list[AnswerEvent]:
        events: list[AnswerEvent] = []
        for part, text in pieces:
            if part is Part.REASONING:
                self._reasoning.append(text)
                events.append(ReasoningPiece(text))
            elif self._parser is None:
                self._content.append(text)
                events.append(ContentPiece(text))
            else:
                events += self._named(self._parser.feed(text))
        if finished and self._parser is not None:
            events += self._named(self._parser.finish())
        return events

    def _named(self, events: list[ParseEvent]) -> list[AnswerEvent]:
        """The parser's events, each call's start with the call's new id."""
        named: list[AnswerEvent] = []
        for event in events:
            if isinstance(event, CallStarted):
                self._ids[event.index] = call_id()
                event = replace(event, id=self._ids[event.index])
            named.append(event)
        return named


def read_whole(text: str, *, chat: bool = True, thinking: bool = False, calls: bool = False) -> AnswerReader:
    """A reader that has read the whole of `text` (call answer() for the Answer)."""
    reader = AnswerReader(chat=chat, thinking=thinking, calls=calls)
    reader.feed(text)
    reader.finish()
    return reader
