"""Tool calls end to end: the real server and model through the official openai SDK."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import openvino_genai as ov_genai
import pytest

from conftest import OVCHAT
from ovchat.prompt.answer import read_whole
from ovchat.prompt.template import ToolFormat, render, tool_format
from ovchat.prompt.tools.use import Tool, ToolUse
from servers import Server, start_server

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The forecast for a city",
        "parameters": WEATHER_SCHEMA,
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time now in a time zone",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}
ASK = [{"role": "user", "content": "What will the weather be in Paris for the next three days?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}
HERMES_TEMPLATE = Path(__file__).parent / "fixtures" / "hermes_tools_template.jinja"


@pytest.fixture(scope="module")
def client(default_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{default_server.base}/v1", api_key="none", max_retries=0)


def with_template(model: Path, folder: Path, template: str) -> Path:
    """A copy of `model` (symlinks) whose tokenizer carries `template` as its chat template."""
    folder.mkdir()
    for item in model.iterdir():
        if item.name not in ("openvino_tokenizer.xml", "manifest.json"):  # the manifest holds its size
            (folder / item.name).symlink_to(item)
    value = html.escape(template, quote=True).replace("\n", "&#10;")  # attributes fold newlines
    xml = (model / "openvino_tokenizer.xml").read_text()
    xml = re.sub(r'<chat_template value="[^"]*"', lambda _: f'<chat_template value="{value}"', xml, count=1)
    (folder / "openvino_tokenizer.xml").write_text(xml)
    return folder


def serve_with_template(model_dir: Path, where: Path, template: Path) -> Iterator[Server]:
    """A server on the default model given another chat template (for a module-scoped fixture)."""
    started = start_server(with_template(model_dir, where / "model", template.read_text()))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def native(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on the default model given a Qwen2.5-style template that speaks tools."""
    yield from serve_with_template(model_dir, tmp_path_factory.mktemp("native"), HERMES_TEMPLATE)


def check_call(call: Any, name: str = "get_weather") -> dict[str, Any]:
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == name
    arguments: dict[str, Any] = json.loads(call.function.arguments)
    jsonschema.validate(
        arguments, WEATHER_SCHEMA if name == "get_weather" else TIME["function"]["parameters"]
    )
    return arguments


@pytest.mark.parametrize("choice", ["required", NAMED])
def test_an_enforced_call_parses_and_fits_its_schema(client: openai.OpenAI, choice: Any) -> None:
    answer = client.chat.completions.create(
        model="m", messages=ASK, tools=[TIME, WEATHER], tool_choice=choice, max_tokens=120, temperature=0
    )
    choice_ = answer.choices[0]
    assert choice_.finish_reason == "tool_calls" and choice_.message.content is None
    assert len(choice_.message.tool_calls or []) == 1
    if choice == NAMED:
        check_call(choice_.message.tool_calls[0])
    else:  # "required" lets it pick either function
        check_call(choice_.message.tool_calls[0], choice_.message.tool_calls[0].function.name)


def test_a_streamed_call_assembles_into_the_whole_one(client: openai.OpenAI) -> None:
    fields: dict[str, Any] = {"model": "m", "messages": ASK, "tools": [WEATHER], "tool_choice": NAMED}
    fields |= {"max_tokens": 120, "temperature": 0}
    whole = client.chat.completions.create(**fields).choices[0]
    with client.chat.completions.stream(**fields, stream_options={"include_usage": True}) as stream:
        chunks = list(stream)
        final = stream.get_final_completion()
    streamed = final.choices[0]
    assert streamed.finish_reason == "tool_calls" and final.usage is not None
    assert streamed.message.tool_calls is not None and whole.message.tool_calls is not None
    assert check_call(streamed.message.tool_calls[0]) == check_call(whole.message.tool_calls[0])
    assert streamed.message.tool_calls[0].function.arguments == whole.message.tool_calls[0].function.arguments
    # OpenAI's delta shape: the call's id and name come first, then its arguments in pieces.
    pieces = [
        call
        for chunk in chunks
        if chunk.type == "chunk" and chunk.chunk.choices
        for call in chunk.chunk.choices[0].delta.tool_calls or []
    ]
    assert pieces[0].id and pieces[0].function.name == "get_weather" and pieces[0].function.arguments == ""
    assert len(pieces) > 2 and all(p.id is None and p.function.name is None for p in pieces[1:])


def test_the_full_loop_call_then_result_then_an_answer(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model="m", messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=120, temperature=0
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    result = {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"forecast": "sunny, 24 C"})}
    history = [*ASK, first.choices[0].message.model_dump(exclude_none=True), result]
    final = client.chat.completions.create(model="m", messages=history, tools=[WEATHER], max_tokens=60)
    message = final.choices[0].message
    assert final.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert message.content or message.tool_calls
    # The prompt grew by the call and the result the history carries.
    assert final.usage is not None and first.usage is not None
    assert final.usage.prompt_tokens > first.usage.prompt_tokens + first.usage.completion_tokens


