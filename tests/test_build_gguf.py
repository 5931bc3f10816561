"""GGUF files of every common type, made here by llama.cpp's own tools from the embedded model, are
built with their own grid by default; a type the IR cannot carry exactly is refused in one line.

The fixtures (scripts/dev/gguf_fixtures.sh) and the builds are cached under build/: a second run
is the gate-free fingerprint check only. `make test` makes both before pytest starts (`make
test-fixtures`, by the same commands as the fixtures below); pytest alone makes what is missing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD_PYTHON, ROOT, build_env, run_build

FIXTURES = ROOT / "build" / "fixtures" / "gguf"
MODELS = ROOT / "build" / "test-gguf" / "models"

# The block math against gguf's own dequantizer, on the fixtures' tensors of each type (K-quants
# included: gguf-py has no quantizer for them) and on random blocks through gguf's quantizer.
CHECK_BLOCKS = """
import sys
import numpy as np, gguf
from ovchat_build.gguf.blocks import LAYOUTS, unpack
seen = {}
for path in sys.argv[1:]:
    for t in gguf.GGUFReader(path).tensors:
        kind = t.tensor_type.name
        if kind in LAYOUTS and kind not in seen:
            raw = np.asarray(t.data)
            grid = unpack(kind, raw)
            ref = gguf.quants.dequantize(raw, t.tensor_type).reshape(raw.shape[0], -1)
            seen[kind] = float(np.abs(grid.weights() - ref).max() / np.abs(ref).max())
            assert grid.codes.shape[-1] == LAYOUTS[kind][1]
rng = np.random.default_rng(0)
for kind in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"):
    qtype = gguf.GGMLQuantizationType[kind]
    raw = gguf.quants.quantize(rng.normal(size=(8, 256)).astype(np.float32) * 3, qtype)
    ref = gguf.quants.dequantize(raw, qtype)
    seen[kind + " random"] = float(np.abs(unpack(kind, raw).weights() - ref).max() / np.abs(ref).max())
print(seen)
"""


def _fixtures(*types: str) -> dict[str, Path]:
    made = subprocess.run(
        [str(ROOT / "scripts" / "dev" / "gguf_fixtures.sh"), *types],
        capture_output=True,
        text=True,
        env=build_env(),
        timeout=1800,  # from nothing: the sdist download and llama.cpp's build
    )
    assert made.returncode == 0, made.stderr[-2000:]
    return {kind: FIXTURES / f"smollm2-{kind}.gguf" for kind in types}


@pytest.fixture(scope="session")
def gguf_files() -> dict[str, Path]:
    """Fixture GGUFs made once per session (and cached under build/fixtures/gguf)."""
    if not BUILD_PYTHON.exists():
        pytest.fail("the build env is missing: run `make build-env` (the README's `make test` does)")
    return _fixtures("Q8_0", "Q4_K_M", "Q4_K_S", "Q2_K")


@pytest.fixture(scope="session")
def built(gguf_files: dict[str, Path]) -> dict[str, Path]:
    """Q8_0 and the Q4_K_M mix built with their default plan, gate included, once per session."""
    folders = {}
    for kind in ("Q8_0", "Q4_K_M"):
        result = run_build(str(gguf_files[kind]), "--out-dir", str(MODELS), timeout=1800)
        assert result.returncode == 0, result.stderr[-3000:]
        folders[kind] = MODELS / f"smollm2-{kind.lower().replace('_', '-')}-gguf"
    return folders


def test_block_formats_compute_what_gguf_dequantizes(gguf_files: dict[str, Path]) -> None:
    files = [str(gguf_files[kind]) for kind in ("Q8_0", "Q4_K_M", "Q4_K_S", "Q2_K")]
    result = subprocess.run(
        [str(BUILD_PYTHON), "-c", CHECK_BLOCKS, *files], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    errors = eval(result.stdout)  # a dict literal printed by the check
    assert set(errors) >= {"Q8_0", "Q4_0", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K", "Q4_1 random"}
    for kind in ("Q8_0", "Q4_0", "Q5_0", "Q6_K", "Q8_0 random", "Q4_0 random", "Q5_0 random"):
        assert errors[kind] == 0.0, kind  # no minimum: exactly the file's weights
    assert all(error < 2.0**-21 for error in errors.values()), errors  # d*(q - m/d): f32 rounding


@pytest.mark.build
@pytest.mark.parametrize("kind", ["Q8_0", "Q4_K_M"])
def test_gguf_builds_its_own_grid_by_default_and_passes_the_gate(kind: str, built: dict[str, Path]) -> None:
    manifest = json.loads((built[kind] / "manifest.json").read_text())
    export, fidelity = manifest["export"], manifest["fidelity"]
    assert export["profile"] == "gguf"
    grid = export["gguf_grid"]
    assert grid["tensors"] == 211  # 210 linear layers and the (tied) embedding table
    assert grid["max_error_vs_dequantize"] < 1e-6
    if kind == "Q8_0":
        assert grid["per_type"] == {"Q8_0": 211} and grid["f32_scales"] == 0
        assert export["flags"]["weight_format"] == "fp32"  # written over with the file's own codes
    else:  # llama-quantize's mix: 576 is not a multiple of 256, so most tensors fall back
        assert set(grid["per_type"]) == {"Q4_K", "Q5_0", "Q6_K", "Q8_0"}
        assert grid["f32_scales"] == grid["per_type"]["Q4_K"] + grid["per_type"]["Q6_K"]
    assert fidelity["tokens"]["top1_agreement"] >= fidelity["min_agreement"]
    assert manifest["verification"]["chat"]["answer"].strip()


def test_an_uncarriable_type_is_refused_in_one_line(gguf_files: dict[str, Path], tmp_path: Path) -> None:
    result = run_build(str(gguf_files["Q2_K"]), "--out-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "ovchat-build: error: smollm2-Q2_K.gguf has tensors of a type ovchat cannot carry exactly "
        "(30 Q3_K): --profile balanced dequantizes and re-quantizes it, behind the fidelity gate"
    )
    assert not any(tmp_path.iterdir())
