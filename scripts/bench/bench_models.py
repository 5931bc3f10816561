"""Benchmark several models in one server: a cold model's first token (its load included) against a
warm one's, the stall one model's load causes in another model's stream, resident memory through
load/unload cycles, and an alternating flood between two models that do not fit together — ovchat
beside llama-server's router mode (--models-dir, --models-max) on the same GGUF where it applies.

    build/venv/bin/python scripts/bench/bench_models.py --gguf FILE [--llama-server PATH] [--write]

ovchat serves the default model (its IR) under two names, "one" and "two"; llama-server's router
serves the GGUF the default model was built from, under two file names, each model in a child
process of its own. Both with 2 threads' worth of CPU (the machine's), greedy, eos ignored.
--write puts the table in BENCHMARKS.md ("Several models in one server").
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from lib.chat_stream import StreamReader, chat_body
from lib.machine import machine
from lib.paths import ROOT
from lib.processes import tree_memory_mb
from lib.sections import replace_section
from lib.server import ServerProcess, ovchat_serve, start_on_free_port
from lib.stats import cell, percentile

DEFAULT_MODEL = ROOT / "build" / "models" / "smollm2-135m-instruct-int4"
MB = 1024**2
PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


@dataclass
class Peer:
    """One server under test: how to start it, and load and unload a model."""

    name: str
    start: Callable[[int], ServerProcess]
    load: Callable[[str, str], None]
    unload: Callable[[str, str], None]
    models: tuple[str, str]


def memory(server: ServerProcess) -> float:
    """Resident bytes of a server and its children (llama-server's router runs a child per model)."""
    return tree_memory_mb(server.process.pid)[0] * MB


def ovchat_peer(model: Path, max_loaded: int, tmp: Path) -> Peer:
    two = tmp / "two"
    if not two.exists():
        shutil.copytree(model, two)  # a real second folder: nothing shared on disk either

    def start(_: int) -> ServerProcess:
        args = ["--model", f"one={model}", "--model", f"two={two}", "--max-loaded", str(max_loaded)]
        return start_on_free_port(lambda port: ovchat_serve(port, *args), what="ovchat", timeout=120)

    def load(url: str, model: str) -> None:
        httpx.post(f"{url}/v1/models/{model}/load", timeout=300).raise_for_status()

    def unload(url: str, model: str) -> None:
        httpx.post(f"{url}/v1/models/{model}/unload", timeout=300).raise_for_status()

    return Peer(
        "ovchat",
        start,
        load,
        unload,
        ("one", "two"),
    )


def llama_peer(binary: Path, gguf: Path, max_loaded: int, tmp: Path) -> Peer:
    folder = tmp / "gguf"
    folder.mkdir(exist_ok=True)
    for name in ("one", "two"):
        if not (folder / f"{name}.gguf").exists():
            shutil.copyfile(gguf, folder / f"{name}.gguf")

    def start(_: int) -> ServerProcess:
        def command(port: int) -> list[str]:
            flags = ["--models-max", str(max_loaded), "--threads", "2", "--ctx-size", "8192"]
            flags += ["--no-webui", "--log-disable", "--port", str(port)]
            return [str(binary), "--models-dir", str(folder), *flags]

        return start_on_free_port(command, what="llama-server", timeout=120, quiet=True)

    def load(url: str, model: str) -> None:
        httpx.post(f"{url}/models/load", json={"model": model}, timeout=300)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # the router answers at once; the child loads after
            body = {"model": model, "messages": PROMPT, "max_tokens": 1}
            if httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300).status_code == 200:
                return
            time.sleep(0.05)

    def unload(url: str, model: str) -> None:
        httpx.post(f"{url}/models/unload", json={"model": model}, timeout=300)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the child process exits after the answer
            cards = httpx.get(f"{url}/models", timeout=30).json()["data"]
            if next(card for card in cards if card["id"] == model)["status"]["value"] == "unloaded":
                return
            time.sleep(0.05)

    return Peer(
        "llama-server router",
        start,
        load,
        unload,
        ("one", "two"),
    )


def stream(url: str, model: str, tokens: int, times: list[float] | None = None) -> float:
    """A streamed answer of `tokens` tokens; its time to first token (and every chunk's time in `times`)."""
    reader = StreamReader()
    body = chat_body(PROMPT, tokens, model=model, ignore_eos=True)
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            reader.feed(line)
            if times is not None and line.startswith("data: {"):
                times.append(time.perf_counter())
    return reader.result().ttft_s


def cold_and_warm(peer: Peer, url: str) -> tuple[float, float]:
    """First token of a model just unloaded (its load included), then of the same model warm."""
    one = peer.models[0]
    peer.load(url, one)
    peer.unload(url, one)
    cold = stream(url, one, 8)
    warm = stream(url, one, 8)
    peer.unload(url, one)
    return cold, warm


def stall(peer: Peer, url: str) -> tuple[float, float, float]:
    """The longest gap between two chunks of one model's stream while the other model loads, against
    its median and 99th-percentile gaps with nothing loading."""
    one, two = peer.models
    peer.load(url, one)
    peer.unload(url, two)
    times: list[float] = []
    reader = threading.Thread(target=stream, args=(url, one, 400, times))
    reader.start()
    while len(times) < 60:
        time.sleep(0.01)
    began = time.perf_counter()
    peer.load(url, two)
    ended = time.perf_counter()
    reader.join()
    gaps = [(b, b - a) for a, b in itertools.pairwise(times)]
    during = [gap for at, gap in gaps if began <= at <= ended + 0.5] or [0.0]
    quiet = [gap for at, gap in gaps if at < began or at > ended + 0.5]
    return max(during), statistics.median(quiet), percentile(quiet, 0.99)