def test_auto_answers_with_text_or_calls_that_fit(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="m", messages=ASK, tools=[WEATHER], max_tokens=60)
    message = answer.choices[0].message
    for call in message.tool_calls or []:
        check_call(call)
    assert message.content or message.tool_calls


def test_tool_choice_none_never_calls(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="m", messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=40
    )
    assert answer.choices[0].message.tool_calls is None and answer.choices[0].message.content


def with_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    return {"tools": [{**WEATHER, "function": {**WEATHER["function"], "parameters": schema}}]}


NAMED_ESCAPE = {"type": "object", "properties": {"a": {"type": "string", "pattern": "\\N{DIGIT ONE}"}}}
BAD_CALL = {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{oops"}}
THOUSAND = [{**WEATHER, "function": {**WEATHER["function"], "name": f"f{i}"}} for i in range(1000)]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (with_parameters({"type": "object", "required": 1}), "tools[0].function.parameters"),
        (with_parameters(NAMED_ESCAPE), "tools[0].function.parameters"),  # xgrammar would fail on it
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
         "tool_choice.function.name"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": THOUSAND}, "tools"),
        ({"messages": [*ASK, {"role": "tool", "tool_call_id": "x", "content": "1"}]},
         "messages[1].tool_call_id"),
        ({"messages": [*ASK, {"role": "assistant", "tool_calls": [BAD_CALL]}]},
         "messages[1].tool_calls[0].function.arguments"),
    ],
)  # fmt: skip
def test_bad_tool_input_is_a_400_and_the_next_request_is_served(
    default_server: Server, client: openai.OpenAI, fields: dict[str, Any], param: str
) -> None:
    body = {"messages": ASK, "max_tokens": 4, **fields}
    response = httpx.post(f"{default_server.base}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    answer = client.chat.completions.create(
        model="m", messages=ASK, tools=[WEATHER], tool_choice=NAMED, max_tokens=120, temperature=0
    )
    assert answer.choices[0].finish_reason == "tool_calls"


def test_a_template_that_speaks_tools_renders_them_itself(model_dir: Path) -> None:
    tokenizer = ov_genai.Tokenizer(str(model_dir))
    assert tool_format(tokenizer) is ToolFormat.FALLBACK  # SmolLM2's ChatML knows nothing of tools
    tokenizer.set_chat_template(HERMES_TEMPLATE.read_text())
    assert tool_format(tokenizer) is ToolFormat.NATIVE
    use = ToolUse((Tool("get_weather", "The forecast", WEATHER_SCHEMA),))
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call]}]
    history.append({"role": "tool", "tool_call_id": "c1", "content": "-3 C"})
    prompt = render(tokenizer, ToolFormat.NATIVE, history, use)
    assert "# Tools" in prompt and '"name": "get_weather"' in prompt  # the template's own words
    replayed = read_whole(prompt.split("<|im_start|>assistant\n")[1], calls=True).answer("stop")
    assert replayed.calls[0].arguments == '{"city": "Oslo"}'
    assert "<tool_response>\n-3 C\n</tool_response>" in prompt


def test_models_and_info_say_how_prompts_carry_tools(default_server: Server, model_dir: Path) -> None:
    card = httpx.get(f"{default_server.base}/v1/models").json()["data"][0]
    assert card["tool_calls"] == "fallback" and card["context_length"] == 8192
    facts = json.loads(subprocess.run([str(OVCHAT), "info", "--model", str(model_dir), "--json"],
                                      capture_output=True, text=True, check=True).stdout)  # fmt: skip
    assert facts["tool_calls"].startswith("fallback") and facts["context_length"] == 8192


def test_a_native_template_carries_the_tools_and_the_loop(native: Server) -> None:
    card = httpx.get(f"{native.base}/v1/models").json()["data"][0]
    assert card["tool_calls"] == "native"
    client = openai.OpenAI(base_url=f"{native.base}/v1", api_key="none", max_retries=0)
    first = client.chat.completions.create(
        model="m", messages=ASK, tools=[WEATHER], tool_choice=NAMED, max_tokens=120, temperature=0
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    check_call(call)
    result = {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"}
    history = [*ASK, first.choices[0].message.model_dump(exclude_none=True), result]
    final = client.chat.completions.create(model="m", messages=history, tools=[WEATHER], max_tokens=40)
    assert final.choices[0].message.content or final.choices[0].message.tool_calls


def test_the_documented_tool_example_runs_as_written(default_server: Server, tmp_path: Path) -> None:
    guide = (Path(__file__).parents[1] / "docs" / "server-api.md").read_text()
    section = guide[guide.index("## Tool calls") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "the tool calls section has no python example"
    script = code.group(1).replace("http://127.0.0.1:8000/v1", f"{default_server.base}/v1")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("get_weather {'city': ")
    assert "ChatCompletionMessage(" in result.stdout
