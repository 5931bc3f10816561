"""The REPL's commands and `ovchat ask`'s output, in milliseconds, on a fake model (fake_model.py).

What only the real model proves (its answers, Ctrl-C in a real terminal, GGUF files) is in
tests/test_repl.py and tests/test_cli.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fake_model import FakePipeline, fake_model, typed_lines

import ovchat.cli.ask
from ovchat.chat.session import ChatSession
from ovchat.chat.transcript import TRANSCRIPT_FORMAT
from ovchat.cli.ask import AskResult
from ovchat.cli.main import cli
from ovchat.cli.repl import HELP, Repl
from ovchat.model.pipeline import Model
from ovchat.options import GenerationOptions

Chat = Callable[..., str]


@pytest.fixture
def chat(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., tuple[str, Model]]:
    """chat(*lines, model=..., system=...): the REPL's output after typing `lines`, then Ctrl-D."""
    monkeypatch.chdir(tmp_path)

    def run(*lines: str, model: Model | None = None, system: str | None = None) -> tuple[str, Model]:
        model = model or fake_model()
        out = io.StringIO()
        monkeypatch.setattr("builtins.input", typed_lines(out, *lines))
        Repl(ChatSession(model, GenerationOptions(), system), out).run()
        return out.getvalue(), model

    return run


def conversation(model: Model) -> list[dict[str, str]]:
    """The messages the pipeline was last asked to answer."""
    pipeline: FakePipeline = model.pipeline  # type: ignore[assignment]
    return pipeline.answers[-1]


def test_each_answer_sees_the_conversation_so_far(chat: Any) -> None:
    out, model = chat("hello there", "and again", "/stats")
    assert "echo: hello there" in out and "echo: and again" in out
    assert [m["content"] for m in conversation(model)] == ["hello there", "echo: hello there", "and again"]
    assert "tokens in 7, out 3" in out and "finish: stop" in out


def test_slash_commands(chat: Any) -> None:
    out, _ = chat(
        "/help",
        "/system You are a pirate.",
        "/system",
        "/set temperature 0.5",
        "/set",
        "/set top_p 7",
        "/set min_p 0.05",
        "/frobnicate",
        "/reset",
        "/stats",
    )
    assert HELP in out
    assert "[system prompt set]" in out and "You are a pirate." in out
    assert "[temperature = 0.5]" in out and "temperature = 0.5\n" in out
    assert "top_p must be in (0, 1]" in out
    assert "[min_p = 0.05]" in out
    assert "unknown command /frobnicate" in out
    assert "[conversation cleared]" in out and "(no answer yet)" in out


def test_a_multi_line_block_is_one_message(chat: Any) -> None:
    _, model = chat('"""', "Repeat these two words:", 'apple banana"""')
    assert conversation(model) == [{"role": "user", "content": "Repeat these two words:\napple banana"}]


def test_system_prompt_save_reset_and_load(chat: Any, tmp_path: Path) -> None:
    out, model = chat(
        "/system",
        "hi",
        "/save first.json",
        "/reset",
        "/save cleared.json",
        "/system none",
        "/system",
        "/reset",
        "/load first.json",
        "/save again.json",
        "/load missing.json",
        "/save after.json",
        "/exit",
        "never read",
        system="You are a pirate.",
    )
    first = json.loads((tmp_path / "first.json").read_text())["messages"]
    assert first == [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "echo: hi"},
    ]
    assert json.loads((tmp_path / "cleared.json").read_text())["messages"] == first[:1]
    assert "[system prompt removed]" in out and "(no system prompt)" in out
    assert "[loaded 3 messages from first.json]" in out
    assert json.loads((tmp_path / "again.json").read_text())["messages"] == first
    assert "cannot read missing.json" in out  # and the conversation stays as it was:
    assert json.loads((tmp_path / "after.json").read_text())["messages"] == first
    assert "never read" not in json.dumps(conversation(model))


def test_a_conversation_over_the_context_drops_its_oldest_messages_and_says_so(
    chat: Any, tmp_path: Path
) -> None:
    long = "word " * 300
    messages = [{"role": r, "content": long} for r in ("user", "assistant", "user", "assistant")]
    (tmp_path / "long.json").write_text(json.dumps({"format": TRANSCRIPT_FORMAT, "messages": messages}))
    out, model = chat("/set max_new_tokens 8", "/load long.json", "Say hi.", model=fake_model(700))
    assert "[dropped the 2 oldest messages to fit the context window]" in out
    assert len(conversation(model)) == 3


def test_an_answer_cut_by_max_new_tokens_says_length(chat: Any) -> None:
    out, _ = chat("/set max_new_tokens 2", "one two three four", "/stats")
    assert "echo: one" in out and "finish: length" in out


@pytest.fixture
def ask(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """`ovchat ask ARGS` on the fake model, through click."""
    monkeypatch.setattr(ovchat.cli.ask, "load_model", lambda kwargs, **how: fake_model())
    monkeypatch.setenv("OVCHAT_SERVER", "")

    def run(*args: str, stdin: str = "") -> Any:
        return CliRunner().invoke(cli, ["ask", *args], input=stdin)

    return run


def test_ask_prints_the_answer_streamed_or_whole(ask: Any) -> None:
    streamed, whole = ask("hello", "world"), ask("--no-stream", "hello world")
    assert streamed.exit_code == 0 and streamed.output == "echo: hello world\n"
    assert whole.output == streamed.output


def test_ask_reads_the_prompt_from_stdin(ask: Any) -> None:
    assert ask(stdin="from stdin\n").output == "echo: from stdin\n"


def test_ask_json_reports_text_finish_reason_and_counts(ask: Any) -> None:
    result = ask("--json", "--max-new-tokens", "2", "one two three")
    data = json.loads(result.output)
    assert set(data) == {f.name for f in fields(AskResult)}  # the shape `ask --server --json` has too
    assert data["text"] == "echo: one" and data["finish_reason"] == "length"
    assert data["metrics"]["output_tokens"] == 2 and data["model"] == "fake-model"
    assert data["server"] is None and data["load_seconds"] == 0.0


def test_ask_with_an_invalid_option_says_so_in_one_line(ask: Any) -> None:
    result = ask("--top-p", "7", "hello")
    assert result.exit_code == 2 and "top_p" in result.output and "Traceback" not in result.output


def test_a_thinking_models_reasoning_is_shown_apart_and_not_kept_as_its_answer(chat: Any) -> None:
    model = fake_model()
    pipeline: FakePipeline = model.pipeline  # type: ignore[assignment]
    pipeline.reply = lambda messages: "<think>They greet me.</think>\n\nHello!"
    out, _ = chat("hi", "/save talk.json", model=model)
    assert "[thinking] They greet me.\n[answer]\nHello!" in out
    saved = json.loads(Path("talk.json").read_text())["messages"]
    assert saved[-1] == {"role": "assistant", "content": "Hello!"}
