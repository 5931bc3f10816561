#!/usr/bin/env python3
"""Side-by-side benchmark: ovchat vs the optimum-intel reference path vs llama.cpp (xllamacpp).

Same model (the embedded SmolLM2: ovchat and the reference on its int4 IR, llama.cpp on the GGUF
it came from), 2 threads, greedy, 128 generated tokens. Engines run interleaved A B C in each
round, every measurement in a fresh process, so that machine drift hits all alike. Writes
BENCHMARKS.md and docs/bench_compare.png. Run with `make bench`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from lib.fresh_process import first_token_run
from lib.machine import env_size_mb, machine, memory_bandwidth_gbs, wait_for_idle
from lib.paths import BUILD, DEFAULT_MODEL, ROOT, WORKERS
from lib.sections import replace_section
from lib.stats import cell
from lib.workload import NEW_TOKENS, QUESTION

MODEL = DEFAULT_MODEL
ENGINES = ("ovchat", "reference", "llamacpp")
LABELS = {
    "ovchat": "ovchat (GenAI, int4 IR)",
    "reference": "reference (optimum-intel + transformers)",
    "llamacpp": "llama.cpp (xllamacpp, GGUF Q4_1)",
}


@dataclass(frozen=True)
class Engine:
    name: str
    env: Path  # the environment it needs, measured for its installed size
    model: Path

    def cold_command(self) -> list[str]:
        if self.name == "ovchat":
            return [
                str(self.env / "bin" / "ovchat"),
                "ask",
                "-m",
                str(self.model),
                "-n",
                str(NEW_TOKENS),
                "--ignore-eos",
                "-t",
                "0",
                QUESTION,
            ]
        return [str(self.env / "bin" / "python"), str(WORKERS), self.name, "cold", str(self.model)]

    def speed_command(self, salt: int) -> list[str]:
        if self.name == "ovchat":
            return [
                str(self.env / "bin" / "ovchat"),
                "bench",
                "-m",
                str(self.model),
                "--prompt-lengths",
                "512",
                "--new-tokens",
                str(NEW_TOKENS),
                "--repeats",
                "1",
                "--json",
            ]
        return [
            str(self.env / "bin" / "python"),
            str(WORKERS),
            self.name,
            "speed",
            str(self.model),
            str(salt),
        ]


def cold_run(engine: Engine) -> dict[str, float]:
    """Process start -> first token -> 128 tokens, and the process's peak RSS."""
    return first_token_run(engine.cold_command(), None if engine.name == "ovchat" else b"FIRST")


def speed_run(engine: Engine, salt: int) -> dict[str, float]:
    """Warm prefill speed at ~512 tokens and decode speed, inside one loaded process."""
    out = subprocess.run(engine.speed_command(salt), capture_output=True, text=True, check=True).stdout
    data = json.loads(out.strip().splitlines()[-1] if engine.name != "ovchat" else out)
    if engine.name == "ovchat":
        row = data["results"][0]
        return {
            "prompt_tokens": row["prompt_tokens"],
            "prefill_tokens_per_s": row["prefill_tokens_per_s"]["median"],
            "decode_tokens_per_s": row["decode_tokens_per_s"]["median"],
        }
    return {k: float(v) for k, v in data.items()}


def decode_bytes_per_token(model: Path, context: int) -> float:
    """Weights read per token (the whole IR weights file) plus the KV cache at `context` (u8)."""
    config = json.loads((model / "config.json").read_text())
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    kv: int = 2 * config["num_hidden_layers"] * config["num_key_value_heads"] * head_dim * context
    return (model / "openvino_model.bin").stat().st_size + kv


def run(rounds: int, engines: list[Engine]) -> dict[str, Any]:
    results: dict[str, dict[str, list[float]]] = {e.name: {} for e in engines}
    busiest = 0.0
    for engine in engines:  # warm the page cache and compiled-model caches: not counted
        cold_run(engine)
    for index in range(rounds):
        print(f"[bench] round {index + 1}/{rounds}", flush=True)
        for engine in engines:
            busiest = max(busiest, wait_for_idle())
            for key, value in cold_run(engine).items():
                results[engine.name].setdefault(key, []).append(value)
        for engine in engines:
            busiest = max(busiest, wait_for_idle())
            for key, value in speed_run(engine, salt=100 * index).items():
                results[engine.name].setdefault(key, []).append(value)
    return {"results": results, "busiest": busiest}


METRICS = [  # key, label, lower is better, target (ratio ovchat/peer) vs reference, vs llama.cpp
    ("first_token_s", "cold start → first token (s)", True, 0.25, 1.0),
    ("done_s", "cold start → 128 tokens (s)", True, None, None),
    ("decode_tokens_per_s", "decode (tokens/s)", False, 1.5, 1.2),
    ("prefill_tokens_per_s", "prefill at ~512 tokens (tokens/s)", False, None, 6.0),
    ("peak_rss_mb", "peak RSS (MB)", True, None, 1.0),
]


