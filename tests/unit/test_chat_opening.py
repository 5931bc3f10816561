"""`ovchat chat` shows its prompt before the model has loaded (ovchat.cli.opening), on a fake model.

The real model's chat in a real terminal is tests/test_repl.py's.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable

import pytest
from fake_model import fake_model, typed_lines

from ovchat.chat.session import ChatSession
from ovchat.cli.opening import Opening
from ovchat.cli.repl import Repl
from ovchat.errors import ModelError
from ovchat.options import GenerationOptions

WAIT_S = 10.0  # far longer than any step here takes; a test that needs it has failed


def opening(open_session: Callable[[], ChatSession]) -> Opening:
    model = fake_model()
    return Opening(model.files, model.device, open_session)


def test_a_message_sent_while_the_model_loads_waits_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded, prompted = threading.Event(), threading.Event()

    def open_session() -> ChatSession:
        assert loaded.wait(WAIT_S)  # the model "loads" until the first message is typed
        return ChatSession(fake_model(), GenerationOptions())

    def typed() -> None:
        threading.Timer(0.05, loaded.set).start()  # the load ends while the message waits
        prompted.set()

    out = io.StringIO()
    monkeypatch.setattr("builtins.input", typed_lines(out, "hello there", each=typed))
    Repl(opening(open_session), out).run()
    text = out.getvalue()
    assert prompted.is_set()
    assert text.index(">>> ") < text.index("(loading the model…)") < text.index("echo: hello there")


def test_a_failed_load_is_reported_while_the_user_is_still_typing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI's on_failure ends the process there (cli.exit_on_failure; test_repl.py has it for real).
    failures: list[Exception] = []
    failed = threading.Event()

    def open_session() -> ChatSession:
        time.sleep(0.1)  # the prompt is up and waiting for a line by then
        raise ModelError("cannot load the model at /models/fake-model: broken")

    def on_failure(exc: Exception) -> None:
        failures.append(exc)
        failed.set()

    seen: list[bool] = []

    def typing(prompt: str = "") -> str:
        seen.append(failed.wait(WAIT_S))  # a person who has not pressed Enter
        raise EOFError

    monkeypatch.setattr("builtins.input", typing)
    model = fake_model()
    out = io.StringIO()
    Repl(Opening(model.files, model.device, open_session, on_failure), out).run()
    assert seen == [True] and [str(e) for e in failures] == [
        "cannot load the model at /models/fake-model: broken"
    ]
    assert out.getvalue().startswith("ovchat: fake-model on CPU")  # the banner came first


def test_a_message_waiting_for_a_load_that_fails_ends_the_chat_with_the_error_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def open_session() -> ChatSession:
        time.sleep(0.1)  # the message is typed by then, and waits
        raise ModelError("cannot load the model at /models/fake-model: broken")

    out = io.StringIO()
    monkeypatch.setattr("builtins.input", typed_lines(out, "hello there", "/help"))
    with pytest.raises(ModelError, match="broken"):
        Repl(opening(open_session), out).run()
    assert "(loading the model…)" in out.getvalue()
    assert "error:" not in out.getvalue()  # said once, as the chat's exit error, not also as a REPL line
    assert "/help for commands" in out.getvalue() and "Ctrl-D or /exit quits" not in out.getvalue()


def test_quitting_before_the_model_has_loaded_waits_for_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    # Python must not shut down while OpenVINO still runs on the opening's thread.
    finished = threading.Event()

    def open_session() -> ChatSession:
        time.sleep(0.2)
        finished.set()
        return ChatSession(fake_model(), GenerationOptions())

    def ctrl_d(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", ctrl_d)
    Repl(opening(open_session), io.StringIO()).run()
    assert finished.is_set()
    assert not [t for t in threading.enumerate() if t.name == "ovchat-open"]
