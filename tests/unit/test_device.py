"""DeviceConfig → OpenVINO properties: the verified precision, and where the compiled-model cache pays."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovchat.errors import DeviceError
from ovchat.model import device
from ovchat.model.device import DeviceConfig, cpu_quota, describe_threads

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


def test_threads_and_streams_become_the_cpu_plugins_properties_only_when_asked_for() -> None:
    props = DeviceConfig(threads=1, num_streams=2).properties()
    assert props["INFERENCE_NUM_THREADS"] == 1 and props["NUM_STREAMS"] == 2


def test_without_threads_a_cpu_quota_smaller_than_the_machine_sets_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(device, "quota_threads", lambda: None)
    assert not {"INFERENCE_NUM_THREADS", "NUM_STREAMS"} & DeviceConfig().properties().keys()
    assert describe_threads().startswith("OpenVINO's choice")
    monkeypatch.setattr(device, "quota_threads", lambda: 3)
    assert DeviceConfig().properties()["INFERENCE_NUM_THREADS"] == 3
    assert DeviceConfig(threads=5).properties()["INFERENCE_NUM_THREADS"] == 5
    assert "INFERENCE_NUM_THREADS" not in DeviceConfig(device="GPU").properties()
    assert describe_threads().startswith("3 (the CPU quota")
    assert describe_threads(DeviceConfig(threads=5)) == "5 (--threads)"


def test_the_cpu_quota_is_read_from_cgroup_v2_and_its_parents_or_v1(tmp_path: Path) -> None:
    leaf = tmp_path / "kubepods.slice" / "pod1"
    leaf.mkdir(parents=True)
    assert cpu_quota(tmp_path, "/kubepods.slice/pod1") is None  # no files: no quota
    (leaf / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path, "/kubepods.slice/pod1") is None  # "max": unlimited
    (leaf / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: two threads
    assert cpu_quota(tmp_path, "/kubepods.slice/pod1") == 2
    (tmp_path / "kubepods.slice" / "cpu.max").write_text("50000 100000\n")  # a parent allows less
    assert cpu_quota(tmp_path, "/kubepods.slice/pod1") == 1
    (tmp_path / "kubepods.slice" / "cpu.max").write_text("garbage")  # unreadable: ignored
    assert cpu_quota(tmp_path, "/kubepods.slice/pod1") == 2
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(v1, "/") is None
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("300000\n")
    assert cpu_quota(v1, "/") == 3


@pytest.mark.parametrize(
    "settings",
    [
        {"performance_hint": "FAST"},
        {"num_streams": 0},
        {"threads": 0},
        {"attention_backend": "X"},
        {"inference_precision": "f8"},
    ],
)
def test_bad_settings_are_refused_in_plain_words(settings: dict[str, object]) -> None:
    with pytest.raises(DeviceError, match="must be"):
        DeviceConfig(**settings)  # type: ignore[arg-type]
