"""One measurement in a fresh process: its times and its own peak RSS (wait4), not the driver's."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time


def first_token_run(command: list[str], marker: bytes | None) -> dict[str, float]:
    """Process start → first output (or `marker`) → exit, and the process's peak RSS (wait4).

    A child's ru_maxrss is taken at its exit as max(high-water mark, RSS then): unlike a running
    process's own ru_maxrss it cannot trail, but it includes the driver's RSS at fork.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    seen, first = b"", None
    while chunk := os.read(proc.stdout.fileno(), 4096):
        seen += chunk
        if first is None and (marker is None or marker in seen):
            first = time.perf_counter() - started
    _, status, usage = os.wait4(proc.pid, 0)
    done = time.perf_counter() - started
    if status != 0 or first is None:
        raise RuntimeError(f"{command[0]} failed (status {status})")
    return {"first_token_s": first, "done_s": done, "peak_rss_mb": usage.ru_maxrss / 1024}


def output_run(command: list[str]) -> tuple[str, float]:
    """Run to the end; its stdout and its peak RSS in MB (wait4, not the driver's own)."""
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if status != 0:
            errors.seek(0)
            raise RuntimeError(f"{command[0]} failed: {errors.read().decode(errors='replace')[-1000:]}")
    return out.decode(), usage.ru_maxrss / 1024
