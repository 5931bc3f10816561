"""The machine a benchmark runs on: its CPU, how busy it is, its memory bandwidth, an env's size."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

# The flags that decide OpenVINO's CPU kernels (int4 unpacking, bf16 by default, AMX matmuls).
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile")


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


def cpu_flags() -> list[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [flag for flag in KERNEL_FLAGS if flag in present]
    return []


def machine() -> str:
    """The CPU, its kernel-deciding flags and its cores: how every report names its machine."""
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
    """What an installed environment takes on disk (symlinks not followed)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6
