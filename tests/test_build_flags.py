"""What each build flag turns into: the optimum-cli command a build runs, and the gate it applies.

The plan is worked out by the build itself (in the build env, where it runs) for a local
checkpoint folder; nothing is exported here. The exports these commands make are tested in
test_build.py and test_fidelity.py.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from conftest import BUILD_PYTHON

PLAN = """
import json, sys
from pathlib import Path
from ovchat_build.command import parse_args
from ovchat_build.errors import BuildError
from ovchat_build.export.optimum import export_command
from ovchat_build.export.plan import make_plan
from ovchat_build.source.resolve import Source
results = []
for argv in json.loads(sys.argv[1]):
    args = parse_args([sys.argv[2], *argv])
    try:
        plan = make_plan(args, Source("hf-folder", sys.argv[2], None))
    except BuildError as exc:
        results.append({"error": str(exc)})
        continue
    command = export_command(Path("SRC"), Path("OUT"), plan.flags)
    results.append({"profile": plan.profile, "command": command[5:-1], "force": args.force,
                    "min_agreement": args.min_agreement, "skip_fidelity": args.skip_fidelity})
print(json.dumps(results))
"""

CARD = ["--task", "text-generation-with-past", "--weight-format", "int4", "--group-size", "128"]
CARD += ["--ratio", "0.6", "--group-size-fallback", "adjust", "--sym"]


def plans(*argvs: list[str]) -> list[dict[str, Any]]:
    if not BUILD_PYTHON.exists():
        pytest.fail("the build env is missing: run `make build-env` (make test does)")
    result = subprocess.run(
        [str(BUILD_PYTHON), "-c", PLAN, json.dumps(argvs), "some/folder"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


def test_profiles_and_flags_become_the_export_command() -> None:
    default, reference, tuned, remote, int8, data_aware, gguf = plans(
        [],
        ["--profile", "reference"],
        ["--ratio", "0.8", "--no-sym", "--group-size", "64", "--group-size-fallback", "error"],
        ["--profile", "reference", "--trust-remote-code", "--task", "text-generation"],
        ["--weight-format", "int8"],
        ["--profile", "balanced", "--gptq", "--no-awq", "--num-samples", "32"],
        ["--profile", "gguf"],
    )
    # A checkpoint folder builds with the reference flags plus AWQ and scale estimation.
    assert default["profile"] == "balanced"
    assert default["command"] == [*CARD, "--dataset", "ovchat", "--awq", "--scale-estimation"]
    assert reference["command"] == CARD  # the design card's flags, exactly
    # Flags without a profile apply to the reference flags: what you name is what you get.
    assert tuned["profile"] == "reference"
    assert tuned["command"] == [
        "--task", "text-generation-with-past", "--weight-format", "int4", "--group-size", "64",
        "--ratio", "0.8", "--group-size-fallback", "error",
    ]  # fmt: skip
    assert remote["command"] == ["--task", "text-generation", *CARD[2:], "--trust-remote-code"]
    assert "--trust-remote-code" not in default["command"]
    assert int8["command"] == ["--task", "text-generation-with-past", "--weight-format", "int8", "--sym"]
    assert data_aware["command"] == [
        *CARD, "--dataset", "ovchat", "--scale-estimation", "--gptq", "--num-samples", "32",
    ]  # fmt: skip
    assert "needs a GGUF source" in gguf["error"]


def test_the_gate_is_on_at_0_85_unless_skipped_and_force_is_off() -> None:
    default, skipped, forced, stricter = plans(
        [], ["--skip-fidelity"], ["--force"], ["--min-agreement", "0.95"]
    )
    assert default["min_agreement"] == 0.85 and not default["skip_fidelity"] and not default["force"]
    assert skipped["skip_fidelity"] and forced["force"] and stricter["min_agreement"] == 0.95


FREE_SPACE = """
import shutil, sys
from collections import namedtuple
from ovchat_build.errors import BuildError
from ovchat_build.source.inputs import check_free_space
from ovchat_build.source.resolve import Source
from pathlib import Path
folder = Path(sys.argv[1])
Usage = namedtuple("Usage", "total used free")
for free in (10**12, 10**6):  # a roomy disk, then one with a megabyte left
    shutil.disk_usage = lambda path, free=free: Usage(free, 0, free)
    try:
        check_free_space(Source("hf-folder", str(folder), folder), folder)
        print("ok")
    except BuildError as exc:
        print(exc)
"""


def test_a_build_without_room_for_the_export_stops_before_it(tmp_path) -> None:
    (tmp_path / "config.json").write_text('{"torch_dtype": "bfloat16"}')
    (tmp_path / "model.safetensors").write_bytes(bytes(50_000_000))  # 25 M bf16 weights
    result = subprocess.run(
        [str(BUILD_PYTHON), "-c", FREE_SPACE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    roomy, full = result.stdout.splitlines()
    assert roomy == "ok"
    assert full.startswith("not enough free disk in ") and "the export needs about 0.1 GB there" in full
