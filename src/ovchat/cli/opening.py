"""The chat session, opened and warmed up on a thread while the user types the first message.

`ovchat chat` shows its prompt as soon as the model's files are checked; the model loads, and
then pays OpenVINO's one-time set-up (model.warm_up_pipeline), behind it. A message sent before
then waits for the load. A load that fails is handed to `on_failure` on the opening's thread: the
CLI ends the process there with the error's one line, even while the user is typing: a line that
input() is reading cannot be interrupted otherwise (a SIGINT the opening sent to its own process
was followed by a SIGSEGV once in the test suite). Without `on_failure` the REPL raises the error
at its next step.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ovchat import ChatSession, DeviceConfig, ModelFiles


class Opening:
    """A ChatSession that `open_session` makes on a thread started by start(); session() waits."""

    def __init__(
        self,
        files: ModelFiles,
        device: DeviceConfig,
        open_session: Callable[[], ChatSession],
        on_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        self.files, self.device = files, device
        self._open, self._on_failure = open_session, on_failure
        self._session: ChatSession | None = None
        self.error: Exception | None = None  # why the model could not be opened
        self._ready = threading.Event()  # a session or an error
        self._stop = threading.Event()  # quitting: cut the warm-up short
        self._done = threading.Event()  # the thread has ended
        self._thread = threading.Thread(target=self._run, name="ovchat-open", daemon=True)

    @classmethod
    def of(cls, session: ChatSession) -> Opening:
        """An opening for a session already made (its warm-up still runs on the thread)."""
        return cls(session.model.files, session.model.device, lambda: session)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            try:
                self._session = self._open()
            except Exception as exc:
                self.error = exc
                if self._on_failure is not None:
                    self._on_failure(exc)  # before the REPL can see it: one report, not two
                self._ready.set()
                return
            self._ready.set()
            with contextlib.suppress(Exception):  # only a head start: the first answer reports it clearly
                self._session.warm_up(self._stop)
        finally:
            self._done.set()

    def session(self, waiting: Callable[[], None] | None = None) -> ChatSession:
        """The session, once opened (`waiting` is called first if it is not yet); raises the load's error."""
        if not self._ready.is_set() and waiting is not None:
            waiting()
        while not self._ready.wait(0.05):  # short waits: a Ctrl-C still gets through
            pass
        self.raise_error()
        assert self._session is not None
        return self._session

    def raise_error(self) -> None:
        if self.error is not None and self._ready.is_set():
            raise self.error

    def close(self) -> None:
        """Stop the warm-up and wait for the thread: Python must not shut down while OpenVINO still
        runs on it (a quick Ctrl-D then aborts or crashes the process: seen SIGABRT, SIGSEGV)."""
        self._stop.set()
        if not self._thread.is_alive():
            return
        while not self._done.is_set():  # our own Event, not join(): a Ctrl-C in join() can break it
            with contextlib.suppress(KeyboardInterrupt):
                self._done.wait(0.05)
        self._thread.join(1.0)  # past its last line: this returns at once
