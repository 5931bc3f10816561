"""Generating while Ctrl-C stays with the user: the work runs on a thread, the main thread waits."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_interruptibly(work: Callable[[], T], cancel: threading.Event) -> T:
    """Run `work` on a worker thread; Ctrl-C sets `cancel` and waits for it to wind down.

    GenAI swallows a KeyboardInterrupt raised inside its streamer callback, so the main thread
    catches it instead and the streamer returns STOP once it sees `cancel`.
    """
    outcome: dict[str, object] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # re-raised on the main thread
            outcome["error"] = exc
        finally:
            done.set()

    # Wait on our own Event, not Thread.join(): on CPython 3.11 a Ctrl-C that lands inside
    # join() can mark the still-running thread as stopped, and is_alive() then lies.
    threading.Thread(target=target, name="ovchat-generate", daemon=True).start()
    while not done.is_set():
        try:
            done.wait(0.05)
        except KeyboardInterrupt:
            cancel.set()  # the streamer returns STOP at its next piece
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
