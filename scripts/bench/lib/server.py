"""A server process (`ovchat serve`, llama-server, HAProxy) started on a free loopback port and
returned once its /health answers 200, or a ServerStartError that says why it is not.

llama-server answers 503 while it loads, so only a 200 counts as ready. A port taken between
free_port() and the server's bind makes the server exit at start: another port is then tried.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from lib.ports import free_port

OVCHAT = Path(sys.executable).with_name("ovchat")  # the command of the venv running the script
POLL_SECONDS = 0.1
ATTEMPTS = 3


class ServerStartError(RuntimeError):
    """The server exited before it was ready, or was not ready in time (then it was killed)."""


@dataclass(frozen=True)
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (the server drains and exits), then its exit code."""
        self.process.terminate()
        return self.process.wait(timeout=timeout)


def ovchat_serve(port: int, *args: str) -> list[str]:
    """`ovchat serve` on `port`, logging warnings only (no line per request), then `args`."""
    return [str(OVCHAT), "serve", "--port", str(port), "--log-level", "warning", *args]


def wait_ready(url: str, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    """Return once GET {url}/health says 200; raise if `process` exits first or `timeout` passes
    (the process is then left running: the caller decides)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise ServerStartError(f"{what} exited with {process.returncode} before it was ready")
        time.sleep(POLL_SECONDS)
    raise ServerStartError(f"{what} was not ready in {timeout:.0f} s")


def start_on_free_port(
    command: Callable[[int], list[str]],
    *,
    what: str,
    timeout: float,
    quiet: bool = False,
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """Run `command(port)` on a free port and return it once ready; a server that exits at start
    (its port taken meanwhile) is started again on another port, up to ATTEMPTS times.

    quiet: its stdout and stderr go to /dev/null (else they are the caller's).
    """
    output = subprocess.DEVNULL if quiet else None
    for _ in range(ATTEMPTS):
        port = free_port()
        process = subprocess.Popen(command(port), stdout=output, stderr=output, env=env)
        try:
            wait_ready(f"http://127.0.0.1:{port}", process, what, timeout)
        except ServerStartError:
            if process.poll() is None:  # alive but not ready: no other port would help
                process.kill()
                process.wait()
                raise
            continue
        return ServerProcess(process, f"http://127.0.0.1:{port}")
    raise ServerStartError(f"{what} exited at start {ATTEMPTS} times (last exit code {process.returncode})")
