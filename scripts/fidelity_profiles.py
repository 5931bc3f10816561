#!/usr/bin/env python3
"""Build every --profile of the embedded model into a temp folder and write FIDELITY.md.

For each profile: size on disk, decode speed (openvino_genai greedy, 128 new tokens, median of
3 runs) and the fidelity figures the build measured against the unquantized source. Runs in
the build env: build/venv-build/bin/python scripts/fidelity_profiles.py
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import openvino_genai as ov_genai

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "scripts" / "build_model.py"
REPORT = ROOT / "FIDELITY.md"
PROFILES = ("reference", "speed", "quality")
BENCH_PROMPT = "Write a short story about a robot who learns to paint."
BENCH_TOKENS = 128
BENCH_RUNS = 3


@dataclass(frozen=True)
class ProfileResult:
    profile: str
    size_mb: float
    decode_tokens_per_s: float
    manifest: dict[str, Any]


def build_profile(profile: str, out_dir: Path) -> dict[str, Any]:
    """Build one profile; the gate is off (min agreement 0) so every profile gets its figures."""
    command = [sys.executable, str(BUILD_SCRIPT), "--profile", profile, "--out-dir", str(out_dir)]
    command += ["--name", profile, "--min-agreement", "0"]
    print(f"[profiles] building {profile}", flush=True)
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    if result.returncode != 0:
        sys.exit(f"fidelity_profiles: the {profile} build failed:\n{result.stderr[-2000:]}")
    return json.loads((out_dir / profile / "manifest.json").read_text())


def decode_speed(model_dir: Path) -> float:
    """Median decode tokens/s of greedy generation of exactly BENCH_TOKENS tokens."""
    pipe = ov_genai.LLMPipeline(str(model_dir), "CPU")
    config = pipe.get_generation_config()
    config.max_new_tokens = BENCH_TOKENS
    config.min_new_tokens = BENCH_TOKENS
    config.do_sample = False
    pipe.generate([BENCH_PROMPT], config)  # warm-up: first-run compilation and allocation
    speeds = [
        pipe.generate([BENCH_PROMPT], config).perf_metrics.get_throughput().mean for _ in range(BENCH_RUNS)
    ]
    return statistics.median(speeds)


def measure_profile(profile: str, out_dir: Path) -> ProfileResult:
    manifest = build_profile(profile, out_dir)
    folder = out_dir / profile
    size = sum(f["size"] for f in manifest["files"] if f["path"].startswith("openvino_model.")) / 1e6
    return ProfileResult(profile, round(size, 1), round(decode_speed(folder), 1), manifest)


def render(results: list[ProfileResult]) -> str:
    """FIDELITY.md: the table plus what was measured, how, and on what."""
    first = results[0].manifest
    tokens, generation = first["fidelity"]["tokens"], first["fidelity"]["generation"]
    rows = [
        "| profile | export flags | IR size (MB) | decode tok/s | top-1 agreement | mean KL | p95 KL "
        "| perplexity source / IR | greedy answers identical | mean common prefix |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        flags, fid = r.manifest["export"]["flags"], r.manifest["fidelity"]
        shown = f"{flags['weight_format']} sym" + (
            f" g{flags['group_size']} ratio {flags['ratio']}" if flags["weight_format"] == "int4" else ""
        )
        t, g = fid["tokens"], fid["generation"]
        figures = [
            f"{t['top1_agreement']:.4f}",
            f"{t['mean_kl']:.4f}",
            f"{t['p95_kl']:.4f}",
            f"{t['perplexity_source']:.2f} / {t['perplexity_ir']:.2f}",
            f"{g['identical_share']:.0%}",
            f"{g['mean_common_prefix']:.1f} / {g['mean_source_length']:.1f}",
        ]
        rows.append(
            " | ".join(
                ["", r.profile, shown, str(r.size_mb), str(r.decode_tokens_per_s), *figures, ""]
            ).strip()
        )
    versions = ", ".join(f"{k} {v}" for k, v in first["versions"].items())
    return "\n".join(
        [
            "# Fidelity of the build profiles",
            "",
            "Written by `scripts/fidelity_profiles.py` "
            f"on {datetime.now(timezone.utc).date()}; real measured numbers from one run.",
            "",
            f"Model: embedded SmolLM2-135M-Instruct (`{first['source']['ref']}`). **The reference is the "
            "GGUF Q4_1 file dequantized to float32 and run in torch**: that source is itself 4-bit, so "
            "these figures measure the drift added by the OpenVINO export, not the drift from the "
            "original bf16 SmolLM2 weights.",
            "",
            *rows,
            "",
            f"- Teacher-forced figures: {tokens['tokens']} predicted tokens in {tokens['sequences']} "
            "sequences "
            "(`scripts/fidelity_texts/`: English prose, Python/JS/SQL/shell code, French/German/Spanish/"
            "Italian/Portuguese/Japanese/Chinese/Russian prose, chats through the chat template), tokenized "
            "by the source's tokenizer. KL is KL(source ‖ IR) of the next-token distributions.",
            f"- Generation: greedy answers to {generation['prompts']} chat prompts, at most "
            f"{generation['max_new_tokens']} new tokens; common prefix: shared / source answer length, "
            "in tokens.",
            f"- The IR runs on OpenVINO CPU with its default inference precision "
            f"({first['fidelity']['ir_inference_precision']} on this machine).",
            f"- Decode tok/s: `openvino_genai.LLMPipeline` greedy, exactly {BENCH_TOKENS} new tokens, median "
            f"of {BENCH_RUNS} runs after a warm-up, on {os.cpu_count()} CPU cores ({platform.machine()}) "
            "- treat speeds as rough (`make bench` measures speed side by side); compare them only "
            "within this table.",
            "- IR size: openvino_model.xml + .bin (the tokenizer IRs add about 2.6 MB to each).",
            "- speed keeps the embedding / lm_head in int8 (NNCF's default without `--all-layers`).",
            "- Build gate: `build_model.py` fails below `--min-agreement`: by default 0.90 for float "
            "checkpoints and 0.60 for GGUF sources such as this one, which are already quantized "
            "(re-quantizing one 4-bit grid onto another costs more). int4 cannot reach 0.90 here; 0.60 "
            "sits under reference and speed and far above a broken export (0.00 in the tests).",
            f"- Tools: {versions}.",
            "",
        ]
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ovchat-profiles-") as tmp:
        results = [measure_profile(profile, Path(tmp)) for profile in PROFILES]
    REPORT.write_text(render(results))
    print(REPORT.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
