"""OpenAI's tool fields in a chat request — `tools`, `tool_choice`, `parallel_tool_calls`, and the
assistant calls and tool results of the history — checked, then mapped onto ovchat's ToolUse.

Each problem is a 400 naming the field: a schema that is not valid JSON Schema or that GenAI's
grammar compiler cannot take (json_schemas.check_json_schema, as for response_format), a name used
twice, more than MAX_TOOLS tools, a tool_choice naming a function not offered, a tool_choice other
than "none" without tools, a tool result answering no call before it, call arguments that are not a
JSON object.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ovchat.errors import RequestRejected
from ovchat.prompt.tools.use import Tool, ToolChoice, ToolUse
from ovchat.server.protocol.json_schema import check_json_schema

# OpenAI's own limits: at most 128 tools, names of 1-64 letters, digits, underscores and dashes
# (which also keeps a name whole inside the call's JSON head).
MAX_TOOLS = 128
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class FunctionSpec(_Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(_Strict):
    type: Literal["function"]
    function: FunctionSpec


class FunctionName(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: FunctionName


ToolChoiceField = Literal["none", "auto", "required"] | NamedToolChoice | None


class CalledFunction(_Strict):
    name: str
    arguments: str


class ToolCallSpec(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: CalledFunction

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": self.function.model_dump()}


def tool_use(tools: list[ToolSpec] | None, choice: ToolChoiceField, parallel: bool | None) -> ToolUse | None:
    """The request's ToolUse, or None without tools; a bad field -> RequestRejected naming it."""
    if not tools:
        if choice not in (None, "none"):
            raise RequestRejected("tool_choice needs tools: the request has none", "tool_choice")
        return None
    if len(tools) > MAX_TOOLS:
        raise RequestRejected(f"tools takes at most {MAX_TOOLS} functions, not {len(tools)}", "tools")
    offered = [_tool(number, spec) for number, spec in enumerate(tools)]
    names = [t.name for t in offered]
    for number, name in enumerate(names):
        if name in names[:number]:
            raise RequestRejected(f"two tools are named {name!r}", f"tools[{number}].function.name")
    function = None
    if isinstance(choice, NamedToolChoice):
        function = choice.function.name
        if function not in names:
            raise RequestRejected(
                f"tool_choice names {function!r}, which is not in tools ({', '.join(names)})",
                "tool_choice.function.name",
            )
    mode = ToolChoice.REQUIRED if function else ToolChoice(choice or "auto")
    return ToolUse(tuple(offered), mode, function, parallel is not False)


def _tool(number: int, spec: ToolSpec) -> Tool:
    where = f"tools[{number}].function"
    name = spec.function.name
    if not NAME.match(name):
        raise RequestRejected(
            f"{where}.name {name!r} must be 1-64 letters, digits, underscores or dashes", f"{where}.name"
        )
    schema = dict(spec.function.parameters or {"type": "object", "properties": {}})
    schema.setdefault("type", "object")
    if schema["type"] != "object":
        raise RequestRejected(
            f"{where}.parameters must describe an object (arguments are a JSON object)", f"{where}.parameters"
        )
    try:
        check_json_schema(schema)
    except RequestRejected as exc:
        raise RequestRejected(f"{where}.parameters: {exc}", f"{where}.parameters") from None
    return Tool(name, spec.function.description or "", schema)


def check_tool_turns(messages: list[dict[str, Any]]) -> None:
    """Every replayed call's arguments are a JSON object; every tool result answers a call before it."""
    called: set[str] = set()
    for number, message in enumerate(messages):
        for index, call in enumerate(message.get("tool_calls") or []):
            where = f"messages[{number}].tool_calls[{index}].function.arguments"
            try:
                arguments = json.loads(call["function"]["arguments"])
            except ValueError:
                raise RequestRejected(f"{where} is not JSON", where) from None
            if not isinstance(arguments, dict):
                raise RequestRejected(f"{where} is not a JSON object", where)
            called.add(call["id"])
        if message["role"] == "tool" and message.get("tool_call_id") not in called:
            raise RequestRejected(
                f"messages[{number}] answers tool call {message.get('tool_call_id')!r}, which no "
                "assistant message before it made",
                f"messages[{number}].tool_call_id",
            )
