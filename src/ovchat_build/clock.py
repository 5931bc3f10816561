"""A line per build step with its elapsed time; the times go into the manifest."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class StepClock:
    """Times the build's steps (a step run twice, as fidelity at two precisions, adds up)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str, what: str) -> Iterator[None]:
        print(f"[build] {what}", flush=True)
        began = time.monotonic()
        yield
        took = time.monotonic() - began
        self.seconds[name] = round(self.seconds.get(name, 0.0) + took, 1)
        print(f"[build] {name}: {took:.1f} s (build {time.monotonic() - self.started:.1f} s)", flush=True)


CLOCK = StepClock()
