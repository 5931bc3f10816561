#!/usr/bin/env python3
"""Side-by-side at the size users run: ovchat vs llama.cpp (the xllamacpp wheel and a native build).

The model is a 1.17 B-parameter llama (TinyLlama-1.1B's shape, random weights: see large_gguf.py)
written as a Q4_1 GGUF; llama.cpp runs that file, ovchat the IR its own build pipeline made from it
(the GGUF's own 4-bit grid, so both sides hold the same weights at the same bits per weight).
Engines run interleaved in each round, every figure from a fresh process, 2 threads, greedy,
eos ignored. Writes the "large" section of BENCHMARKS.md. Run with `make bench-large`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import gguf
from report import (
    BUILD,
    NEW_TOKENS,
    QUESTION,
    WORKERS,
    cell,
    env_size_mb,
    first_token_run,
    machine,
    memory_bandwidth_gbs,
    output_run,
    replace_section,
    wait_for_idle,
)

LARGE = BUILD / "bench-large"
GGUF = LARGE / "random-llama-1.1b.Q4_1.gguf"
MODEL = LARGE / "models" / "random-llama-1.1b.q4-1-int4"
LABELS = {
    "ovchat": "ovchat (IR from the GGUF)",
    "llamacpp": "llama.cpp wheel (xllamacpp)",
    "llamacpp-native": "llama.cpp native (-march=native)",
}


@dataclass(frozen=True)
class Engine:
    name: str
    env: Path

    def cold_command(self) -> list[str]:
        if self.name == "ovchat":
            return [str(self.env / "bin" / "ovchat"), "ask", "-m", str(MODEL), "-n", str(NEW_TOKENS),
                    "--ignore-eos", "-t", "0", QUESTION]  # fmt: skip
        return [str(self.env / "bin" / "python"), str(WORKERS), self.name, "cold", str(GGUF)]

    def large_command(self, salt: int) -> list[str]:
        if self.name == "ovchat":
            return [str(self.env / "bin" / "ovchat"), "bench", "-m", str(MODEL), "--prompt-lengths",
                    "512,2048", "--new-tokens", str(NEW_TOKENS), "--repeats", "1", "--json"]  # fmt: skip
        return [str(self.env / "bin" / "python"), str(WORKERS), self.name, "large", str(GGUF), str(salt)]


def ovchat_figures(report: dict[str, Any]) -> dict[str, float]:
    """`ovchat bench --json` in the workers' terms."""
    figures = {"load_s": report["load_seconds"], "steady_rss_mb": report["steady_rss_mb"]}
    for row in report["results"]:
        length = 512 if row["prompt_tokens"] <= 1024 else 2048
        figures[f"ttft_{length}_s"] = row["ttft_ms"]["median"] / 1000
        figures[f"prompt_tokens_{length}"] = row["prompt_tokens"]
        figures[f"prefill_{length}_tokens_per_s"] = row["prefill_tokens_per_s"]["median"]
        if length == 512:
            figures["decode_tokens_per_s"] = row["decode_tokens_per_s"]["median"]
    return figures


def large_run(engine: Engine, salt: int) -> dict[str, float]:
    out, peak = output_run(engine.large_command(salt))
    data = json.loads(out) if engine.name == "ovchat" else json.loads(out.strip().splitlines()[-1])
    figures = ovchat_figures(data) if engine.name == "ovchat" else {k: float(v) for k, v in data.items()}
    figures["peak_rss_mb"] = peak
    return figures


def run(rounds: int, engines: list[Engine]) -> dict[str, Any]:
    results: dict[str, dict[str, list[float]]] = {e.name: {} for e in engines}
    busiest = 0.0
    for engine in engines:  # fills the page cache and ovchat's compiled-model cache: not counted
        first_token_run(engine.cold_command(), None if engine.name == "ovchat" else b"FIRST")
    for index in range(rounds):
        print(f"[bench-large] round {index + 1}/{rounds}", flush=True)
        for engine in engines:
            busiest = max(busiest, wait_for_idle())
            marker = None if engine.name == "ovchat" else b"FIRST"
            for key, value in first_token_run(engine.cold_command(), marker).items():
                results[engine.name].setdefault(f"cold_{key}", []).append(value)
        for engine in engines:
            busiest = max(busiest, wait_for_idle())
            for key, value in large_run(engine, salt=1000 * index).items():
                results[engine.name].setdefault(key, []).append(value)
            print(f"[bench-large] {engine.name}: {json.dumps(results[engine.name])}", flush=True)
    return {"results": results, "busiest": busiest}


def weights_of(engine: str) -> tuple[float, int]:
    """The weights file's size in MB and the parameter count (read from the GGUF)."""
    params = sum(int(t.n_elements) for t in gguf.GGUFReader(GGUF).tensors)
    size = (MODEL / "openvino_model.bin" if engine == "ovchat" else GGUF).stat().st_size
    return size / 1e6, params


def kv_bytes(context: int) -> float:
    config = json.loads((MODEL / "config.json").read_text())
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    return 2 * config["num_hidden_layers"] * config["num_key_value_heads"] * head_dim * context * 2  # f16


