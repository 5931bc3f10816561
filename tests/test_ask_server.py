"""`ovchat ask --server URL`: one-shot answers from a running `ovchat serve`, with no model load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from conftest import DEFAULT_MODEL_NAME, OVCHAT
from ovchat import TurnMetrics
from ovchat.cli.ask import AskResult
from servers import Server, free_port, start_server

KEY = "ask-server-test-key"
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[Server]:
    started = start_server(model_dir, key=KEY)
    yield started
    started.stop()


def ask(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "OVCHAT_API_KEY": "", "OVCHAT_SERVER": "", **(env or {})}
    return subprocess.run(
        [str(OVCHAT), "ask", *args], input=stdin, capture_output=True, text=True, env=environment, timeout=120
    )


def test_ask_streams_the_servers_answer_without_loading_a_model(server: Server) -> None:
    result = ask("--server", server.base, "--api-key", KEY, "-t", "0", QUESTION)
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    # The same answer as the server gives any OpenAI client, and the key can come from the environment.
    result = ask("-t", "0", "--json", QUESTION, env={"OVCHAT_SERVER": server.base, "OVCHAT_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert set(reply) == {f.name for f in fields(AskResult)}  # the shape a local answer has
    assert set(reply["metrics"]) == {f.name for f in fields(TurnMetrics)}
    assert "Paris" in reply["text"] and reply["finish_reason"] == "stop"
    assert reply["model"] == DEFAULT_MODEL_NAME and reply["server"] == server.base
    assert reply["load_seconds"] is None and reply["reasoning"] is None
    metrics = reply["metrics"]
    assert metrics["input_tokens"] > 5 and 0 < metrics["output_tokens"] < 64
    assert 0 < metrics["ttft_ms"] <= metrics["generate_ms"] and metrics["tokens_per_s"] > 0


def test_options_system_prompt_and_raw_reach_the_server(server: Server) -> None:
    base = ("--server", f"{server.base}/v1", "--api-key", KEY, "--json")  # an OpenAI-style base URL works
    reply = json.loads(ask(*base, "-t", "0", "-n", "3", "--ignore-eos", "Tell me a story.").stdout)
    assert reply["metrics"]["output_tokens"] == 3 and reply["finish_reason"] == "length"
    stopped = json.loads(
        ask(*base, "-t", "0", "--stop", "5", "Count from 1 to 10, separated by commas.").stdout
    )
    assert "4" in stopped["text"] and "6" not in stopped["text"]
    short = json.loads(ask(*base, "-t", "0", "-n", "1", "-s", "Be brief.", QUESTION).stdout)
    long = json.loads(ask(*base, "-t", "0", "-n", "1", "-s", "Be brief. " * 20, QUESTION).stdout)
    # The system prompt went into the template.
    assert long["metrics"]["input_tokens"] >= short["metrics"]["input_tokens"] + 40
    raw = json.loads(ask(*base, "--raw", "-t", "0", "-n", "8", "The capital of France is").stdout)
    assert raw["text"].strip() and raw["metrics"]["output_tokens"] <= 8


def test_what_a_server_cannot_do_is_one_clear_line(server: Server, model_dir: Path) -> None:
    cases = [
        (
            ("--server", server.base, "--api-key", KEY, "--top-k", "5", "hi"),
            "--top-k cannot be sent to a server",
        ),
        (("--server", server.base, "--api-key", KEY, "--device", "CPU", "hi"), "--device: not with --server"),
        (("--server", server.base, "hi"), "answered 401"),  # no key
        (
            ("--server", f"http://127.0.0.1:{free_port()}", "hi"),
            "no ovchat server answers at http://127.0.0.1:",
        ),
        (("--server", "ftp://example", "hi"), "must be an http:// or https:// URL"),
    ]
    for args, expected in cases:
        result = ask(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert expected in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_asking_a_server_never_imports_openvino(server: Server) -> None:
    """What makes `ask --server` fast: Python's start and one request, no OpenVINO import."""
    code = (
        "import sys\n"
        "from ovchat.cli.main import cli\n"
        f"sys.argv = ['ovchat', 'ask', '--server', {server.base!r}, '--api-key', {KEY!r}, '-n', '4', 'hi']\n"
        "try:\n    cli()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('openvino', 'openvino_genai'))\n"
        "print('OPENVINO:', ','.join(loaded))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "OPENVINO:"
