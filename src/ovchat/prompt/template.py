"""What a model's chat template can render: tools natively, or only through ovchat's fallback.

GenAI (through minja) renders tools even for a template that never mentions them, by polyfilling a
system message of its own in a JSON format no parser here reads. So "native" is decided by the
template itself: its source names `tools`, and a probe tool comes out in its own words, without
minja's polyfill text. Otherwise ovchat's fallback (tool_prompt) writes the tools and results.
"""

from __future__ import annotations

import enum
import re
from typing import Any

PROBE = "ovchat_probe_function"
POLYFILL = "You can call any of the following tools"


class ToolFormat(enum.Enum):
    """How a model's prompts carry tools."""

    NATIVE = "native"  # the model's own template renders tools, calls and results
    FALLBACK = "fallback"  # ovchat's Hermes-style system message and tool results (tool_prompt)
    NONE = "none"  # no chat template at all: chat (and so tools) is not available


def tool_format(tokenizer: Any) -> ToolFormat:
    """How the template of `tokenizer` (GenAI's Tokenizer) carries tools."""
    source = str(getattr(tokenizer, "chat_template", "") or "")
    if not source:
        return ToolFormat.NONE
    if not re.search(r"\btools\b", source):
        return ToolFormat.FALLBACK
    probe = {"type": "function", "function": {"name": PROBE, "description": "", "parameters": {}}}
    try:
        text = str(tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], True, tools=[probe]))
    except RuntimeError:
        return ToolFormat.FALLBACK
    return ToolFormat.NATIVE if PROBE in text and POLYFILL not in text else ToolFormat.FALLBACK


def writes_thinking(tokenizer: Any) -> bool:
    """Whether the template of `tokenizer` writes a <think> block (its answers then start as reasoning,
    or carry an empty block when thinking is switched off)."""
    return "<think>" in str(getattr(tokenizer, "chat_template", "") or "")


DESCRIPTIONS = {
    ToolFormat.NATIVE: "native (the model's chat template renders tools, calls and results)",
    ToolFormat.FALLBACK: "fallback (ovchat describes the tools in the system message, Hermes-style)",
    ToolFormat.NONE: "none (no chat template)",
}
