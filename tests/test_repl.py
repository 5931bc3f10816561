"""`ovchat chat` driven in a real pseudo-terminal, as a person would use it."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest
from pexpect.popen_spawn import PopenSpawn

from conftest import OVCHAT, copy_of, embedded_gguf
from ovchat.chat.session import ChatSession
from ovchat.cli.repl import Repl
from ovchat.model.pipeline import Model
from ovchat.options import GenerationOptions

PROMPT = ">>> "


# PopenSpawn forks this pytest process, which by now runs OpenVINO worker threads, and runs
# Python in the child before exec: a lock held by one of those threads at fork time can hang or
# kill the child. So the chat starts through subprocess (fork+exec in C) in a fresh Python that
# gives it a real pseudo-terminal with pty.spawn and relays our pipes to it. The relay first
# restores SIGINT's default: a shell that starts pytest in the background (`cmd &`) makes every
# process below it ignore SIGINT, and Python then installs no Ctrl-C handler at all.
PTY_RELAY = (
    "import os, pty, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))"
)
CTRL_C, CTRL_D = "\x03", "\x04"


@pytest.fixture
def chat(model_dir: Path, tmp_path: Path) -> Iterator[PopenSpawn]:
    child = spawn_chat(model_dir, tmp_path)
    yield child
    if child.proc.poll() is None:
        child.kill(signal.SIGKILL)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., PopenSpawn]]:
    """spawn(model, *extra): a chat in tmp_path, killed after the test even when the test fails."""
    children: list[PopenSpawn] = []

    def start(model: Path, *extra: str) -> PopenSpawn:
        children.append(spawn_chat(model, tmp_path, *extra))
        return children[-1]

    yield start
    for child in children:
        if child.proc.poll() is None:
            child.kill(signal.SIGKILL)


def spawn_chat(model_dir: Path, tmp_path: Path, *extra: str) -> PopenSpawn:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "TERM": "dumb", "PYTHONFAULTHANDLER": "1"}
    command = [sys.executable, "-c", PTY_RELAY, str(OVCHAT), "chat", "--model", str(model_dir),
               "--temperature", "0", *extra]  # fmt: skip
    child = PopenSpawn(command, cwd=str(tmp_path), encoding="utf-8", timeout=60, env=env)
    child.logfile_read = sys.stdout  # shows the transcript when a test fails
    if child.expect_exact(["/help for commands", pexpect.EOF]) == 1:
        pytest.fail(f"ovchat chat ended at start with exit code {child.wait()}")
    child.expect_exact(PROMPT)
    return child


def ask(child: PopenSpawn, text: str) -> str:
    child.sendline(text)
    child.expect_exact(PROMPT)
    return str(child.before)


def test_answers_stream_and_the_conversation_goes_on(chat: PopenSpawn) -> None:
    assert "Paris" in ask(chat, "What is the capital of France?")
    stats = ask(chat, "/stats")
    assert "tokens in" in stats and "finish: stop" in stats


def test_ctrl_c_stops_the_answer_and_the_session_goes_on(chat: PopenSpawn, tmp_path: Path) -> None:
    ask(chat, "/set max_new_tokens 400")
    chat.sendline("Write a very long story about a dragon and a knight.")
    chat.expect_exact("knight.\r\n")  # the terminal's echo of the line
    chat.expect(r"\w+ \w+ \w+")  # the answer has started streaming
    seen = str(chat.after)  # its first three words
    chat.send(CTRL_C)
    chat.expect_exact("[stopped; the partial answer stays in the conversation]", timeout=10)
    chat.expect_exact(PROMPT)
    ask(chat, "/save partial.json")
    kept = json.loads((tmp_path / "partial.json").read_text())["messages"]
    assert [m["role"] for m in kept] == ["user", "assistant"]
    assert kept[1]["content"].lstrip().startswith(seen)  # the answer shown, kept
    assert "Paris" in ask(chat, "What is the capital of France?")


def test_the_system_option_starts_the_conversation(
    model_dir: Path, tmp_path: Path, spawn: Callable[..., PopenSpawn]
) -> None:
    # /system, /reset, /load, multi-line input and the context notice: tests/unit/test_chat_commands.py
    chat = spawn(model_dir, "--system", "You are a pirate.")
    assert "You are a pirate." in ask(chat, "/system")
    assert "Paris" in ask(chat, "What is the capital of France?")
    ask(chat, "/save first.json")
    first = json.loads((tmp_path / "first.json").read_text())["messages"]
    assert first[0] == {"role": "system", "content": "You are a pirate."} and len(first) == 3
    chat.sendline("/exit")
    chat.expect(pexpect.EOF)


def test_chat_runs_a_gguf_file(model_dir: Path, spawn: Callable[..., PopenSpawn]) -> None:
    chat = spawn(embedded_gguf())
    assert "Paris" in ask(chat, "What is the capital of France?")
    chat.sendline("/exit")
    chat.expect(pexpect.EOF)


def test_a_model_that_fails_to_load_ends_the_chat_while_nothing_is_typed(
    model_dir: Path, tmp_path: Path
) -> None:
    # The prompt is up before the model loads (ovchat.cli.opening); the failure must not wait for Enter.
    broken = copy_of(model_dir, tmp_path, replace=("openvino_model.bin",), drop=("manifest.json",))
    os.truncate(broken / "openvino_model.bin", 1_000_000)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "TERM": "dumb"}
    command = [sys.executable, "-c", PTY_RELAY, str(OVCHAT), "chat", "--model", str(broken)]
    child = PopenSpawn(command, cwd=str(tmp_path), encoding="utf-8", timeout=60, env=env)
    child.logfile_read = sys.stdout
    child.expect_exact("/help for commands")
    child.expect_exact("ovchat: error: cannot load the model")
    child.expect(pexpect.EOF)
    assert child.wait() == 1
    assert "Traceback" not in str(child.before)


def test_ctrl_c_at_the_prompt_does_not_quit_and_ctrl_d_does(chat: PopenSpawn) -> None:
    # Pause as a person would: CPython's readline only notices a SIGINT that interrupts its
    # select(); one landing between the prompt's write and that select() (a window that opens
    # wide while the warm-up keeps both cores busy) waits for the next Enter. Seen: 2 in 25
    # without the pause, 0 in 30 with it.
    time.sleep(0.5)
    chat.send(CTRL_C)
    chat.expect_exact("use /exit or Ctrl-D to quit")
    chat.expect_exact(PROMPT)
    chat.send(CTRL_D)
    chat.expect(pexpect.EOF)
    assert chat.wait() == 0


def test_quitting_at_once_waits_for_the_background_warm_up(
    model: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-D typed before the warm-up ended let Python shut down under a running OpenVINO
    # call: the process died with SIGABRT or SIGSEGV in about one run in ten.
    def ctrl_d(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", ctrl_d)
    session = ChatSession(model, GenerationOptions(temperature=0.0, max_new_tokens=8))
    Repl(session, out=io.StringIO()).run()
    assert not [t for t in threading.enumerate() if t.name == "ovchat-open"]
    assert session.send("What is the capital of France?").text  # the cut warm-up left a clean state


def test_save_then_resume_continues_the_conversation(
    model_dir: Path, tmp_path: Path, spawn: Callable[..., PopenSpawn]
) -> None:
    first = spawn(model_dir)
    ask(first, "What is the capital of France?")
    assert "[saved 2 messages" in ask(first, "/save talk.json")
    first.sendline("/exit")
    first.expect(pexpect.EOF)

    second = spawn(model_dir, "--resume", str(tmp_path / "talk.json"))
    assert "[resumed 2 messages" in str(second.before)
    # "its" tower is only Paris's when the resumed first turn is there (test_session has the control)
    assert "Paris" in ask(second, "And what is its most famous tower?")
    second.sendline("/exit")
    second.expect(pexpect.EOF)
