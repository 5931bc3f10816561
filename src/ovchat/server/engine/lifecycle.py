"""The engine's lifecycle: one state machine that the engine thread moves, the queue asks before it
takes work, and /health, /live and the metrics read.

    LOADING ──loaded──> READY ──step failed──> RECOVERING ──rebuilt──> READY
       │                  │                        │
       │               drain()                 drain() (serves on once rebuilt, refusing new work)
       │                  v                        v
       └──drain()──> DRAINING ──idle, or close()'s timeout: abort──> STOPPED
    any state ──gave up (load failed, too many failed steps)──> FAILED

Beside the state, `leaving` is the drain delay after SIGTERM: the replica still takes requests but
/health says "draining", so a load balancer takes it out before it stops listening. Every change
happens under `wake`, the condition the engine thread sleeps on (the queue's), so a change wakes it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ovchat.compat import StrEnum
from ovchat.errors import Unavailable


class EngineState(StrEnum):
    LOADING = "loading"
    READY = "ready"
    RECOVERING = "recovering"  # rebuilding the pipeline after a failed step
    DRAINING = "draining"  # refusing new requests, finishing the running ones
    FAILED = "failed"  # gave up: the server exits
    STOPPED = "stopped"


@dataclass(frozen=True)
class Health:
    """What /health answers: ready (200) or not (503), and the status word."""

    ready: bool
    status: str


class Lifecycle:
    """Where the engine is, and whether it takes new work."""

    def __init__(self, wake: threading.Condition | None = None) -> None:
        self.wake = wake or threading.Condition()
        self.state = EngineState.LOADING
        self.error: str | None = None  # why it failed
        self.leaving = False  # SIGTERM's drain delay: /health says draining, requests are still served
        self.stopping = False  # no new work; the engine thread ends once idle
        self.aborting = False  # and what is left is cancelled (close()'s timeout passed)

    # --- read by the HTTP side ------------------------------------------------------------------

    def health(self) -> Health:
        """200 only while new requests are taken and no drain has begun."""
        with self.wake:
            if self.state == EngineState.READY and not self.leaving and not self.stopping:
                return Health(True, "ok")
            status = EngineState.DRAINING if self.state == EngineState.READY else self.state
            return Health(False, str(status))

    @property
    def alive(self) -> bool:
        """False once the engine has given up (the process is on its way out)."""
        return self.state != EngineState.FAILED

    def check_accepting(self) -> None:
        """Unavailable unless new work is taken now (call holding `wake`)."""
        if self.stopping:
            raise Unavailable("the server is shutting down: retry on another replica", "shutting_down")
        if self.state == EngineState.LOADING:
            raise Unavailable("the model is still loading: retry shortly", "model_not_ready")
        if self.state in (EngineState.FAILED, EngineState.STOPPED):
            raise Unavailable("the model is not available", "model_not_ready")

    def settle(self) -> EngineState:
        """Wait until the first load has ended (ready, or failed) and say which."""
        with self.wake:
            self.wake.wait_for(lambda: self.state != EngineState.LOADING)
            return self.state

    # --- moved by SIGTERM and shutdown ------------------------------------------------------------

    def leave(self) -> None:
        """SIGTERM with a drain delay: /health turns 503 while requests are still served."""
        with self.wake:
            self.leaving = True

    def drain(self) -> None:
        """Refuse new work from now on; the running work finishes."""
        with self.wake:
            self.stopping = True
            if self.state == EngineState.READY:
                self.state = EngineState.DRAINING
            self.wake.notify_all()

    def abort(self) -> None:
        """Cancel whatever is still running or waiting (the shutdown's time is up)."""
        with self.wake:
            self.aborting = True
            self.wake.notify_all()

    def stopped(self) -> None:
        with self.wake:
            if self.state != EngineState.FAILED:
                self.state = EngineState.STOPPED

    def close(self, thread: threading.Thread, timeout: float) -> None:
        """Stop the thread this lifecycle's work runs on: refuse new work, let it finish for up to
        `timeout` s, then abort what is left (an engine's and an encoder runner's close)."""
        self.drain()
        if thread.is_alive():
            thread.join(timeout)
        if thread.is_alive():
            self.abort()
            thread.join()
        self.stopped()

    # --- moved by the engine thread ---------------------------------------------------------------

    def loaded(self) -> None:
        """The pipeline is (re)built: ready, or draining if a drain began meanwhile."""
        with self.wake:
            self.state = EngineState.DRAINING if self.stopping else EngineState.READY
            self.wake.notify_all()

    def recovering(self) -> None:
        with self.wake:
            self.state = EngineState.RECOVERING

    def failed(self, message: str) -> None:
        with self.wake:
            self.state, self.error = EngineState.FAILED, message
            self.wake.notify_all()
