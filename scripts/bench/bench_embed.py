"""Embeddings side by side on one CPU: `ovchat serve`, llama-server and sentence-transformers on the
same weights (all-MiniLM-L6-v2), in the same run, rounds interleaved.

    HF_HUB_OFFLINE=1 build/venv/bin/python scripts/bench/bench_embed.py --llama-server PATH [--write]

ovchat serves its fp16 IR (build/models/all-minilm-l6-v2-fp16, `make embed-model`) at its defaults
(which compute in bf16 on a CPU with AMX or AVX512-BF16) and at `--precision f32`; llama-server the
GGUFs llama.cpp's own converter makes from the same folder (f16, the like-for-like, and q8_0;
scripts/bench/embed_gguf.py); sentence-transformers runs torch f32 in a worker process of its own,
timed inside it (in-process calls, no HTTP: scripts/bench/embed_torch.py). All on 2 threads. The
ratios and the issue's goals are ovchat's defaults against llama-server's f16 GGUF and torch.

Every round starts each engine in turn (the order rotating round by round, one engine up at a time),
takes its vectors of a fixed text set (the warm-up, and its cosine to sentence-transformers'), then
measures embeddings/s and latency at batch 1 and 32 for short and long texts, and 8 clients at once;
its memory is sampled all along. --write puts the table in BENCHMARKS.md ("Embeddings").
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from embed_engines import OtherCpu, PeakMemory, Running, Served, TorchWorker
from embed_texts import check_lengths, fidelity_set, requests, vocabulary
from lib.machine import machine, wait_for_idle
from lib.paths import BUILD, ROOT
from lib.sections import replace_section
from lib.server import ovchat_serve, start_on_free_port
from lib.stats import cell

MODEL = BUILD / "models" / "all-minilm-l6-v2-fp16"  # `make embed-model`
SOURCE = BUILD / "bench-embed" / "all-MiniLM-L6-v2"  # the package's folder, unzipped by embed_gguf.py
GGUF = BUILD / "bench-embed" / "all-MiniLM-L6-v2.{}.gguf"
BUILD_PYTHON = BUILD / "venv-build" / "bin" / "python"  # torch, sentence-transformers
TORCH_WORKER = ROOT / "scripts" / "bench" / "embed_torch.py"
THREADS = 2
SHORT, LONG = 16, 250  # tokens per text, [CLS] and [SEP] included (the model's limit is 256)
CLIENTS = 8
REFERENCE = "torch"  # the engine the others' vectors are compared to
GOALS = {1: 1.0, 32: 1.5}  # the issue's: ovchat's embeddings/s over llama-server's (f16), by batch
MIN_COSINE = 0.999
MAX_OTHER_CPU, RETRIES = 0.10, 2  # a run other processes took more of the CPU in is measured again
# llama-server at its best here (`--llama-flags` to try others): 8 slots, so 8 texts or clients batch,
# and forward passes of up to 512 tokens of whole texts (an encoder's text must fit one ubatch). More
# tokens a pass cost it more, not less: its attention spans every text of the pass.
LLAMA_FLAGS = ("-np", "8", "-c", "2048", "-b", "512", "-ub", "512")


@dataclass(frozen=True)
class Cell:
    """One throughput measurement: `requests` requests of `batch` texts of `tokens` tokens, from
    `clients` clients at once (each sending its share in turn)."""

    tokens: int
    batch: int
    requests: int
    clients: int = 1

    @property
    def kind(self) -> str:
        return f"{'short' if self.tokens == SHORT else 'long'} texts ({self.tokens} tokens)"

    @property
    def rate(self) -> str:
        if self.clients > 1:
            return f"{self.clients} clients at once, {self.kind}, batch {self.batch} each: embeddings/s"
        return f"{self.kind}, batch {self.batch}: embeddings/s"

    @property
    def latency(self) -> str:
        return f"p50 latency, {self.kind}, batch {self.batch} (ms)"


# 1–13 s a cell for the slowest engine of each; about 20 s an engine a round, start and warm-up included.
CELLS = (Cell(SHORT, 1, 160), Cell(SHORT, 32, 16), Cell(LONG, 1, 40), Cell(LONG, 32, 8))
CONCURRENT = Cell(SHORT, 1, 64 * CLIENTS, CLIENTS)


@dataclass(frozen=True)
class Engine:
    name: str
    label: str  # its column in the table
    start: Callable[[], Running]


@dataclass
class Round:
    """One engine in one round: its figures, its vectors of the fixed set, its token counts of a short
    and a long text, and the share of the CPU other processes took while it was measured."""

    figures: dict[str, float] = field(default_factory=dict)
    vectors: list[list[float]] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    other_cpu: float = 0.0


@dataclass
class Results:
    """Every engine's figures, a list over the rounds for each row; its vectors and token counts
    (the first round's: they do not change); what the machine's other work took."""

    figures: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    vectors: dict[str, list[list[float]]] = field(default_factory=dict)
    tokens: dict[str, list[int]] = field(default_factory=dict)
    busiest: float = 0.0  # before a run, the machine's busy share (wait_for_idle)
    other_cpu: float = 0.0  # during the runs kept, the most other processes took
    repeated: int = 0  # runs measured again because other processes took too much meanwhile

    def keep(self, engine: str, found: Round) -> None:
        for row, value in found.figures.items():
            self.figures.setdefault(engine, {}).setdefault(row, []).append(value)
        self.vectors.setdefault(engine, found.vectors)
        self.tokens.setdefault(engine, found.tokens)
        self.other_cpu = max(self.other_cpu, found.other_cpu)


def ovchat_engine(model: Path, name: str = "ovchat", label: str = "ovchat (fp16 IR)", *extra: str) -> Engine:
    """`ovchat serve` at its default settings, or with `extra` flags: `--precision f32` (instead of
    the CPU's own bf16 where it has AMX or AVX512-BF16), `--encoder-batch 1` (no batching of
    concurrent requests: what batching gains)."""

    def command(port: int) -> list[str]:
        return ovchat_serve(port, "--model", str(model), *extra)

    def start() -> Running:
        return Served(start_on_free_port(command, what="ovchat", timeout=120), model.name)

    return Engine(name, label, start)


def llama_engine(binary: Path, gguf: Path, outtype: str, flags: tuple[str, ...]) -> Engine:
    def command(port: int) -> list[str]:
        pooling = ["--embedding", "--pooling", "mean", "-t", str(THREADS), "-tb", str(THREADS)]
        return [str(binary), "-m", str(gguf), *pooling, *flags, "--no-webui", "--port", str(port)]

    def start() -> Running:
        return Served(start_on_free_port(command, what="llama-server", timeout=120, quiet=True), gguf.stem)

    return Engine(f"llama-{outtype}", f"llama-server ({outtype} GGUF)", start)


def torch_engine(folder: Path) -> Engine:
    def start() -> Running:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(THREADS)}
        return TorchWorker(
            [str(BUILD_PYTHON), str(TORCH_WORKER), str(folder), "--threads", str(THREADS)], env
        )

    return Engine(REFERENCE, "sentence-transformers (torch f32)", start)


def warm_up(running: Running, words: list[str], round_: int) -> None:
    """Two requests of every shape measured, and a burst of the clients, with texts of their own: the
    first runs of a shape compile or allocate (OpenVINO's kernels, llama.cpp's graph, oneDNN's)."""
    for shape in CELLS:
        for texts in requests(words, f"warm-up/{round_}", shape.tokens, shape.batch, 2):
            running.vectors(texts)
    burst = requests(words, f"warm-up/{round_}", SHORT, 1, 2 * CLIENTS)
    running.concurrent([burst[i::CLIENTS] for i in range(CLIENTS)])


def cell_requests(words: list[str], shape: Cell, round_: int) -> list[list[str]]:
    """A cell's requests in a round: the same for every engine, new in every round."""
    return requests(words, f"{round_}/{shape.clients}", shape.tokens, shape.batch, shape.requests)


def measure_cell(running: Running, words: list[str], shape: Cell, round_: int) -> tuple[float, float | None]:
    """Embeddings/s of one cell, and its median request latency in ms (None when clients overlap)."""
    asked = cell_requests(words, shape, round_)
    texts = shape.batch * shape.requests
    if shape.clients > 1:
        wall = running.concurrent([asked[i :: shape.clients] for i in range(shape.clients)])
        return (math.nan if wall is None else texts / wall), None
    seconds = running.timed(asked)
    return texts / sum(seconds), 1000 * statistics.median(seconds)


def measure(engine: Engine, words: list[str], fixed: list[str], round_: int) -> Round:
    """One engine, one round: started, its vectors of the fixed set, warmed up, every cell, stopped."""
    running = engine.start()
    memory = PeakMemory(running.pid)
    found = Round()
    try:
        found.vectors = running.vectors(fixed)
        warm_up(running, words, round_)
        found.tokens = running.tokens([requests(words, "count", n, 1, 1)[0][0] for n in (SHORT, LONG)])
        other = OtherCpu(running.pid)
        for shape in (*CELLS, CONCURRENT):
            rate, latency = measure_cell(running, words, shape, round_)
            found.figures[shape.rate] = rate
            if latency is not None:
                found.figures[shape.latency] = latency
        found.other_cpu = other.share()
    finally:
        peak = memory.stop()
        running.stop()
    found.figures["peak RSS (MB)"] = peak
    return found


def measure_quiet(engine: Engine, words: list[str], fixed: list[str], round_: int, results: Results) -> None:
    """measure() on an idle machine: a run during which other processes took more than MAX_OTHER_CPU
    of the CPU (this machine is shared: a test suite, a build) is measured again, up to RETRIES times."""
    for attempt in range(RETRIES + 1):
        results.busiest = max(results.busiest, wait_for_idle())
        found = measure(engine, words, fixed, round_)
        if found.other_cpu <= MAX_OTHER_CPU or attempt == RETRIES:
            break
        results.repeated += 1
        print(f"{engine.name}: other processes took {found.other_cpu:.0%} of the CPU: again", file=sys.stderr)
    results.keep(engine.name, found)


def cosines(vectors: list[list[float]], reference: list[list[float]]) -> list[float]:
    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    return [cosine(a, b) for a, b in zip(vectors, reference, strict=True)]


def unit_error(vectors: list[list[float]]) -> float:
    """How far from unit length the longest-off vector is (all are normalized: 0 up to rounding)."""
    return max(abs(math.sqrt(sum(x * x for x in v)) - 1) for v in vectors)


def ratio(results: Results, row: str, engine: str, other: str) -> float | None:
    mine, theirs = results.figures[engine].get(row), results.figures.get(other, {}).get(row)
    if not mine or not theirs or math.isnan(statistics.median(theirs)):
        return None
    return statistics.median(mine) / statistics.median(theirs)


def target(row: str, versus_llama: float | None, versus_torch: float | None) -> str:
    """The issue's goal for this row, and whether it is met."""
    for batch, goal in GOALS.items():
        if row.endswith(f"batch {batch}: embeddings/s") and versus_llama is not None:
            return f"≥ {goal:.1f}× llama-server: {'met' if versus_llama >= goal else 'NOT met'}"
    if row.startswith("peak RSS") and versus_torch is not None:
        return f"a fraction of torch's: {'met' if versus_torch < 1 else 'NOT met'}"
    return ""


def table(results: Results, engines: list[Engine]) -> str:
    names = [e.name for e in engines if e.name in results.figures]
    labels = [e.label for e in engines if e.name in results.figures]
    llama = next((n for n in names if n.startswith("llama")), None)
    versus = f"llama-server {llama.removeprefix('llama-')}" if llama else "llama-server"
    head = ["metric", *labels, f"ovchat ÷ {versus}", "ovchat ÷ torch", "target"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(names) + 2) + "---|"]
    for row in results.figures[names[0]]:
        cells = [
            cell(v) if not math.isnan(v[0]) else "n/a (in-process)" for v in _values(results, names, row)
        ]
        by_llama = ratio(results, row, "ovchat", llama) if llama and "ovchat" in names else None
        by_torch = ratio(results, row, "ovchat", REFERENCE) if "ovchat" in names else None
        shown = [f"{r:.2f}×" if r is not None else "" for r in (by_llama, by_torch)]
        lines.append(
            f"| {row} | {' | '.join(cells)} | {' | '.join(shown)} | {target(row, by_llama, by_torch)} |"
        )
    if REFERENCE in results.vectors:
        lines.append(cosine_row(results, names))
    return "\n".join(lines)


def _values(results: Results, names: list[str], row: str) -> list[list[float]]:
    return [results.figures[name].get(row, [math.nan]) for name in names]


def cosine_row(results: Results, names: list[str]) -> str:
    reference = results.vectors[REFERENCE]
    cells, met = [], []
    for name in names:
        found = cosines(results.vectors[name], reference)
        cells.append(f"{statistics.mean(found):.5f} / {min(found):.5f}")
        met.append(statistics.mean(found) >= MIN_COSINE)
    verdict = f"≥ {MIN_COSINE} mean: {'met' if all(met) else 'NOT met'}"
    return f"| cosine to sentence-transformers f32, mean / min | {' | '.join(cells)} | | | {verdict} |"


def cpu_precision() -> str:
    """OpenVINO's own inference precision on this CPU, which ovchat runs at when the model's build
    verified no other: bf16 where the CPU has AMX or AVX512-BF16, else f32."""
    import openvino as ov  # the runtime venv's

    return str(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").to_string())


def notes(results: Results, rounds: int, fixed: int, flags: tuple[str, ...]) -> str:
    """What was measured, how, and on what: the paragraph above the table."""
    counted = ", ".join(f"{n} {' / '.join(map(str, t))}" for n, t in results.tokens.items())
    lengths = ", ".join(f"{n} {unit_error(v):.0e}" for n, v in results.vectors.items())
    return (
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()} by `make bench-embed` "
        f"(`scripts/bench/bench_embed.py`; {rounds} interleaved rounds, the engines' order rotating, one "
        "engine up at a time; median, with min–max). Model: sentence-transformers/all-MiniLM-L6-v2 "
        "(BertModel, 384 dimensions, mean pooling, normalized) from its PyPI package. ovchat serves its "
        f"fp16 IR (`make embed-model`) at its default settings, which on this CPU compute in "
        f"{cpu_precision()} (OpenVINO's own choice), and with `--precision f32` beside it; llama-server "
        "(built here for this CPU, without AMX) the GGUFs llama.cpp's own `convert_hf_to_gguf.py` makes "
        "from the same folder (`--outtype f16`, the like-for-like, and `q8_0`), with `--embedding "
        f"--pooling mean -t {THREADS} -tb {THREADS} {' '.join(flags)}` (`-np` slots, so that a "
        "request's texts and concurrent clients batch; `-ub` tokens of whole texts a forward pass: an "
        "encoder's text must fit in one; its best of the settings tried, below); sentence-transformers "
        "6.3 on torch f32, `encode()` called and timed inside a worker process of its own (in-process: "
        f"no HTTP, no JSON). All on {THREADS} threads. Each request's texts are new (common words of "
        f"the model's vocabulary, exactly {SHORT} or {LONG} tokens with [CLS] and [SEP], checked with "
        "`tokenizers`); embeddings/s is texts over the requests' time, one request after the other; "
        f"'{CLIENTS} clients' is {CONCURRENT.requests} batch-1 requests from {CLIENTS} threads at once, "
        "texts over the wall time. Peak RSS: the engine's process over its whole round (sampled every "
        f"50 ms, and its own high-water mark). Cosine: {fixed} texts (16 sentences, 8 each of 16, 64 "
        "and 250 tokens) in one request, against sentence-transformers' vectors. Tokens of a short / "
        f"long text as each engine counted them: {counted}. Largest |length − 1| of a vector as "
        f"returned: {lengths}. Busiest the machine was before a run: {results.busiest:.0%} CPU; the "
        f"most other processes took during one: {results.other_cpu:.0%} ({results.repeated} runs "
        "measured again for it)."
    )


def goals(results: Results, llama: str) -> str:
    """The issue's goals in one line: each figure, and whether it is met."""
    parts = []
    for batch, goal in GOALS.items():
        found = [ratio(results, shape.rate, "ovchat", llama) for shape in CELLS if shape.batch == batch]
        shown = ", ".join("n/a" if r is None else f"{r:.2f}×" for r in found)
        verdict = "met" if all(r is not None and r >= goal for r in found) else "NOT met"
        parts.append(
            f"≥ {goal:.1f}× its embeddings/s at batch {batch} (short, long texts: {shown}): {verdict}"
        )
    if REFERENCE in results.vectors:
        mean = statistics.mean(cosines(results.vectors["ovchat"], results.vectors[REFERENCE]))
        parts.append(
            f"at ≥ {MIN_COSINE} mean cosine ({mean:.5f}): {'met' if mean >= MIN_COSINE else 'NOT met'}"
        )
    memory = ratio(results, "peak RSS (MB)", "ovchat", REFERENCE)
    if memory is not None:
        parts.append(f"a fraction of torch's memory ({memory:.2f}×): {'met' if memory < 1 else 'NOT met'}")
    versus = f"llama-server ({llama.removeprefix('llama-')} GGUF)"
    return f"The issue's goals for ovchat against {versus}: " + "; ".join(parts) + "."


def llama_flags(options: argparse.Namespace) -> tuple[str, ...]:
    return tuple(options.llama_flags.split()) if options.llama_flags else LLAMA_FLAGS


def engines_wanted(options: argparse.Namespace) -> list[Engine]:
    flags = llama_flags(options)
    every = [
        ovchat_engine(options.model),
        ovchat_engine(options.model, "ovchat-f32", "ovchat (--precision f32)", "--precision", "f32"),
        ovchat_engine(
            options.model, "ovchat-unbatched", "ovchat (--encoder-batch 1)", "--encoder-batch", "1"
        ),
    ]
    if options.llama_server:
        every += [
            llama_engine(options.llama_server, Path(str(GGUF).format(t)), t, flags) for t in ("f16", "q8_0")
        ]
    every.append(torch_engine(SOURCE))
    wanted = set(options.engines.split(",")) if options.engines else {e.name for e in every}
    return [e for e in every if e.name in wanted]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=MODEL, help="ovchat's embedding model folder")
    parser.add_argument("--llama-server", type=Path, help="llama-server built from the vendored tree")
    parser.add_argument(
        "--llama-flags", help=f"llama-server's batching flags (default: {' '.join(LLAMA_FLAGS)})"
    )
    parser.add_argument(
        "--engines",
        help="a comma-separated subset of ovchat,ovchat-f32,ovchat-unbatched,llama-f16,llama-q8_0,torch",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="put the table in BENCHMARKS.md")
    options = parser.parse_args()
    words = vocabulary(SOURCE / "tokenizer.json")
    for shape in (*CELLS, CONCURRENT):
        asked = cell_requests(words, shape, 0)
        check_lengths(SOURCE / "tokenizer.json", [t for texts in asked for t in texts], shape.tokens)
    fixed = fidelity_set(words)
    engines = engines_wanted(options)
    results = Results()
    for round_ in range(options.rounds):
        turn = round_ % len(engines)
        for engine in engines[turn:] + engines[:turn]:
            measure_quiet(engine, words, fixed, round_, results)
            print(f"round {round_ + 1}: {engine.name} done", file=sys.stderr, flush=True)
    text = f"{notes(results, options.rounds, len(fixed), llama_flags(options))}\n\n{table(results, engines)}"
    llama = next((e.name for e in engines if e.name.startswith("llama")), None)
    if llama and "ovchat" in results.figures:
        text += f"\n\n{goals(results, llama)}"
    print(text)
    if options.write:
        replace_section("embed", f"## Embeddings\n\n{text}\n")


if __name__ == "__main__":
    main()