def cycles(peer: Peer, url: str, server: ServerProcess, count: int) -> list[float]:
    """Resident memory before the cycles, then after each unload of `count` load/unload cycles."""
    one, two = peer.models
    for model in (one, two):
        peer.unload(url, model)
    sizes = [memory(server)]
    for number in range(count):
        model = one if number % 2 == 0 else two
        peer.load(url, model)
        stream(url, model, 8)
        peer.unload(url, model)
        sizes.append(memory(server))
    return sizes


def flood(peer: Peer, url: str, seconds: float, clients: int = 4) -> tuple[int, int]:
    """Half the clients asking one model, half the other, for `seconds` (so requests alternate
    between two models that do not fit together): answers, and refusals (503)."""
    done, refused = [0], [0]
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        model = peer.models[index % 2]
        while time.monotonic() < stop:
            body = {"model": model, "messages": PROMPT, "max_tokens": 16, "ignore_eos": True}
            answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)
            (done if answer.status_code == 200 else refused)[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0], refused[0]


def measure(
    peer: Peer, flood_peer: Peer, rounds: int, cycle_count: int, flood_seconds: float
) -> dict[str, str]:
    server = peer.start(0)
    try:
        url = server.url
        started = memory(server)
        colds, warms, stalls, medians, p99s = [], [], [], [], []
        for _ in range(rounds):
            cold, warm = cold_and_warm(peer, url)
            colds.append(cold)
            warms.append(warm)
            worst, median, p99 = stall(peer, url)
            stalls.append(worst)
            medians.append(median)
            p99s.append(p99)
        sizes = cycles(peer, url, server, cycle_count)
    finally:
        server.stop()
    # The flood: both models cannot be loaded together (--models-max / --max-loaded 1).
    single = flood_peer.start(0)
    try:
        answered, refused = flood(peer, single.url, flood_seconds)
        loads = count_loads(peer, single.url)
    finally:
        single.stop()
    per_minute = "n/a" if loads is None else f"{loads * 60 / flood_seconds:.1f}"
    return {
        "cold first token (load included), s": cell(colds),
        "warm first token, s": cell(warms),
        "longest chunk gap while the other model loads, ms": cell([s * 1000 for s in stalls]),
        "chunk gap with nothing loading, median / p99, ms": f"{statistics.median(medians) * 1000:.0f} / "
        f"{statistics.median(p99s) * 1000:.0f}",
        "RSS at start, nothing loaded, MB": f"{started / MB:.0f}",
        "RSS with both unloaded, then after the 1st / 5th / last unload of a cycle, MB": " / ".join(
            f"{sizes[i] / MB:.0f}" for i in (0, 1, min(5, len(sizes) - 1), -1)
        ),
        f"flood, {flood_seconds:.0f} s, 2 clients on each model: answers / 503s / loads a minute": (
            f"{answered} / {refused} / {per_minute}"
        ),
    }


def count_loads(peer: Peer, url: str) -> float | None:
    if peer.name != "ovchat":
        return None
    text = httpx.get(f"{url}/metrics").text
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("ovchat_model_loads_total{")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ovchat's model folder")
    parser.add_argument("--gguf", type=Path, help="the GGUF for llama-server (the model's source)")
    parser.add_argument("--llama-server", type=Path, help="llama-server built from the vendored tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--flood-seconds", type=float, default=60.0)
    parser.add_argument("--write", action="store_true", help="put the table in BENCHMARKS.md")
    parser.add_argument("--section", default="models", help="the BENCHMARKS.md section it goes in")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        pairs = [(ovchat_peer(options.model, 2, tmp), ovchat_peer(options.model, 1, tmp))]
        if options.llama_server and options.gguf:
            binary, gguf = options.llama_server, options.gguf
            pairs.append((llama_peer(binary, gguf, 2, tmp), llama_peer(binary, gguf, 1, tmp)))
        results = {
            peer.name: measure(peer, flood_peer, options.rounds, options.cycles, options.flood_seconds)
            for peer, flood_peer in pairs
        }
    names = list(results)
    lines = [f"| | {' | '.join(names)} |", "|---|" + "---|" * len(names)]
    for row in results[names[0]]:
        lines.append(f"| {row} | {' | '.join(results[name].get(row, 'n/a') for name in names)} |")
    table = "\n".join(lines)
    header = (
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()} by `make bench-models` "
        f"(`scripts/bench/bench_models.py`; {options.rounds} rounds, median with min–max; {options.cycles} "
        f"load/unload cycles alternating the two models). ovchat: `{options.model.name}` under two names "
        "(two folders), `--max-loaded 2` (the flood: 1); llama-server's router mode: the GGUF it was built "
        "from under two names, each model in a child process, `--models-max 2` (the flood: 1)."
    )
    print(header + "\n\n" + table)
    if options.write:
        title = "Several models in one server" + (
            "" if options.section == "models" else f" ({options.section})"
        )
        replace_section(options.section, f"## {title}\n\n{header}\n\n{table}\n")


if __name__ == "__main__":
    main()
