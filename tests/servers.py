"""Start and stop real `ovchat serve` processes on loopback for the end-to-end tests.

The start itself (a free port, /health, another port when one was taken meanwhile) is the bench
harness's, scripts/bench/lib (pytest's pythonpath has scripts/bench).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import OVCHAT
from lib.ports import free_port
from lib.server import ServerStartError, ovchat_serve, start_on_free_port

__all__ = ["OVCHAT", "STARTUP_SECONDS", "Server", "free_port", "start_server"]  # what tests import

STARTUP_SECONDS = 120


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    key: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def metric(self, name: str, **labels: str) -> float:
        """A sample of /metrics, summed over the labels not given (every model's, say); a series that
        is not there fails the test (no silent 0)."""
        text = httpx.get(f"{self.base}/metrics", headers=self.headers()).text
        found = [
            float(sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        ]
        if not found:
            raise AssertionError(f"{name}{labels or ''} is not in /metrics")
        return sum(found)

    def metric_or_zero(self, name: str, **labels: str) -> float:
        """A counter sample that may not exist yet (prometheus_client adds labelled series on first use)."""
        try:
            return self.metric(name, **labels)
        except AssertionError:
            return 0.0

    def wait_idle(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric("ovchat_requests_running") == 0 and self.metric("ovchat_requests_queued") == 0:
                return
            time.sleep(0.05)
        raise AssertionError("requests were still running")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()


def start_server(
    model: Path, *extra: str, key: str | None = None, env: dict[str, str] | None = None
) -> Server:
    """`ovchat serve` on a free loopback port, returned once /health says ready."""
    args = ["--model", str(model), *extra, *(["--api-key", key] if key else [])]
    try:
        started = start_on_free_port(
            lambda port: ovchat_serve(port, *args),
            what="the server",
            timeout=STARTUP_SECONDS,
            env={**os.environ, "OVCHAT_API_KEY": "", **(env or {})},
        )
    except ServerStartError as error:
        pytest.fail(str(error))
    return Server(started.process, started.url, key)
