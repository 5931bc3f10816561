"""How an answer ended: the finish reason every front end reports, and answers that loop."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ovchat.prompt.tools.hermes import ToolCall

# A loop: the last LOOP_SPAN tokens (at least three periods) repeat with a period of at most LOOP_PERIOD.
LOOP_PERIOD = 50
LOOP_SPAN = 60


def finish_reason(genai_reason: str, cancelled: bool = False) -> str:
    """Why an answer ended, as every front end reports it: stop, length or cancelled
    (`genai_reason`: GenAI's GenerationFinishReason name)."""
    if cancelled:
        return "cancelled"
    return "length" if genai_reason.upper() == "LENGTH" else "stop"


def with_calls(reason: str, calls: Iterable[ToolCall]) -> str:
    """The finish reason of an answer that may hold calls: "tool_calls" once it made a whole one
    (an answer that ran out of tokens inside its call still says "length")."""
    return "tool_calls" if reason == "stop" and any(c.complete for c in calls) else reason


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
