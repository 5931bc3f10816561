"""How an answer ended: the finish reason every front end reports, and answers that loop."""

from __future__ import annotations

# A loop: the last LOOP_SPAN tokens (at least three periods) repeat with a period of at most LOOP_PERIOD.
LOOP_PERIOD = 50
LOOP_SPAN = 60


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
