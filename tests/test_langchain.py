"""LangChain's ChatOpenAI against the real server: bind_tools, with_structured_output, the tool loop."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from servers import Server


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"]) -> str:
    """The weather in a city now."""
    return f"sunny, 24 degrees {unit} in {city}"


class Forecast(BaseModel):
    """A forecast for a city."""

    city: str = Field(max_length=40)
    days: int = Field(ge=1, le=7)


ASK = "What is the weather in Paris?"


@pytest.fixture(scope="module")
def chat(default_server: Server) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=f"{default_server.base}/v1", api_key="none", model="m", temperature=0, max_tokens=120
    )


@pytest.mark.parametrize("choice", ["get_weather", "any", "required"])
def test_bind_tools_with_an_enforced_choice_calls_the_tool(chat: ChatOpenAI, choice: str) -> None:
    answer = chat.bind_tools([get_weather], tool_choice=choice).invoke(ASK)
    assert len(answer.tool_calls) == 1
    call = answer.tool_calls[0]
    assert call["name"] == "get_weather" and call["id"]
    assert isinstance(call["args"]["city"], str) and call["args"]["unit"] in ("celsius", "fahrenheit")
    assert answer.response_metadata["finish_reason"] == "tool_calls"


def test_a_streamed_bind_tools_call_assembles(chat: ChatOpenAI) -> None:
    bound = chat.bind_tools([get_weather], tool_choice="get_weather")
    whole = None
    for piece in bound.stream(ASK):
        whole = piece if whole is None else whole + piece
    assert whole is not None and whole.tool_calls[0]["name"] == "get_weather"
    assert whole.tool_calls[0]["args"]["unit"] in ("celsius", "fahrenheit")


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_with_structured_output_returns_the_model(chat: ChatOpenAI, method: str) -> None:
    structured = chat.with_structured_output(Forecast, method=method)  # type: ignore[arg-type]
    forecast = structured.invoke("Give me a three-day forecast for Rome.")
    assert isinstance(forecast, Forecast) and 1 <= forecast.days <= 7


def test_the_tool_loop_through_langchain(chat: ChatOpenAI) -> None:
    bound = chat.bind_tools([get_weather], tool_choice="get_weather")
    history = [HumanMessage(ASK)]
    answer = bound.invoke(history)
    call = answer.tool_calls[0]
    result = ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
    final = chat.bind_tools([get_weather]).invoke([*history, answer, result])
    assert final.content or final.tool_calls


def test_the_documented_langchain_example_runs_as_written(default_server: Server, tmp_path: Path) -> None:
    guide = (Path(__file__).parents[1] / "docs" / "server-api.md").read_text()
    section = guide[guide.index("## Tool calls") :]
    code = [block for block in re.findall(r"```python\n(.*?)```", section, re.S) if "langchain" in block]
    assert code, "the tool calls section has no LangChain example"
    script = code[0].replace("http://127.0.0.1:8000/v1", f"{default_server.base}/v1")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[{'name': 'get_weather', 'args': {'city': ")
