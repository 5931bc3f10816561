"""Chat messages as ovchat takes them: {role, content} text with a known role."""

from __future__ import annotations

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


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
    return [{"role": m["role"], "content": m["content"]} for m in messages]
