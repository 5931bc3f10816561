"""Tool calls in OpenAI's answer shape: `message.tool_calls` in a whole answer, and the streamed
`delta.tool_calls` pieces (per call: its index, id and name first, then its arguments in pieces).

Both read the answer's text with the same ToolCallParser, so a streamed answer assembles into the
whole one. An answer that holds a complete call finishes with "tool_calls" (unless it ran out of
tokens: "length"); its content is null when the calls are all it says.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from ovchat.prompt.tools.hermes import CallStarted, ContentPiece, ParseEvent, ToolCall, ToolCallParser


def call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def finish_with_calls(reason: str, calls: list[ToolCall]) -> str:
    """The finish reason of an answer that may hold calls."""
    return "tool_calls" if reason == "stop" and any(c.complete for c in calls) else reason


def whole_message(text: str) -> tuple[dict[str, Any], list[ToolCall]]:
    """The `message` of a whole answer whose text may hold calls, and the calls."""
    parser = ToolCallParser()
    parser.feed(text)
    parser.finish()
    calls = [
        {"id": call_id(), "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in parser.calls
    ]
    message: dict[str, Any] = {"role": "assistant", "content": parser.content or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return message, parser.calls


@dataclass
class CallDeltas:
    """The chat deltas of a streamed answer whose text may hold calls."""

    parser: ToolCallParser = field(default_factory=ToolCallParser)
    ids: dict[int, str] = field(default_factory=dict)

    def feed(self, text: str) -> list[dict[str, Any]]:
        return self._deltas(self.parser.feed(text))

    def finish(self) -> list[dict[str, Any]]:
        return self._deltas(self.parser.finish())

    def _deltas(self, events: list[ParseEvent]) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = []
        for event in events:
            if isinstance(event, ContentPiece):
                deltas.append({"content": event.text})
                continue
            call: dict[str, Any] = {"index": event.index}
            if isinstance(event, CallStarted):
                self.ids[event.index] = call_id()
                call |= {"id": self.ids[event.index], "type": "function"}
                call["function"] = {"name": event.name, "arguments": ""}
            else:
                call["function"] = {"arguments": event.text}
            deltas.append({"tool_calls": [call]})
        return deltas
