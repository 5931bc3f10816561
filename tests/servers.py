"""Start and stop real `ovchat serve` processes on loopback for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import OVCHAT

STARTUP_SECONDS = 120


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    key: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics; a series that is not there fails the test (no silent 0)."""
        text = httpx.get(f"{self.base}/metrics", headers=self.headers()).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        raise AssertionError(f"{name}{labels or ''} is not in /metrics")

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    model: Path, *extra: str, key: str | None = None, env: dict[str, str] | None = None
) -> Server:
    """`ovchat serve` on a free loopback port, returned once /health says ready.

    A port taken between free_port() and the server's bind makes it exit: then another is tried."""
    for _ in range(3):
        port = free_port()
        args = [
            str(OVCHAT),
            "serve",
            "--model",
            str(model),
            "--port",
            str(port),
            "--log-level",
            "warning",
            *extra,
        ]
        if key:
            args += ["--api-key", key]
        process = subprocess.Popen(args, env={**os.environ, "OVCHAT_API_KEY": "", **(env or {})})
        server = Server(process, f"http://127.0.0.1:{port}", key)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{server.base}/health").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            pytest.fail("the server did not become ready")
    pytest.fail("the server exited at start three times")