def write_report(data: dict[str, Any], engines: list[Engine], rounds: int, bandwidth: float) -> str:
    res = data["results"]
    sizes = {e.name: env_size_mb(e.env) for e in engines}
    med = {name: {k: statistics.median(v) for k, v in m.items()} for name, m in res.items()}
    lines = [
        "## At 135 M parameters: the default model",
        "",
        f"Measured {date.today().isoformat()} on {machine()}, by `make bench` "
        f"(`scripts/bench/bench_compare.py`; {rounds} interleaved rounds, every figure from a fresh process; "
        "median, with min–max). Model: SmolLM2-135M-Instruct — ovchat and the reference on the same "
        "int4 IR, "
        f"llama.cpp on the Q4_1 GGUF it was built from. 2 threads, greedy, {NEW_TOKENS} generated tokens "
        f"(eos ignored). Busiest the machine was between runs: {data['busiest']:.0%} CPU.",
        "",
        "| metric | ovchat | reference | llama.cpp | ovchat ÷ reference | ovchat ÷ llama.cpp | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for key, label, lower, vs_ref, vs_llama in METRICS:
        cells = [cell(res[name][key]) for name in ENGINES]
        r_ref = med["ovchat"][key] / med["reference"][key]
        r_llama = med["ovchat"][key] / med["llamacpp"][key]
        targets = []
        for ratio, target, peer in ((r_ref, vs_ref, "ref"), (r_llama, vs_llama, "llama.cpp")):
            if target is not None:
                met = ratio <= target if lower else ratio >= target
                targets.append(f"{'≤' if lower else '≥'} {target}× {peer}: {'met' if met else 'NOT met'}")
        lines.append(
            f"| {label} | {' | '.join(cells)} | {r_ref:.2f}× | {r_llama:.2f}× | {'; '.join(targets)} |"
        )
    size_cells = " | ".join(f"{sizes[name]:.0f}" for name in ENGINES)
    lines.append(
        f"| installed env size (MB) | {size_cells} | {sizes['ovchat'] / sizes['reference']:.2f}× | "
        f"{sizes['ovchat'] / sizes['llamacpp']:.2f}× | |"
    )
    per_token = decode_bytes_per_token(MODEL, 512 + NEW_TOKENS)
    limit = bandwidth * 1e9 / per_token
    lines += [
        "",
        f"Decode's physical limit: each token reads the weights plus the KV cache, {per_token / 1e6:.0f} MB; "
        f"at the measured copy bandwidth of {bandwidth:.1f} GB/s that is at most {limit:.0f} tokens/s. "
        f"ovchat decodes at {med['ovchat']['decode_tokens_per_s']:.0f} tokens/s, "
        f"{med['ovchat']['decode_tokens_per_s'] / limit:.0%} of it.",
        "",
        "Prompt tokens as each engine counted them for the prefill run: "
        + ", ".join(f"{n} {med[n]['prompt_tokens']:.0f}" for n in ENGINES)
        + ". Env sizes: ovchat = runtime-only venv (`pip install .`); reference = the build env "
        "(torch CPU, transformers, optimum-intel); llama.cpp = a venv with only xllamacpp.",
        "",
        "![ratios](docs/bench_compare.png)",
    ]
    return "\n".join(lines)


def chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = data["results"]
    keys = [m for m in METRICS]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.38
    for offset, peer in ((-width / 2, "reference"), (width / 2, "llamacpp")):
        ratios = []
        for key, _, lower, _, _ in keys:
            ratio = statistics.median(res["ovchat"][key]) / statistics.median(res[peer][key])
            ratios.append(1 / ratio if lower else ratio)  # > 1 always means ovchat is better
        ax.bar([i + offset for i in range(len(keys))], ratios, width, label=f"vs {LABELS[peer]}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(keys)), [k[1].split(" (")[0] for k in keys], rotation=15, ha="right")
    ax.set_ylabel("ovchat advantage (× better; >1 = ovchat wins)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("ovchat vs alternatives, SmolLM2-135M, 2 threads")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gguf", type=Path, required=True, help="the GGUF the model was built from")
    args = parser.parse_args()
    engines = [
        Engine("ovchat", BUILD / "venv-runtime", MODEL),
        Engine("reference", BUILD / "venv-build", MODEL),
        Engine("llamacpp", BUILD / "venv-llamacpp", args.gguf),
    ]
    # Bandwidth last: Linux carries a parent's peak RSS into the children it spawns (ru_maxrss
    # survives fork+exec), so the driver must stay small while it runs the engines.
    data = run(args.rounds, engines)
    bandwidth = memory_bandwidth_gbs()
    (BUILD / "bench_compare.json").write_text(json.dumps(data, indent=2))
    text = write_report(data, engines, args.rounds, bandwidth)
    replace_section("small", text)
    print(text)
    chart(data, ROOT / "docs" / "bench_compare.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
