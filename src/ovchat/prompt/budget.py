"""The answer's budget in the context window, and fitting a conversation into it.

The one generation core follows these for the chat session (CLI, library) and the server's engine
alike (ovchat.prompt.plan). Pure functions over a render and an encode function, so they are tested
in milliseconds with a fake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ovchat.errors import ContextError, OptionsError
from ovchat.options import DEFAULT_MAX_NEW_TOKENS
from ovchat.prompt.messages import Message

# A token covers at least one byte of text; the template may add a few tokens of its own.
ADDED_TOKENS_MARGIN = 16


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


Render = Callable[[list[Message]], str]  # the prompt of some messages, ready for the answer
Encode = Callable[[str], list[int]]  # a prompt's token ids, adding no special tokens


@dataclass(frozen=True)
class Fit:
    """A conversation cut to the context window: its prompt, and the answer's budget."""

    messages: list[Message]
    prompt: str
    dropped: int  # oldest messages left out
    max_new_tokens: int
    ids: list[int] | None = None  # the prompt's ids, when fitting had to count them


def fit_conversation(
    messages: list[Message], render: Render, encode: Encode, context: int | None, requested: int | None
) -> Fit:
    """Drop the oldest exchanges (never the system prompt nor the newest one) until the prompt and the
    answer's budget fit the context; cut the budget only as a last resort.

    An exchange runs from a user message to the next one, so an assistant's calls and the tools'
    results go together: a result never stays behind without its call."""
    wanted = answer_budget(0, None, requested)
    prompt = render(messages)
    # If the bytes fit with a margin, the tokens do too: the common case needs no counting.
    if context is None or len(prompt.encode()) + ADDED_TOKENS_MARGIN + wanted <= context:
        return Fit(messages, prompt, 0, wanted)
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system) :]
    while True:
        ids = encode(prompt)
        cut = _first_exchange(turns)
        if len(ids) + wanted <= context or cut == len(turns):
            break
        turns = turns[cut:]
        prompt = render(system + turns)
    dropped = len(messages) - len(system) - len(turns)
    return Fit(system + turns, prompt, dropped, answer_budget(len(ids), context, requested), ids)


def _first_exchange(turns: list[Message]) -> int:
    """How many messages the oldest exchange holds: up to the next user message."""
    return next((i for i, m in enumerate(turns) if i > 0 and m["role"] == "user"), len(turns))
