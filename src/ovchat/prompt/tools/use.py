"""What a request asks of tools, in ovchat's own words: the functions, how they may be called, and
the grammar that holds a call to its function's schema.

The grammar starts when the answer writes `<tool_call>`: from there the call's head picks one of the
functions and its arguments must fit that function's JSON schema, then the tag closes
(hermes.CALL_END). REQUIRED (and a named function) makes the answer begin with exactly one call and
end after it; AUTO lets the answer write text, and constrains each call it starts (one only when
`parallel` is off); NONE has no grammar and shows no tools. CallGrammar describes it in plain data;
ovchat.model.config turns it into GenAI's structural tags (run by xgrammar).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from ovchat.prompt.tools.hermes import CALL_END, CALL_OPEN, call_header


class ToolChoice(enum.Enum):
    """Whether the answer may, must or must not call a function."""

    NONE = "none"  # never calls; the tools are not shown to the model either
    AUTO = "auto"
    REQUIRED = "required"  # exactly one call (of `function`, when one is named)


@dataclass(frozen=True)
class Tool:
    """A function the model may call: its name, what it does, and its arguments' JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]

    def as_openai(self) -> dict[str, Any]:
        """The tool as chat templates take it (OpenAI's request shape)."""
        function = {"name": self.name, "description": self.description, "parameters": self.parameters}
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class CallTag:
    """One function's call: the text that opens it, its arguments' JSON schema, the text that closes it."""

    begin: str
    schema: str
    end: str


@dataclass(frozen=True)
class CallGrammar:
    """Once a trigger is written, what follows is one of the tags."""

    triggers: tuple[str, ...]
    tags: tuple[CallTag, ...]
    at_least_one: bool  # the answer begins with a call
    stop_after_first: bool  # and ends after it


@dataclass(frozen=True)
class ToolUse:
    """The tools a request offers and how they may be called."""

    tools: tuple[Tool, ...]
    choice: ToolChoice = ToolChoice.AUTO
    function: str | None = None  # with REQUIRED: the one function the answer calls
    parallel: bool = True  # AUTO: more than one call in an answer

    @property
    def calls(self) -> bool:
        """The answer may hold calls (parse them out of it)."""
        return self.choice is not ToolChoice.NONE and bool(self.tools)

    @property
    def callable(self) -> tuple[Tool, ...]:
        return tuple(t for t in self.tools if self.function is None or t.name == self.function)

    @property
    def shown(self) -> list[dict[str, Any]]:
        """The tools the prompt shows the model (none under NONE: a small model shown them imitates calls)."""
        return [t.as_openai() for t in self.tools] if self.calls else []

    def grammar(self) -> CallGrammar | None:
        """The grammar these calls are held to, or None (no call can be made)."""
        if not self.calls:
            return None
        tags = tuple(CallTag(call_header(t.name), json.dumps(t.parameters), CALL_END) for t in self.callable)
        forced = self.choice is ToolChoice.REQUIRED
        return CallGrammar(
            (CALL_OPEN,), tags, at_least_one=forced, stop_after_first=forced or not self.parallel
        )
