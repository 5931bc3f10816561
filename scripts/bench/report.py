"""What the side-by-side benchmarks share: machine readings, fresh-process runs, BENCHMARKS.md sections."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "BENCHMARKS.md"
BUILD = ROOT / "build"
WORKERS = ROOT / "scripts" / "bench" / "bench_workers.py"  # the other engines, each in its own venv
# What every side-by-side run asks, and how long an answer it generates (eos ignored).
QUESTION = "Write a short story about a lighthouse keeper."
NEW_TOKENS = 128


def cpu_busy(seconds: float = 0.5) -> float:
    """Share of CPU time spent busy over a short window (all cores)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_for_idle(limit: float = 20.0) -> float:
    """Wait (up to `limit` s) for the machine to be idle; return the busy share last seen."""
    deadline = time.monotonic() + limit
    busy = cpu_busy()
    while busy > 0.15 and time.monotonic() < deadline:
        busy = cpu_busy()
    return busy


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# The flags that decide OpenVINO's CPU kernels (int4 unpacking, bf16 by default, AMX matmuls).
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [flag for flag in KERNEL_FLAGS if flag in present]
    return []


def machine() -> str:
    return f"{cpu_model()} ({' '.join(cpu_flags()) or 'no AVX2'}), {os.cpu_count()} cores"


def memory_bandwidth_gbs() -> float:
    """Copy bandwidth (read + write) of 256 MB arrays, best of 5: an upper bound for decode."""
    source = np.ones(64 * 1024 * 1024, dtype=np.float32)
    target = np.empty_like(source)
    best = min(_timed_copy(source, target) for _ in range(5))
    return 2 * source.nbytes / best / 1e9


def _timed_copy(source: np.ndarray, target: np.ndarray) -> float:
    started = time.perf_counter()
    np.copyto(target, source)
    return time.perf_counter() - started


def env_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def median_spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def cell(values: list[float]) -> str:
    """Median (min–max), with as many decimals as the size of the figure deserves."""
    m, lo, hi = median_spread(values)
    if m >= 100:
        return f"{m:.0f} ({lo:.0f}–{hi:.0f})"
    return f"{m:.2f} ({lo:.2f}–{hi:.2f})"


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


def replace_section(name: str, text: str, path: Path = BENCHMARKS) -> None:
    """Rewrite the part of BENCHMARKS.md between `<!-- name: start -->` and `<!-- name: end -->`."""
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in current and end in current:
        head, rest = current.split(start, 1)
        current = head + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    path.write_text(current)
