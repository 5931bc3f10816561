"""DeviceConfig → OpenVINO properties: the verified precision, and where the compiled-model cache pays."""

from __future__ import annotations

import pytest

from ovchat.device import DeviceConfig
from ovchat.errors import DeviceError

F32 = {"INFERENCE_PRECISION_HINT": "f32"}


def test_the_builds_verified_precision_applies_on_the_cpu_unless_asked_otherwise() -> None:
    assert DeviceConfig().properties(F32)["INFERENCE_PRECISION_HINT"] == "f32"
    assert DeviceConfig(inference_precision="bf16").properties(F32)["INFERENCE_PRECISION_HINT"] == "bf16"
    assert "INFERENCE_PRECISION_HINT" not in DeviceConfig(device="GPU").properties(F32)


def test_the_compiled_model_cache_is_for_sdpa_and_other_devices_not_paged_attention_on_the_cpu() -> None:
    cache = "/tmp/ovchat-cache"
    assert DeviceConfig(cache_dir=cache, attention_backend="SDPA").properties()["CACHE_DIR"] == cache
    # GenAI compiles paged attention from memory: looking it up costs more than compiling on the CPU.
    assert "CACHE_DIR" not in DeviceConfig(cache_dir=cache).properties()  # GenAI's default: paged
    assert "CACHE_DIR" not in DeviceConfig(cache_dir=cache, attention_backend="SDPA").properties(paged=True)
    assert DeviceConfig(device="GPU", cache_dir=cache).properties()["CACHE_DIR"] == cache
    assert "CACHE_DIR" not in DeviceConfig(cache_dir="", attention_backend="SDPA").properties()


@pytest.mark.parametrize(
    "settings",
    [
        {"performance_hint": "FAST"},
        {"num_streams": 0},
        {"attention_backend": "X"},
        {"inference_precision": "f8"},
    ],
)
def test_bad_settings_are_refused_in_plain_words(settings: dict[str, object]) -> None:
    with pytest.raises(DeviceError, match="must be"):
        DeviceConfig(**settings)  # type: ignore[arg-type]
