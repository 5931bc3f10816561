"""The rules both generation paths follow: the chat session (CLI, library) and the server's engine.

Pure functions over a two-method tokenizer interface, so they are tested in milliseconds with a
fake: the answer budget in the context window, fitting a conversation, finish reasons, and
GenAI's error text in plain words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from ovchat.errors import ContextError, OptionsError
from ovchat.options import DEFAULT_MAX_NEW_TOKENS

Message = dict[str, str]
ROLES = ("system", "user", "assistant")
# A token covers at least one byte of text; the template may add a few tokens of its own.
ADDED_TOKENS_MARGIN = 16
# A loop: the last LOOP_SPAN tokens (at least three periods) repeat with a period of at most LOOP_PERIOD.
LOOP_PERIOD = 50
LOOP_SPAN = 60


class TextTokenizer(Protocol):
    """What the rules need from a tokenizer."""

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` as the model sees it, adding no special tokens."""
        ...

    def chat_prompt(self, messages: list[Message]) -> str:
        """The chat template applied to `messages`, ready for the assistant's answer."""
        ...


def answer_budget(
    prompt_tokens: int,
    context: int | None,
    requested: int | None,
    *,
    strict: bool = False,
    ceiling: int | None = None,
) -> int:
    """How many tokens the answer may take.

    `requested` None means DEFAULT_MAX_NEW_TOKENS (and at most `ceiling`), cut to the room the
    context leaves. An explicit request above `ceiling` is an error; one above the room is cut to
    it, or is an error when `strict` (the server: a client that asks for N tokens is told). The
    errors name the option max_new_tokens: a front end that calls it otherwise renames it.
    """
    if requested is not None and ceiling is not None and requested > ceiling:
        raise OptionsError(
            f"max_new_tokens must be at most {ceiling} on this server, not {requested}",
            option="max_new_tokens",
        )
    wanted = (
        requested if requested is not None else min(DEFAULT_MAX_NEW_TOKENS, ceiling or DEFAULT_MAX_NEW_TOKENS)
    )
    if context is None:
        return wanted
    room = context - prompt_tokens
    if room < 1 or (strict and requested is not None and requested > room):
        answer = f" plus {requested} for the answer" if requested is not None else ""
        raise ContextError(
            f"the model's context window is {context} tokens, but the prompt takes {prompt_tokens}"
            f"{answer}: shorten the input" + (" or lower max_new_tokens" if requested is not None else "")
        )
    return min(wanted, room)


@dataclass(frozen=True)
class Fit:
    """A conversation cut to the context window, and the answer's budget."""

    messages: list[Message]
    dropped: int  # oldest messages left out
    max_new_tokens: int


def fit_conversation(
    messages: list[Message], tokenizer: TextTokenizer, context: int | None, requested: int | None
) -> Fit:
    """Drop the oldest exchanges (never the system prompt nor the newest message) until the prompt
    and the answer's budget fit the context; cut the budget only as a last resort."""
    wanted = answer_budget(0, None, requested)
    if context is None:
        return Fit(messages, 0, wanted)
    # If the bytes fit with a margin, the tokens do too: the common case needs no tokenizing.
    if len(tokenizer.chat_prompt(messages).encode()) + ADDED_TOKENS_MARGIN + wanted <= context:
        return Fit(messages, 0, wanted)
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system) :]
    dropped = 0
    while True:
        prompt_tokens = len(tokenizer.encode(tokenizer.chat_prompt(system + turns)))
        if prompt_tokens + wanted <= context or len(turns) == 1:
            break
        # Drop a whole exchange (user + assistant) so the history stays well-formed.
        cut = 2 if len(turns) > 2 and turns[1]["role"] == "assistant" else 1
        turns, dropped = turns[cut:], dropped + cut
    return Fit(system + turns, dropped, answer_budget(prompt_tokens, context, requested))


def finish_reason(
    genai_reason: str | None, cancelled: bool = False, *, generated: int = 0, budget: int | None = None
) -> str:
    """Why an answer ended, as every front end reports it: stop, length or cancelled.

    `genai_reason` is GenAI's GenerationFinishReason name, or None where GenAI gives none (token
    input returns EncodedResults): then an answer that used its whole `budget` ran out of length."""
    if cancelled:
        return "cancelled"
    if genai_reason is None:
        return "length" if budget is not None and generated >= budget else "stop"
    return "length" if genai_reason.upper() == "LENGTH" else "stop"


def is_degenerate(tokens: list[int], hit_limit: bool) -> bool:
    """An answer that ran to its token limit repeating itself ("a must-do for Lisbon, a must-do for
    Lisbon, ..."): its tail is periodic with a short period. The build's fidelity gate and the
    answer-quality benchmark both count these."""
    if not hit_limit:
        return False
    for period in range(1, LOOP_PERIOD + 1):
        tail = tokens[-max(3 * period, LOOP_SPAN) :]
        if len(tail) > period and all(tail[i] == tail[i + period] for i in range(len(tail) - period)):
            return True
    return False


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


_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")
_SOURCE = re.compile(r"(?:[\w.+-]*/)*[\w.+-]+\.(?:cpp|cc|cxx|hpp|hh|h|c)(?::\d+)*:?\s*")
_XGRAMMAR_CHECK = re.compile(r"Check failed: .*? is false:\s*")
_OPENVINO_CHECK = re.compile(r"Check '.*?' failed at\s*")


def plain_message(error: BaseException | str) -> str:
    """GenAI's or OpenVINO's error text in plain words: its last line, with no source-file paths
    (they name the machine the library was built on), timestamps or check expressions."""
    text = str(error)
    lines = [line.strip() for line in text.splitlines()]
    useful = [line for line in lines if line and not line.startswith("Exception from")]
    line = useful[-1] if useful else ""
    for pattern in (_TIMESTAMP, _OPENVINO_CHECK, _SOURCE, _XGRAMMAR_CHECK):
        line = pattern.sub("", line)
    line = line.strip().rstrip(":").strip()
    if not line:
        return type(error).__name__ if isinstance(error, BaseException) else "unknown error"
    return line
