"""A model's chat template: what it can render, and the one place a chat's prompt is rendered.

GenAI (through minja) renders tools even for a template that never mentions them, by polyfilling a
system message of its own in a JSON format no parser here reads. So "native" is decided by the
template itself: its source names `tools`, and a probe tool comes out in its own words, without
minja's polyfill text. Otherwise ovchat's fallback (tools.fallback) writes the tools and results.

The tokenizer is GenAI's Tokenizer or anything with its `chat_template` and `apply_chat_template`:
these rules hold no GenAI import, so they are tested with stand-ins in milliseconds.
"""

from __future__ import annotations

import enum
import re
from typing import Any

from ovchat.prompt.messages import Message, has_tool_turns
from ovchat.prompt.tools.fallback import fallback_turns, native_turns
from ovchat.prompt.tools.use import ToolUse

PROBE = "ovchat_probe_function"
POLYFILL = "You can call any of the following tools"


class ToolFormat(enum.Enum):
    """How a model's prompts carry tools."""

    NATIVE = "native"  # the model's own template renders tools, calls and results
    FALLBACK = "fallback"  # ovchat's Hermes-style system message and tool results (tools.fallback)
    NONE = "none"  # no chat template at all: chat (and so tools) is not available


def tool_format(tokenizer: Any) -> ToolFormat:
    """How the template of `tokenizer` carries tools."""
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


def render(
    tokenizer: Any,
    form: ToolFormat,
    messages: list[Message],
    tools: ToolUse | None = None,
    context: dict[str, Any] | None = None,
) -> str:
    """The prompt the model sees for `messages`, ready for the answer: the template alone for a plain
    chat; with tools or tool turns, the model's own template when it speaks tools, else the fallback;
    `context`: the template's extra variables (enable_thinking, ...)."""
    if tools is None and not has_tool_turns(messages) and not context:
        return str(tokenizer.apply_chat_template(messages, add_generation_prompt=True))
    shown = tools.shown if tools is not None else []
    if form is ToolFormat.NATIVE:
        turns = native_turns(messages)
        return str(tokenizer.apply_chat_template(turns, True, tools=shown or None, extra_context=context))
    return str(tokenizer.apply_chat_template(fallback_turns(messages, shown), True, extra_context=context))


DESCRIPTIONS = {
    ToolFormat.NATIVE: "native (the model's chat template renders tools, calls and results)",
    ToolFormat.FALLBACK: "fallback (ovchat describes the tools in the system message, Hermes-style)",
    ToolFormat.NONE: "none (no chat template)",
}