METRICS = [  # key, label, lower is better, target vs native llama.cpp
    ("cold_first_token_s", "cold start → first token (s)", True, None),
    ("cold_done_s", "cold start → 128 tokens (s)", True, None),
    ("cold_peak_rss_mb", "peak RSS, that one-shot answer (MB)", True, 1.1),
    ("load_s", "load (s)", True, 1.5),
    ("ttft_512_s", "TTFT, 512-token prompt (s)", True, None),
    ("ttft_2048_s", "TTFT, 2,048-token prompt (s)", True, None),
    ("prefill_2048_tokens_per_s", "prefill at 2,048 tokens (tokens/s)", False, 3.0),
    ("decode_tokens_per_s", "decode after 512 tokens (tokens/s)", False, 1.0),
    ("peak_rss_mb", "peak RSS, the speed run up to 2,048-token prompts (MB)", True, 1.1),
    ("steady_rss_mb", "steady RSS at the end of that run (MB)", True, None),
]


def ratio_cell(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}×"


def write_report(data: dict[str, Any], engines: list[Engine], rounds: int, bandwidth: float) -> str:
    res = data["results"]
    names = [e.name for e in engines]
    med = {n: {k: statistics.median(v) for k, v in res[n].items()} for n in names}
    lines = [
        "## At 1.1 B parameters",
        "",
        f"Measured {date.today().isoformat()} on {machine()} by `make bench-large` "
        f"(`scripts/bench/bench_large.py`; {rounds} interleaved rounds, every figure from a fresh process; "
        "median, with min–max). Model: a 1.17 B-parameter llama in TinyLlama-1.1B's shape with random "
        "weights, written as a Q4_1 GGUF (`scripts/bench/large_gguf.py`); llama.cpp runs the file, "
        "ovchat the IR its build pipeline made from it (the file's own grid). 2 threads, greedy, "
        f"{NEW_TOKENS} generated tokens, eos ignored. Busiest the machine was between runs: "
        f"{data['busiest']:.0%} CPU.",
        "",
        "| metric | "
        + " | ".join(LABELS[n] for n in names)
        + " | ovchat ÷ wheel | ovchat ÷ native | target |",
        "|---|" + "---:|" * len(names) + "---:|---:|---|",
    ]
    for key, label, lower, target in METRICS:
        cells = " | ".join(cell(res[n][key]) for n in names)
        ours = med["ovchat"][key]
        vs = [ratio_cell(ours, med[n][key]) for n in ("llamacpp", "llamacpp-native")]
        verdict = ""
        if target is not None:
            ratio = ours / med["llamacpp-native"][key]
            met = ratio <= target if lower else ratio >= target
            verdict = f"{'≤' if lower else '≥'} {target}× native: {'met' if met else 'NOT met'}"
        lines.append(f"| {label} | {cells} | {vs[0]} | {vs[1]} | {verdict} |")
    sizes = {n: weights_of(n) for n in ("ovchat", "llamacpp")}
    params = sizes["ovchat"][1]
    lines.append(
        "| weights file (MB; bits per weight) | "
        + " | ".join(
            f"{sizes['ovchat' if n == 'ovchat' else 'llamacpp'][0]:.0f}; "
            f"{sizes['ovchat' if n == 'ovchat' else 'llamacpp'][0] * 8e6 / params:.2f}"
            for n in names
        )
        + " | | | |"
    )
    context = 512 + NEW_TOKENS
    share = []
    for name in names:
        per_token = sizes["ovchat" if name == "ovchat" else "llamacpp"][0] * 1e6 + kv_bytes(context)
        share.append(f"{LABELS[name]} {med[name]['decode_tokens_per_s'] * per_token / (bandwidth * 1e9):.0%}")
    lines += [
        "",
        f"Decode as a share of the memory-bandwidth limit (weights + KV cache read per token, at the "
        f"measured copy bandwidth of {bandwidth:.1f} GB/s): " + ", ".join(share) + ".",
        "",
        "Prompt tokens as each engine counted them: "
        + ", ".join(
            f"{n} {med[n]['prompt_tokens_512']:.0f} / {med[n]['prompt_tokens_2048']:.0f}" for n in names
        )
        + f". {params / 1e9:.2f} B parameters. Env sizes (MB): "
        + ", ".join(f"{n} {env_size_mb(e.env):.0f}" for n, e in zip(names, engines, strict=True))
        + ".",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--report-only", action="store_true", help="rewrite the table from the last run")
    args = parser.parse_args()
    for needed in (GGUF, MODEL / "manifest.json"):
        if not needed.exists():
            sys.exit(f"bench-large: {needed} is missing: run `make bench-large`")
    engines = [
        Engine("ovchat", BUILD / "venv-runtime"),
        Engine("llamacpp", BUILD / "venv-llamacpp"),
        Engine("llamacpp-native", BUILD / "venv-llamacpp-native"),
    ]
    saved = BUILD / "bench_large.json"
    if args.report_only:
        data = json.loads(saved.read_text())
    else:
        data = run(args.rounds, engines)
        data["bandwidth_gbs"] = memory_bandwidth_gbs()  # last: the driver must stay small meanwhile
        data["rounds"] = args.rounds
        saved.write_text(json.dumps(data, indent=2))
    bandwidth = data.get("bandwidth_gbs") or memory_bandwidth_gbs()
    text = write_report(data, engines, data.get("rounds", args.rounds), bandwidth)
    replace_section("large", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
