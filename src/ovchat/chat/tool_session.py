"""A ChatSession turn that offers tools or carries tool calls and results: the library's tool calls.

The prompt is rendered as the server renders it (tool_prompt: the model's template when it speaks
tools, else the Hermes-style fallback), the grammar is the server's (ToolUse.grammar), and the
answer is read with the same parser; `on_text` hears the answer's content only, not the calls'
markup. The history keeps OpenAI's shapes: an assistant message with `tool_calls` (arguments as
JSON text), `role: tool` messages with `tool_call_id`.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from typing import TYPE_CHECKING, Any

from ovchat.errors import GenerationError, plain_message
from ovchat.prompt.budget import answer_budget
from ovchat.prompt.endings import finish_reason
from ovchat.prompt.template import tool_format
from ovchat.prompt.tools.fallback import Turn, tool_chat_prompt
from ovchat.prompt.tools.hermes import ContentPiece, ToolCallParser
from ovchat.prompt.tools.use import ToolUse

if TYPE_CHECKING:
    from ovchat.chat.session import ChatSession, Reply, TextCallback


def answer_with_tools(
    session: ChatSession,
    conversation: list[Turn],
    tools: ToolUse | None,
    on_text: TextCallback | None,
    cancel: threading.Event | None,
) -> tuple[Reply, Turn]:
    """Generate the answer to `conversation` with `tools`; the Reply and the assistant turn to keep."""
    from ovchat.chat.session import Reply, Streamer, _metrics, _reset_kv_state

    model = session.model
    tokenizer = model.tokenizer
    prompt = tool_chat_prompt(tokenizer, conversation, tools, tool_format(tokenizer))
    inputs = tokenizer.encode(prompt, add_special_tokens=False)
    prompt_tokens = int(inputs.input_ids.get_shape()[1])
    budget = answer_budget(prompt_tokens, model.files.context_length, session.options.max_new_tokens)
    config = session.options.to_config(model.pipeline.get_generation_config(), budget)
    config.apply_chat_template = False
    grammar = tools.grammar() if tools is not None else None
    if grammar is not None:
        config.structured_output_config = grammar
    parser = ToolCallParser()
    streamer = Streamer(_content_only(parser, on_text), cancel, model.settle_memory)
    _reset_kv_state(model.pipeline)  # token input after a chat: see complete_raw
    try:
        with session.busy:
            result = model.pipeline.generate(inputs, config, streamer)
    except RuntimeError as exc:
        raise GenerationError(f"generation failed: {plain_message(exc)}") from None
    finally:
        _reset_kv_state(model.pipeline)
        model.settle_memory()
    tokens = list(result.tokens[0])
    rest = ToolCallParser()  # the whole text, read again: the streamed pieces may split a character
    rest.feed(tokenizer.decode(tokens, skip_special_tokens=True))
    rest.finish()
    calls = tuple(dataclasses.replace(c, id=f"call_{uuid.uuid4().hex[:24]}") for c in rest.calls)
    reason = finish_reason(None, streamer.cancelled, generated=len(tokens), budget=budget)
    if reason == "stop" and any(c.complete for c in calls):
        reason = "tool_calls"
    turn: dict[str, Any] = {"role": "assistant", "content": rest.content}
    if calls:
        turn["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    return Reply(rest.content, reason, _metrics(result.perf_metrics), tool_calls=calls), turn


def _content_only(parser: ToolCallParser, on_text: TextCallback | None) -> TextCallback | None:
    if on_text is None:
        return None

    def hear(piece: str) -> None:
        for event in parser.feed(piece):
            if isinstance(event, ContentPiece):
                on_text(event.text)

    return hear
