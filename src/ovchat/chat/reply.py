"""What one answer of the library gives back: plain data, no GenAI import (`ask --server` builds one
without loading OpenVINO)."""

from __future__ import annotations

from dataclasses import dataclass

from ovchat.prompt.tools.hermes import ToolCall


@dataclass(frozen=True)
class TurnMetrics:
    """Figures for one answer, from GenAI's perf_metrics (times in milliseconds)."""

    input_tokens: int
    output_tokens: int
    ttft_ms: float
    tpot_ms: float
    tokens_per_s: float
    generate_ms: float


@dataclass(frozen=True)
class Reply:
    text: str  # what the answer says (its content: the reasoning and the calls' markup apart)
    finish_reason: str  # stop | length | cancelled | tool_calls
    metrics: TurnMetrics
    dropped_messages: int = 0  # oldest messages dropped to fit the context window
    tool_calls: tuple[ToolCall, ...] = ()  # the calls the answer makes (with tools)
    reasoning: str | None = None  # its think block, when the template or the answer opened one
