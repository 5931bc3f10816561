"""The container image, built and run for real by scripts/deploy/image.py (`make image`), with the default
model inside: slim, torch-free, non-root, healthy, answering the openai SDK, exiting 0 on SIGTERM, and
serving every model of a folder mounted at /ovchat/models."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import pytest

from conftest import ROOT, require_programs

IMAGE_SCRIPT = ROOT / "scripts" / "deploy" / "image.py"
TAG = "localhost/ovchat:test"


def image_script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_script", IMAGE_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "image_script", module)  # dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.build
def test_the_image_is_slim_torch_free_and_serves_until_sigterm(
    model_dir: Path, embedder_dir: Path, reranker_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = image_script(monkeypatch)
    require_programs(image.PODMAN, image.MMDEBSTRAP, "/usr/sbin/runc")
    report = image.prove(model_dir, tag=TAG, encoders={"embedder": embedder_dir, "reranker": reranker_dir})
    # Start-up times are reported, never asserted (tests do not assert wall-clock times).
    print(f"\nimage report: {asdict(report)}")

    assert report.size_bytes <= 450 * 10**6, f"{report.size_bytes / 1e6:.0f} MB"
    assert report.user == "ovchat"
    # `ovchat ask` inside the cold container compiled into the volume the warm one reads.
    assert report.cold.cache_files > 0
    # The warm start is configured by environment: OVCHAT_API_KEY locks the API (the SDK sends the key).
    assert (report.cold.keyless_status, report.warm.keyless_status) == (200, 401)
    for run in (report.cold, report.warm):
        assert run.forbidden == []  # no torch, transformers or optimum importable inside
        assert run.uid != 0
        assert not run.pip and not run.wheelhouse  # nothing of the build stage came along
        assert run.healthcheck_rc == 0  # the image's own HEALTHCHECK passes once /health said 200
        assert "Paris" in run.answer  # a chat completion through the openai SDK, from the host
        assert run.exit_code == 0  # SIGTERM: drained and exited 0
    # A host folder mounted at /ovchat/models: the image's model under its name (OVCHAT_MODEL names it
    # too: served once) and a second, an embedding model and a reranker: what a retrieval app serves.
    # All listed, none loaded until named; the second answers, the encoders embed and rank.
    folder = report.models_dir
    names = (model_dir.name, image.SECOND_NAME, "embedder", "reranker")
    assert folder.before == {name: "unloaded" for name in names}
    assert "Paris" in folder.answer  # through the openai SDK, with model = the second name
    assert folder.after == {**folder.before, image.SECOND_NAME: "loaded"}
    assert folder.dimensions == 384 and sorted(folder.ranked) == [0, 1]
    assert folder.exit_code == 0
    # --cpus 1 on a machine of more CPUs: a quota the processes inside do not see as fewer cores;
    # ovchat reads it and asks OpenVINO for one thread.
    if len(os.sched_getaffinity(0)) > 1:
        assert report.threads_at_one_cpu.startswith("1 (the CPU quota"), report.threads_at_one_cpu
    assert image.problems(report) == []
