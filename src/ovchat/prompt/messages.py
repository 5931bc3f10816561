"""Chat messages as ovchat takes them: OpenAI's shape, {role, content} text with a known role, and
for tool use an assistant's `tool_calls` (arguments as JSON text) and a tool's `tool_call_id`."""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]
ROLES = ("system", "user", "assistant", "tool")  # tool: a tool's result (tool_call_id)


def is_text(text: str) -> bool:
    """Text GenAI can take: it must encode to UTF-8 (lone surrogates from bad bytes do not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_messages(messages: object) -> list[Message]:
    """A list of {role, content} text messages with known roles, or a ValueError saying what is wrong."""
    if not isinstance(messages, list):
        raise ValueError("'messages' must be a list")
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise ValueError(f"message {number} must be an object with text 'content'")
        if not is_text(message["content"]):
            raise ValueError(f"message {number} is not valid UTF-8 text")
        if message.get("role") not in ROLES:
            raise ValueError(f"message {number} has role {message.get('role')!r}; roles: {', '.join(ROLES)}")
    return [_kept(m) for m in messages]


def has_tool_turns(messages: list[Message]) -> bool:
    """Some message carries calls or a tool's result."""
    return any(m.get("tool_calls") or m["role"] == "tool" for m in messages)


def _kept(message: dict[str, Any]) -> Message:
    """The message's role and content, and the calls or the call id of a tool turn."""
    kept = {"role": message["role"], "content": message["content"]}
    for key in ("tool_calls", "tool_call_id"):
        if message.get(key):
            kept[key] = message[key]
    return kept
