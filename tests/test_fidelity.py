"""The fidelity gate: every build measures its IR against the unquantized source, real tools only."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD_PYTHON, build_env, hf_source_folder, run_build

# Rewrites a checkpoint so that, in float, it computes the same function (each rescaled input
# channel of q/k/v and gate/up is undone by the RMSNorm weight in front of it) while one channel
# in every 32 becomes a 1000x outlier: the classic weight layout that low-bit quantization ruins.
MAKE_QUANTIZATION_HOSTILE = """
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
source, out = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(source, out, ignore=shutil.ignore_patterns("model.safetensors"))
weights = load_file(source / "model.safetensors")
for name in list(weights):
    if name.endswith(("input_layernorm.weight", "post_attention_layernorm.weight")):
        weights[name][::32] /= 1000.0
        prefix = name.rsplit(".", 2)[0]
        mlp = name.endswith("post_attention_layernorm.weight")
        for proj in ("mlp.gate_proj", "mlp.up_proj") if mlp else ("self_attn.q_proj", "self_attn.k_proj",
                                                                  "self_attn.v_proj"):
            weights[f"{prefix}.{proj}.weight"][:, ::32] *= 1000.0
save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
"""


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ovchat-build: error:")]


def test_default_build_records_its_fidelity_in_the_manifest(manifest: dict) -> None:
    fidelity = manifest["fidelity"]
    tokens, generation = fidelity["tokens"], fidelity["generation"]
    assert "dequantized GGUF" in fidelity["source"]
    assert fidelity["source_dtype"] == "float32"  # 135 M fits float32's memory budget
    assert 130e6 < fidelity["source_parameters"] < 140e6
    assert tokens["tokens"] > 3000
    assert fidelity["min_agreement"] <= tokens["top1_agreement"] <= 1.0
    assert 0.0 < tokens["mean_kl"] <= tokens["p95_kl"]
    assert all(math.isfinite(tokens[k]) and tokens[k] > 1.0 for k in ("perplexity_source", "perplexity_ir"))
    assert generation["prompts"] == 20
    assert 0.0 <= generation["identical_share"] <= 1.0
    assert 0.0 < generation["mean_common_prefix"] <= generation["mean_source_length"]


@pytest.mark.build
def test_quantization_hostile_checkpoint_fails_the_gate_and_publishes_nothing(
    model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "hostile"
    made = subprocess.run(
        [str(BUILD_PYTHON), "-c", MAKE_QUANTIZATION_HOSTILE, str(hf_source_folder()), str(checkpoint)],
        capture_output=True,
        text=True,
        env=build_env(),
    )
    assert made.returncode == 0, made.stderr[-2000:]
    out = tmp_path / "out"
    # No chat check: the point is that fidelity, not the chat smoke test, catches this breakage.
    # The data-free reference flags: the point is that the gate catches this, and quickly.
    result = run_build(
        str(checkpoint),
        "--out-dir",
        str(out),
        "--name",
        "hostile",
        "--no-chat-check",
        "--profile",
        "reference",
    )
    assert result.returncode == 1, result.stdout[-2000:]
    [message] = error_lines(result.stderr)
    assert "fidelity gate failed" in message and "top-1 agreement with the source is" in message
    assert "top-1 agreement" in result.stdout  # the table was printed before the gate closed
    # Refused on agreement far below the bar: no greedy answers, the source's neither, and one
    # precision only (f32 cannot rescue an IR this far off: it is not measured again).
    assert re.findall(r"greedy answers +(.+)", result.stdout) == ["not run: the agreement is below the bar"]
    assert "source greedy answers" not in result.stdout
    assert not (out / "hostile").exists()
    assert not list(out.glob(".partial-*"))


@pytest.mark.build
def test_min_agreement_above_what_int4_reaches_fails_an_otherwise_fine_build(
    model_dir: Path, manifest: dict, tmp_path: Path
) -> None:
    reached = manifest["fidelity"]["tokens"]["top1_agreement"]
    assert reached < 0.999, "int4 matched the source exactly: the flag cannot be tested this way"
    out = tmp_path / "out"
    result = run_build(
        "--out-dir", str(out), "--name", "strict", "--min-agreement", "0.999", "--no-chat-check"
    )
    assert result.returncode == 1, result.stdout[-2000:]
    [message] = error_lines(result.stderr)
    assert "below the required 0.999" in message
    assert not (out / "strict").exists()
    # The source ran once for this source and gate, in the default build: its figures were cached.
    assert "[fidelity] the source's figures from gate-cache/" in result.stdout
