"""Reasoning in an answer's text: the `<think>…</think>` block, apart from the content.

The block is reasoning either because the chat template opened it at the end of the prompt (the
answer starts inside it), or because the answer itself starts with `<think>`. ReasoningSplitter reads
the text incrementally, holding back only what could still be the start of a tag, so a stream sends
each piece as soon as it is known; a whole answer is one feed, so streamed and whole agree. An answer
that runs out of tokens inside the block is all reasoning: nothing of it is lost or called content.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def opens_thinking(prompt: str) -> bool:
    """Whether a templated prompt ends inside a think block (its answer starts as reasoning)."""
    return prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)


class Part(enum.Enum):
    REASONING = "reasoning"
    CONTENT = "content"


class _State(enum.Enum):
    UNDECIDED = "undecided"  # at the start: the answer may yet open a block of its own
    THINKING = "thinking"
    ANSWERING = "answering"


@dataclass
class ReasoningSplitter:
    """Splits an answer's text into reasoning and content pieces, as it arrives."""

    thinking: bool = False  # the prompt opened the block
    reasoned: bool = field(default=False, init=False)  # a block was opened, by the prompt or the answer
    _state: _State = field(init=False)
    _held: str = field(default="", init=False)
    _after_block: bool = field(default=False, init=False)  # the content's leading blank lines go

    def __post_init__(self) -> None:
        self._state = _State.THINKING if self.thinking else _State.UNDECIDED
        self.reasoned = self.thinking

    def feed(self, text: str) -> list[tuple[Part, str]]:
        """The pieces `text` completes (a possible tag's start waits for the next feed)."""
        self._held += text
        out: list[tuple[Part, str]] = []
        while self._held:
            before = len(self._held), self._state
            self._step(out)
            if (len(self._held), self._state) == before:
                break
        return [(part, piece) for part, piece in out if piece]

    def finish(self) -> list[tuple[Part, str]]:
        """What is left at the end of the answer."""
        held, self._held = self._held, ""
        if self._after_block:
            held = held.lstrip()
        part = Part.REASONING if self._state is _State.THINKING else Part.CONTENT
        return [(part, held)] if held else []

    def _step(self, out: list[tuple[Part, str]]) -> None:
        if self._state is _State.UNDECIDED:
            start = self._held.lstrip()
            if start.startswith(THINK_OPEN):
                self._held, self._state = start[len(THINK_OPEN) :], _State.THINKING
                self.reasoned = True
            elif not THINK_OPEN.startswith(start):  # whitespace alone, or a tag's start: wait
                self._state = _State.ANSWERING
            return
        if self._state is _State.ANSWERING:
            if self._after_block:
                self._held = self._held.lstrip()
                self._after_block = not self._held
            out.append((Part.CONTENT, self._held))
            self._held = ""
            return
        end = self._held.find(THINK_CLOSE)
        if end >= 0:
            out.append((Part.REASONING, self._held[:end]))
            self._held, self._state = self._held[end + len(THINK_CLOSE) :], _State.ANSWERING
            self._after_block = True
            return
        keep = _tag_start(self._held, THINK_CLOSE)
        out.append((Part.REASONING, self._held[: len(self._held) - keep]))
        self._held = self._held[len(self._held) - keep :]


def _tag_start(text: str, tag: str) -> int:
    """How many characters at the end of `text` could begin `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
