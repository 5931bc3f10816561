"""A request's prompt, planned: its token ids and the answer's budget, the same way for every front end.

A chat session fits its conversation into the context window (dropping its oldest exchanges, with
or without tools); a server request is taken as sent, and one that does not fit is refused, as an
API client expects to be told rather than silently trimmed. Either way the prompt is rendered by
template.render, counted by the model's own tokenizer and budgeted by budget.answer_budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ovchat.errors import RequestRejected, plain_message
from ovchat.prompt.budget import answer_budget, fit_conversation
from ovchat.prompt.messages import Message
from ovchat.prompt.reasoning import opens_thinking
from ovchat.prompt.request import GenerationRequest
from ovchat.prompt.tools.use import ToolUse


class PromptTokenizer(Protocol):
    """What planning needs from a tokenizer (ovchat.model.pipeline.TextTokenizer is GenAI's)."""

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` as the model sees it, adding no special tokens."""
        ...

    def render(
        self, messages: list[Message], tools: ToolUse | None = None, context: dict[str, Any] | None = None
    ) -> str:
        """The chat template applied to `messages` (with `tools`), ready for the answer."""
        ...


@dataclass(frozen=True)
class Planned:
    """A prompt ready to generate from."""

    prompt: str
    ids: list[int]
    budget: int  # the answer's max_new_tokens
    messages: list[Message] | None = None  # the messages the prompt holds (fewer when some were dropped)
    dropped: int = 0  # oldest messages left out to fit the context window
    thinking: bool = False  # the prompt opened a think block: the answer starts as reasoning


def plan(
    request: GenerationRequest,
    tokenizer: PromptTokenizer,
    context: int | None,
    *,
    fit: bool,
    ceiling: int | None = None,
) -> Planned:
    """Plan `request`'s prompt. `fit`: drop a chat's oldest exchanges until it fits, and cut the budget
    to the room left; otherwise a prompt plus an explicit max_new_tokens over the context is a
    ContextError. `ceiling`: the most tokens an answer may ask for (a server's limit)."""
    requested = request.options.max_new_tokens
    if request.messages is None:
        assert request.prompt is not None
        ids = tokenizer.encode(request.prompt)
        budget = answer_budget(len(ids), context, requested, strict=not fit, ceiling=ceiling)
        return Planned(request.prompt, ids, budget)

    def render(messages: list[Message]) -> str:
        try:
            return tokenizer.render(messages, request.tools, request.template_context)
        except RuntimeError as exc:  # GenAI's template engine refused them
            raise RequestRejected(
                f"the model's chat template refused the messages: {plain_message(exc)}", param="messages"
            ) from None

    if fit:
        fitted = fit_conversation(request.messages, render, tokenizer.encode, context, requested)
        ids = fitted.ids if fitted.ids is not None else tokenizer.encode(fitted.prompt)
        thinking = opens_thinking(fitted.prompt)
        return Planned(fitted.prompt, ids, fitted.max_new_tokens, fitted.messages, fitted.dropped, thinking)
    prompt = render(request.messages)
    ids = tokenizer.encode(prompt)
    budget = answer_budget(len(ids), context, requested, strict=True, ceiling=ceiling)
    return Planned(prompt, ids, budget, request.messages, thinking=opens_thinking(prompt))
