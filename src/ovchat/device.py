"""DeviceConfig: where and how OpenVINO compiles the model, checked in plain words."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ovchat.contract import compiled_cache_home
from ovchat.errors import DeviceError

PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
PRECISIONS = ("bf16", "f16", "f32")
ATTENTION_BACKENDS = ("SDPA", "PA")
# Devices that take a list of other devices after a colon, e.g. AUTO:GPU,CPU.
META_DEVICES = ("AUTO", "HETERO", "MULTI", "BATCH")


@dataclass(frozen=True)
class DeviceConfig:
    """Where and how OpenVINO compiles the model."""

    device: str = "CPU"
    performance_hint: str = "LATENCY"
    num_streams: int | None = None
    cache_dir: str | None = None  # None: compiled_cache_home(); "": no cache
    attention_backend: str | None = None  # None: GenAI's default (paged attention)
    inference_precision: str | None = None  # None: what the model's build verified, else the device's

    def __post_init__(self) -> None:
        if self.performance_hint not in PERFORMANCE_HINTS:
            raise DeviceError(f"performance hint must be one of {', '.join(PERFORMANCE_HINTS)}")
        if self.num_streams is not None and self.num_streams < 1:
            raise DeviceError("number of streams must be at least 1")
        if self.attention_backend not in (None, *ATTENTION_BACKENDS):
            raise DeviceError(f"attention backend must be one of {', '.join(ATTENTION_BACKENDS)}")
        if self.inference_precision not in (None, *PRECISIONS):
            raise DeviceError(f"inference precision must be one of {', '.join(PRECISIONS)}")

    @property
    def compiled_cache(self) -> str:
        """The compiled-model cache folder OpenVINO uses ("" when there is none)."""
        return str(compiled_cache_home()) if self.cache_dir is None else self.cache_dir

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
        paged = self.paged_attention if paged is None else paged
        # GenAI compiles a paged-attention model from memory, and OpenVINO then hashes all its
        # weights to look it up in the cache. On the CPU that costs more than compiling saves
        # (measured load from the cache against no cache: 2.9 s vs 1.6 s at 1.1 B, 2.1-2.3 s vs
        # 2.0 s at 135 M), so the cache is for SDPA (`ask`: 0.44 s vs 1.65 s) and other devices.
        if self.compiled_cache and (self.device.upper() != "CPU" or not paged):
            props["CACHE_DIR"] = self.compiled_cache
        if self.attention_backend:
            props["ATTENTION_BACKEND"] = self.attention_backend
        return props


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
