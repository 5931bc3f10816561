"""Tool calls in an answer's text: Hermes' `<tool_call>{"name": …, "arguments": …}</tool_call>` format.

The one format ovchat writes (the fallback prompt, replayed history), constrains (the grammar's tags
begin with call_header and end with CALL_END) and reads back. ToolCallParser reads it incrementally,
so a stream can send a call's name as soon as it is known and its arguments in pieces; parsing a whole
answer is one feed, so a streamed answer and a whole one come out the same. GenAI's own tool parsers
cover other formats (and return `parameters`, not `arguments`), hence this one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
CALL_END = "}\n" + CALL_CLOSE  # closes the {"name", "arguments"} object, then the tag
# A call's head up to its arguments (once they begin), in any spacing; the grammar writes call_header's.
_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*(?=\S)')


def call_header(name: str) -> str:
    """A call's text up to its arguments, as ovchat writes it."""
    return f'{CALL_OPEN}\n{{"name": {json.dumps(name)}, "arguments": '


def call_text(name: str, arguments: str) -> str:
    """One whole call as ovchat writes it (`arguments`: a JSON object's text)."""
    return call_header(name) + arguments + CALL_END


@dataclass(frozen=True)
class ToolCall:
    """A call the answer makes: the function's name and its arguments as JSON text."""

    name: str
    arguments: str
    complete: bool = True  # False: the answer ended inside it (out of tokens)
    id: str = ""  # given by the answer reader (ovchat.prompt.answer)


@dataclass(frozen=True)
class ContentPiece:
    text: str


@dataclass(frozen=True)
class CallStarted:
    index: int
    name: str
    id: str = ""  # given by the answer reader (ovchat.prompt.answer)


@dataclass(frozen=True)
class ArgumentsPiece:
    index: int
    text: str


ParseEvent = ContentPiece | CallStarted | ArgumentsPiece


@dataclass
class ToolCallParser:
    """Splits an answer's text, fed in pieces, into content and calls. Whitespace around calls is
    not content (held back until text follows it); a `<tool_call>` whose body is not a call stays
    content."""

    calls: list[ToolCall] = field(default_factory=list)
    content: str = ""
    _pending: str = ""  # text not yet sorted out
    _in_call: bool = False
    _name: str | None = None  # the open call's name, once its head is read
    _sent: int = 0  # characters of the open call's arguments already sent
    _blank: str = ""  # whitespace of content held back

    def feed(self, text: str) -> list[ParseEvent]:
        """The events the new `text` completes."""
        self._pending += text
        events: list[ParseEvent] = []
        while True:
            progressed = self._call_step(events) if self._in_call else self._content_step(events)
            if not progressed:
                return events

    def finish(self) -> list[ParseEvent]:
        """The answer is over: what is still held back (a call left open is kept, incomplete)."""
        events: list[ParseEvent] = []
        if self._in_call and self._name is not None:
            rest = self._pending[self._sent :]
            if rest:
                events.append(ArgumentsPiece(len(self.calls), rest))
            self.calls.append(ToolCall(self._name, self._pending, complete=False))
        elif self._in_call:
            self._add_content(CALL_OPEN + self._pending, events)
        elif self._pending:
            self._add_content(self._pending, events)
        self._pending, self._in_call, self._name = "", False, None
        return events

    def _content_step(self, events: list[ParseEvent]) -> bool:
        start = self._pending.find(CALL_OPEN)
        if start == -1:
            keep = _partial_suffix(self._pending, CALL_OPEN)
            self._add_content(self._pending[: len(self._pending) - keep], events)
            self._pending = self._pending[len(self._pending) - keep :]
            return False
        self._add_content(self._pending[:start], events)
        self._pending = self._pending[start + len(CALL_OPEN) :]
        self._in_call, self._name, self._sent = True, None, 0
        return True

    def _call_step(self, events: list[ParseEvent]) -> bool:
        if self._name is None:
            head = _HEAD.match(self._pending)
            if head is not None:
                self._name = json.loads(head.group(1))
                self._pending = self._pending[head.end() :]
                events.append(CallStarted(len(self.calls), self._name))
        close = self._pending.find(CALL_CLOSE)
        if close == -1:
            if self._name is not None:
                self._send_arguments(self._safe_end(self._pending), events)
            return False
        body, self._pending = self._pending[:close], self._pending[close + len(CALL_CLOSE) :]
        self._in_call = False
        if self._name is not None:
            self._close_streamed_call(body, events)
        else:
            self._close_whole_call(body, events)
        return True

    def _close_streamed_call(self, body: str, events: list[ParseEvent]) -> None:
        assert self._name is not None
        arguments = body.rstrip()
        if arguments.endswith("}"):  # the object that holds name and arguments
            arguments = arguments[:-1].rstrip()
        self._send_arguments(len(arguments), events, arguments)
        self.calls.append(ToolCall(self._name, arguments))
        self._name = None

    def _close_whole_call(self, body: str, events: list[ParseEvent]) -> None:
        """A call whose head did not come first ("arguments" before "name", say): read at its end."""
        call = _read_call(body)
        if call is None:
            self._add_content(CALL_OPEN + body + CALL_CLOSE, events)
            return
        events += [CallStarted(len(self.calls), call.name), ArgumentsPiece(len(self.calls), call.arguments)]
        self.calls.append(call)

    def _send_arguments(self, end: int, events: list[ParseEvent], text: str | None = None) -> None:
        source = self._pending if text is None else text
        if end > self._sent:
            events.append(ArgumentsPiece(len(self.calls), source[self._sent : end]))
            self._sent = end

    @staticmethod
    def _safe_end(arguments: str) -> int:
        """How much of an open call's text is surely its arguments: not its last "}" (it may close
        the call) nor trailing whitespace (the arguments end before it)."""
        last_brace = arguments.rfind("}")
        end = len(arguments.rstrip())
        return min(end, last_brace) if last_brace != -1 else end

    def _add_content(self, text: str, events: list[ParseEvent]) -> None:
        if not text:
            return
        if not text.strip():
            self._blank += text
            return
        if not self.content and not self.calls:
            self._blank = ""  # an answer's leading whitespace is not content
        text, self._blank = self._blank + text, ""
        stripped = text.rstrip()
        self._blank = text[len(stripped) :]
        self.content += stripped
        events.append(ContentPiece(stripped))


def _partial_suffix(text: str, tag: str) -> int:
    """The length of the longest end of `text` that could begin `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


def _read_call(body: str) -> ToolCall | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(value["name"], json.dumps(arguments, ensure_ascii=False))
