"""DeviceConfig: where and how OpenVINO compiles the model, checked in plain words."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ovchat.errors import DeviceError
from ovchat.model.contract import compiled_cache_home

PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
PRECISIONS = ("bf16", "f16", "f32")
ATTENTION_BACKENDS = ("SDPA", "PA")
# Devices that take a list of other devices after a colon, e.g. AUTO:GPU,CPU.
META_DEVICES = ("AUTO", "HETERO", "MULTI", "BATCH")
# Prompt-lookup decoding: each step proposes up to this many tokens that followed the last
# n-gram (of at most PROMPT_LOOKUP_NGRAM tokens) where it occurs earlier in the prompt or answer,
# and the model checks them all in that one step (scripts/bench/bench_lookup.py chose the values).
PROMPT_LOOKUP_TOKENS = 5
PROMPT_LOOKUP_NGRAM = 3


@dataclass(frozen=True)
class DeviceConfig:
    """Where and how OpenVINO compiles the model."""

    # The values each setting takes (the CLI offers them as choices).
    PERFORMANCE_HINTS: ClassVar[tuple[str, ...]] = PERFORMANCE_HINTS
    PRECISIONS: ClassVar[tuple[str, ...]] = PRECISIONS
    ATTENTION_BACKENDS: ClassVar[tuple[str, ...]] = ATTENTION_BACKENDS

    device: str = "CPU"
    performance_hint: str = "LATENCY"
    num_streams: int | None = None
    threads: int | None = None  # None: the cgroup's CPU quota if it allows fewer, else OpenVINO's choice
    cache_dir: str | None = None  # None: compiled_cache_home(); "": no cache
    attention_backend: str | None = None  # None: GenAI's default (paged attention)
    inference_precision: str | None = None  # None: what the model's build verified, else the device's
    prompt_lookup: bool = False  # prompt-lookup decoding (paged attention only)

    def __post_init__(self) -> None:
        if self.performance_hint not in PERFORMANCE_HINTS:
            raise DeviceError(f"performance hint must be one of {', '.join(PERFORMANCE_HINTS)}")
        if self.num_streams is not None and self.num_streams < 1:
            raise DeviceError("number of streams must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise DeviceError("number of threads must be at least 1")
        if self.attention_backend not in (None, *ATTENTION_BACKENDS):
            raise DeviceError(f"attention backend must be one of {', '.join(ATTENTION_BACKENDS)}")
        if self.inference_precision not in (None, *PRECISIONS):
            raise DeviceError(f"inference precision must be one of {', '.join(PRECISIONS)}")
        if self.prompt_lookup and self.attention_backend == "SDPA":
            raise DeviceError("prompt lookup runs on paged attention only: drop the SDPA attention backend")

    @property
    def compiled_cache(self) -> str:
        """The compiled-model cache folder OpenVINO uses ("" when there is none)."""
        return str(compiled_cache_home()) if self.cache_dir is None else self.cache_dir

    @property
    def cpu_threads(self) -> int | None:
        """The CPU inference threads: `threads` if set, else the cgroup CPU quota when it allows
        fewer CPUs than this process may run on; None leaves it to OpenVINO (about one per usable core)."""
        return self.threads if self.threads is not None else quota_threads()

    @property
    def paged_attention(self) -> bool:
        """Whether LLMPipeline runs paged attention (GenAI's default; ContinuousBatchingPipeline: always)."""
        return self.attention_backend != "SDPA"

    def properties(
        self, verified: Mapping[str, str] | None = None, paged: bool | None = None
    ) -> dict[str, Any]:
        """The OpenVINO properties for LLMPipeline (keyword arguments) or ContinuousBatchingPipeline.

        `verified`: the CPU properties the model's build measured its fidelity with (manifest's
        `runtime`); they apply on the CPU unless these settings say otherwise. `paged`: whether the
        pipeline runs paged attention (default: as `attention_backend` says)."""
        props: dict[str, Any] = {"PERFORMANCE_HINT": self.performance_hint}
        if verified and self.device.upper() == "CPU":
            props.update(verified)
        if self.inference_precision:
            props["INFERENCE_PRECISION_HINT"] = self.inference_precision
        if self.num_streams is not None:
            props["NUM_STREAMS"] = self.num_streams
        if self.cpu_threads is not None and self.device.upper() == "CPU":
            props["INFERENCE_NUM_THREADS"] = self.cpu_threads
        paged = self.paged_attention if paged is None else paged
        # GenAI compiles a paged-attention model from memory, and OpenVINO then hashes all its
        # weights to look it up in the cache. On the CPU that costs more than compiling saves
        # (measured load from the cache against no cache: 2.9 s vs 1.6 s at 1.1 B, 2.1-2.3 s vs
        # 2.0 s at 135 M), so the cache is for SDPA (`ask`: 0.44 s vs 1.65 s) and other devices.
        # Naming the blob (CACHE_BLOB_ID) skips the hashing, but OpenVINO 2026.4.1's CPU plugin cannot
        # import a paged model's blob (scripts/bench/probes/pa_cache_probe.py): it compiles again anyway.
        if self.compiled_cache and (self.device.upper() != "CPU" or not paged):
            props["CACHE_DIR"] = self.compiled_cache
        if self.attention_backend:
            props["ATTENTION_BACKEND"] = self.attention_backend
        if self.prompt_lookup:
            props["prompt_lookup"] = True
        return props

    def assisted(self, config: Any) -> Any:
        """`config` (a GenerationConfig) with what prompt lookup needs in every request, if it is on."""
        if self.prompt_lookup:
            config.num_assistant_tokens = PROMPT_LOOKUP_TOKENS
            config.max_ngram_size = PROMPT_LOOKUP_NGRAM
        return config


def check_device(config: DeviceConfig) -> None:
    """Fail with a plain message if the device is not on this machine.

    Listing the devices costs ~50 ms (a second ov.Core), so open_model() only does it to
    explain a failed load, and the server before it starts loading.
    """
    import openvino as ov

    available = ov.Core().available_devices
    head, _, tail = config.device.upper().partition(":")
    wanted = tail.split(",") if head in META_DEVICES and tail else ([] if head in META_DEVICES else [head])
    for device in wanted:
        if not any(d == device or d.split(".")[0] == device for d in available):
            raise DeviceError(
                f"device '{device}' is not available on this machine (available: {', '.join(available)})"
            )


# A container's CPU limit (docker --cpus, a Kubernetes limit, systemd CPUQuota) is a CFS quota:
# the process still sees every core of the machine, and OpenVINO sizes its thread pool by them
# (openvinotoolkit/openvino#37838). More threads than the quota allows stall each other on
# throttling, so without --threads ovchat asks for as many threads as the quota allows.
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_quota(root: Path = CGROUP_ROOT, cgroup: str | None = None) -> int | None:
    """The CPUs the CFS quota of this process's cgroup and its parents allows (rounded up), or None
    when there is none. cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us`)."""
    if cgroup is None:
        cgroup = own_cgroup()
    limits: list[float] = []
    # v2: this process's cgroup (inside a container, the namespace's root) and every parent.
    folder = root / cgroup.lstrip("/")
    for place in (folder, *folder.parents):
        limits += _v2_limit(place / "cpu.max")
        if place == root:
            break
    for v1 in ("cpu", "cpu,cpuacct"):  # v1: the hierarchy's root as mounted here
        limits += _v1_limit(root / v1)
    return math.ceil(min(limits)) if limits else None


def own_cgroup() -> str:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return "/"
    return next((line[3:] for line in lines if line.startswith("0::")), "/")


def _v2_limit(path: Path) -> list[float]:
    try:
        quota, period = path.read_text().split()[:2]
        return [] if quota == "max" else [int(quota) / int(period)]
    except (OSError, ValueError):
        return []


def _v1_limit(folder: Path) -> list[float]:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return []
    return [quota / period] if quota > 0 and period > 0 else []


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a cpuset, taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


@functools.cache
def quota_threads() -> int | None:
    """Threads for a CPU quota smaller than the usable CPUs; None when there is no such quota."""
    quota = cpu_quota()
    return max(1, quota) if quota is not None and quota < usable_cpus() else None


def describe_threads(config: DeviceConfig | None = None) -> str:
    """How many CPU threads inference uses, and why, in words."""
    config = config or DeviceConfig()
    if config.threads is not None:
        return f"{config.threads} (--threads)"
    if config.cpu_threads is not None:
        return f"{config.cpu_threads} (the CPU quota of this container or cgroup; --threads to change)"
    return f"OpenVINO's choice (this process may run on {usable_cpus()} CPUs; --threads to change)"
