"""Messages that carry tools, calls and results, as a template takes them: the model's own template
when it speaks tools (native_turns), else ovchat's fallback (fallback_turns).

Messages come in OpenAI's shape (assistant `tool_calls` with `arguments` as JSON text, `role: tool`
results with `tool_call_id`). A NATIVE template gets them as they are, `arguments` parsed into
objects (templates `tojson` them) and each result named after its call. The FALLBACK, for templates
that know nothing of tools (the embedded SmolLM2's ChatML), writes them as plain turns in one fixed
Hermes-style shape: the tools in the system message, each call as hermes.call_text (the format
the grammar enforces and the parser reads), the results of consecutive tool messages in one user
turn of `<tool_response>` blocks.
"""

from __future__ import annotations

import json
from typing import Any

from ovchat.prompt.messages import Message
from ovchat.prompt.tools.hermes import call_text

FALLBACK_TOOLS = (
    "You may call one or more functions to assist with the user query. The functions are described "
    "in JSON Schema within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a JSON object with the function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)
RESULT = "<tool_response>\n{content}\n</tool_response>"


def native_turns(messages: list[Message]) -> list[Message]:
    """`messages` as tool-speaking templates take them."""
    names = _call_names(messages)
    turns: list[Message] = []
    for message in messages:
        turn = dict(message)
        if message.get("tool_calls"):
            turn["tool_calls"] = [
                {
                    **call,
                    "function": {**call["function"], "arguments": json.loads(call["function"]["arguments"])},
                }
                for call in message["tool_calls"]
            ]
        if message["role"] == "tool":
            turn["name"] = names.get(message.get("tool_call_id", ""), "")
        turns.append(turn)
    return turns


def fallback_turns(messages: list[Message], tools: list[dict[str, Any]]) -> list[Message]:
    """`messages` as plain system, user and assistant text turns, the `tools` described first."""
    names = _call_names(messages)
    turns: list[Message] = []
    if tools:
        listed = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
        described = FALLBACK_TOOLS.format(tools=listed)
        if messages and messages[0]["role"] == "system":
            described = f"{messages[0]['content']}\n\n{described}"
            messages = messages[1:]
        turns.append({"role": "system", "content": described})
    for message in messages:
        if message["role"] == "tool":
            result = RESULT.format(
                content=json.dumps(
                    {"name": names.get(message.get("tool_call_id", ""), ""), "content": message["content"]},
                    ensure_ascii=False,
                )
            )
            if turns and turns[-1].get("tool_results"):
                turns[-1]["content"] += "\n" + result
            else:
                turns.append({"role": "user", "content": result, "tool_results": True})
        elif message.get("tool_calls"):
            calls = [
                call_text(c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]
            ]
            text = "\n".join([*([message["content"]] if message.get("content") else []), *calls])
            turns.append({"role": "assistant", "content": text})
        else:
            turns.append({"role": message["role"], "content": message.get("content") or ""})
    return [{"role": t["role"], "content": t["content"]} for t in turns]


def _call_names(messages: list[Message]) -> dict[str, str]:
    """Each call's id -> its function's name, over the whole conversation."""
    return {
        call["id"]: call["function"]["name"]
        for message in messages
        for call in message.get("tool_calls") or []
    }
