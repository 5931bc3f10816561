#!/usr/bin/env python3
"""Side-by-side at the sizes users run: ovchat vs llama.cpp, at 1.1 B and at the seed's 3.8 B.

--size 1.1b (`make bench-large`): a 1.17 B-parameter llama (TinyLlama-1.1B's shape, random weights:
see large_gguf.py) written as a Q4_1 GGUF; llama.cpp (the xllamacpp wheel and a native build) runs
that file, ovchat the IR its own build pipeline made from it (the GGUF's own 4-bit grid, so both
sides hold the same weights at the same bits per weight).
--size 3.8b (`make bench-seed`): a random-weight Phi-3-mini-shape HF folder; ovchat runs the IR the
default profile built from it, native llama.cpp the Q4_0 and Q4_K_M files its own tools made from it.
Engines run interleaved in each round, every figure from a fresh process, 2 threads, greedy,
eos ignored. Writes the "large" or "seed" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

from lib.fresh_process import first_token_run, output_run
from lib.machine import env_size_mb, machine, memory_bandwidth_gbs, wait_for_idle
from lib.paths import BUILD, WORKERS
from lib.sections import replace_section
from lib.stats import cell
from lib.workload import NEW_TOKENS, QUESTION

LARGE = BUILD / "bench-large"
LARGE_GGUF = LARGE / "random-llama-1.1b.Q4_1.gguf"
SEED = BUILD / "seed"


class Peer(NamedTuple):
    name: str
    worker: str  # bench_workers.py's engine
    gguf: Path
    label: str


@dataclass(frozen=True)
class Size:
    """One model size: the IR ovchat runs, the GGUF files llama.cpp runs, the section it writes."""

    key: str
    section: str
    heading: str
    model: Path
    describe: str
    peers: tuple[Peer, ...]
    baseline: str  # the peer the targets are read against


SIZES = {
    "1.1b": Size(
        key="1.1b",
        section="large",
        heading="## At 1.1 B parameters",
        model=LARGE / "models" / "random-llama-1.1b.q4-1-int4",
        describe="Model: a 1.17 B-parameter llama in TinyLlama-1.1B's shape with random weights, written "
        "as a Q4_1 GGUF (`scripts/bench/large_gguf.py`); llama.cpp runs the file, ovchat the IR its "
        "build pipeline made from it (the file's own grid).",
        peers=(
            Peer("llamacpp", "llamacpp", LARGE_GGUF, "llama.cpp wheel (xllamacpp)"),
            Peer("llamacpp-native", "llamacpp-native", LARGE_GGUF, "llama.cpp native (-march=native)"),
        ),
        baseline="llamacpp-native",
    ),
    "3.8b": Size(
        key="3.8b",
        section="seed",
        heading="## At 3.8 B parameters: the seed's Phi-3-mini shape",
        model=BUILD / "bench-build" / "3.8b" / "random-phi3-3.8b-int4",
        describe="Model: a 3.93 B-parameter Phi3ForCausalLM in Phi-3-mini-4k-instruct's exact shape with "
        "random weights (`tests/fixtures/make_random_phi3.py --size mini`, bf16 safetensors). ovchat runs "
        "the IR `make bench-build` built from the folder with the default profile (int4 sym g128 ratio "
        "0.6, AWQ + scale estimation on the shipped calibration set); llama.cpp runs Q4_0 and Q4_K_M "
        "files its own convert_hf_to_gguf.py and llama-quantize made from the same folder "
        "(`scripts/bench/seed_gguf.py`). Same source weights, each engine's own 4-bit format.",
        peers=(
            Peer("native-q4_0", "llamacpp-native", SEED / "seed-3.8b.Q4_0.gguf", "llama.cpp native, Q4_0"),
            Peer(
                "native-q4_k_m", "llamacpp-native", SEED / "seed-3.8b.Q4_K_M.gguf", "llama.cpp native, Q4_K_M"
            ),
        ),
        baseline="native-q4_k_m",
    ),
}


@dataclass(frozen=True)
class Engine:
    name: str
    env: Path
    label: str
    model: Path  # the IR for ovchat, the GGUF for llama.cpp
    worker: str = "ovchat"

    def cold_command(self) -> list[str]:
        if self.name == "ovchat":
            return [str(self.env / "bin" / "ovchat"), "ask", "-m", str(self.model), "-n", str(NEW_TOKENS),
                    "--ignore-eos", "-t", "0", QUESTION]  # fmt: skip
        return [str(self.env / "bin" / "python"), str(WORKERS), self.worker, "cold", str(self.model)]

    def large_command(self, salt: int) -> list[str]:
        if self.name == "ovchat":
            return [str(self.env / "bin" / "ovchat"), "bench", "-m", str(self.model), "--prompt-lengths",
                    "512,2048", "--new-tokens", str(NEW_TOKENS), "--repeats", "1", "--json"]  # fmt: skip
        return [str(self.env / "bin" / "python"), str(WORKERS), self.worker, "large", str(self.model),
                str(salt)]  # fmt: skip


def engines_for(size: Size) -> list[Engine]:
    venvs = {"llamacpp": BUILD / "venv-llamacpp", "llamacpp-native": BUILD / "venv-llamacpp-native"}
    ours = Engine("ovchat", BUILD / "venv-runtime", "ovchat (IR)", size.model)
    return [ours] + [Engine(p.name, venvs[p.worker], p.label, p.gguf, p.worker) for p in size.peers]


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


def weights_mb(engine: Engine) -> float:
    """The weights file's size in MB: the IR's .bin or the GGUF."""
    path = engine.model / "openvino_model.bin" if engine.name == "ovchat" else engine.model
    return path.stat().st_size / 1e6


def parameters(engines: list[Engine]) -> int:
    """The parameter count, read from the first GGUF."""
    import gguf  # the bench env's (build/venv-bench); imported here, --help needs no bench env

    return sum(int(t.n_elements) for t in gguf.GGUFReader(engines[1].model).tensors)


def kv_bytes(model: Path, context: int) -> float:
    config = json.loads((model / "config.json").read_text())
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    kv: int = 2 * config["num_hidden_layers"] * config["num_key_value_heads"] * head_dim * context * 2  # f16
    return kv


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


def metric_rows(size: Size, engines: list[Engine], res: dict[str, Any]) -> list[str]:
    """One row per metric: each engine's median (min–max), ovchat ÷ each peer, the target's verdict."""
    names = [e.name for e in engines]
    med = {n: {k: statistics.median(v) for k, v in res[n].items()} for n in names}
    base = next(e.label for e in engines if e.name == size.baseline)
    rows = []
    for key, label, lower, target in METRICS:
        cells = " | ".join(cell(res[n][key]) for n in names)
        ours = med["ovchat"][key]
        vs = " | ".join(ratio_cell(ours, med[n][key]) for n in names[1:])
        verdict = ""
        if target is not None:
            ratio = ours / med[size.baseline][key]
            met = ratio <= target if lower else ratio >= target
            verdict = f"{'≤' if lower else '≥'} {target}× {base}: {'met' if met else 'NOT met'}"
        rows.append(f"| {label} | {cells} | {vs} | {verdict} |")
    return rows


def write_report(
    size: Size, data: dict[str, Any], engines: list[Engine], rounds: int, bandwidth: float
) -> str:
    res = data["results"]
    names = [e.name for e in engines]
    med = {n: {k: statistics.median(v) for k, v in res[n].items()} for n in names}
    lines = [
        size.heading,
        "",
        f"Measured {date.today().isoformat()} on {machine()} by `make {BENCH_TARGET[size.key]}` "
        f"(`scripts/bench/bench_large.py --size {size.key}`; {rounds} interleaved rounds, every figure "
        f"from a fresh process; median, with min–max). {size.describe} 2 threads, greedy, "
        f"{NEW_TOKENS} generated tokens, eos ignored. Busiest the machine was between runs: "
        f"{data['busiest']:.0%} CPU.",
        "",
        "| metric | "
        + " | ".join(e.label for e in engines)
        + " | "
        + " | ".join(f"ovchat ÷ {e.label}" for e in engines[1:])
        + " | target |",
        "|---|" + "---:|" * (2 * len(names) - 1) + "---|",
    ]
    lines += metric_rows(size, engines, res)
    params = parameters(engines)
    lines.append(
        "| weights file (MB; bits per weight) | "
        + " | ".join(f"{weights_mb(e):.0f}; {weights_mb(e) * 8e6 / params:.2f}" for e in engines)
        + " |" * len(names)
    )
    context = 512 + NEW_TOKENS
    share = []
    for engine in engines:
        per_token = weights_mb(engine) * 1e6 + kv_bytes(size.model, context)
        decode = med[engine.name]["decode_tokens_per_s"]
        share.append(f"{engine.label} {decode * per_token / (bandwidth * 1e9):.0%}")
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
        + ", ".join(f"{e.name} {env_size_mb(e.env):.0f}" for e in engines)
        + ".",
    ]
    return "\n".join(lines)


BENCH_TARGET = {"1.1b": "bench-large", "3.8b": "bench-seed"}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="1.1b")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--report-only", action="store_true", help="rewrite the table from the last run")
    args = parser.parse_args()
    size = SIZES[args.size]
    engines = engines_for(size)
    for needed in [size.model / "manifest.json"] + [e.model for e in engines[1:]]:
        if not needed.exists():
            sys.exit(f"bench_large: {needed} is missing: run `make {BENCH_TARGET[size.key]}`")
    saved = BUILD / f"bench_large-{size.key}.json"
    if args.report_only:
        data = json.loads(saved.read_text())
    else:
        data = run(args.rounds, engines)
        data["bandwidth_gbs"] = memory_bandwidth_gbs()  # last: the driver must stay small meanwhile
        data["rounds"] = args.rounds
        saved.write_text(json.dumps(data, indent=2))
    bandwidth = data.get("bandwidth_gbs") or memory_bandwidth_gbs()
    text = write_report(size, data, engines, data.get("rounds", args.rounds), bandwidth)
    replace_section(size.section, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
