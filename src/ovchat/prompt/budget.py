"""The answer's budget in the context window, and fitting a conversation into it.

Both generation paths follow these: the chat session (CLI, library) and the server's engine. Pure
functions over a two-method tokenizer interface, so they are tested in milliseconds with a fake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ovchat.errors import ContextError, OptionsError
from ovchat.options import DEFAULT_MAX_NEW_TOKENS
from ovchat.prompt.messages import Message

# A token covers at least one byte of text; the template may add a few tokens of its own.
ADDED_TOKENS_MARGIN = 16


class PromptTokenizer(Protocol):
    """What fitting a conversation needs from a tokenizer (model.TextTokenizer is GenAI's)."""

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
    messages: list[Message], tokenizer: PromptTokenizer, context: int | None, requested: int | None
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
