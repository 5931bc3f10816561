"""Benchmark `ovchat serve`: aggregate tokens/s and TTFT at rising numbers of concurrent streams.

    build/venv/bin/python scripts/bench/bench_serve.py                      # starts a server itself
    build/venv/bin/python scripts/bench/bench_serve.py --url http://127.0.0.1:8000 --api-key KEY
    build/venv/bin/python scripts/bench/bench_serve.py --llama-server PATH --gguf FILE [--write]

Prints a markdown table. Every level runs N streaming requests at once, greedy, with include_usage
and eos ignored, each with a prompt the server has not seen (its prefix cache cannot help); levels
are interleaved over --rounds. "max /health ms" is the slowest /health answer seen meanwhile: how
long the event loop stalled.

With --llama-server, the same levels run side by side against llama.cpp's own server on the GGUF the
model was built from (one server up at a time, the engines' order alternating round by round), with
as many slots as the largest level has clients, so that it never queues a request; --write puts the
table in BENCHMARKS.md (`make bench-serve`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from lib.chat_stream import astream_chat, chat_body
from lib.machine import machine
from lib.sections import replace_section
from lib.server import ServerProcess, ovchat_serve, start_on_free_port
from lib.stats import percentile
from lib.workload import fresh_prompt


@dataclass(frozen=True)
class Run:
    ttft_s: float
    tokens: int


@dataclass(frozen=True)
class Level:
    clients: int
    runs: list[Run]
    wall_s: float
    worst_health_s: float

    @property
    def tokens_per_s(self) -> float:
        return sum(r.tokens for r in self.runs) / self.wall_s

    def ttft_ms(self, q: float) -> float:
        return 1000 * percentile((r.ttft_s for r in self.runs), q)


async def stream_one(client: httpx.AsyncClient, tag: str, index: int, max_tokens: int) -> Run:
    # A prompt new to the server: only the chat template's shared start can come from its prefix cache.
    messages = [{"role": "user", "content": fresh_prompt(tag, index)}]
    # ignore_eos: every request generates max_tokens, whatever its prompt.
    streamed = await astream_chat(client, chat_body(messages, max_tokens, ignore_eos=True))
    return Run(streamed.ttft_s, streamed.completion_tokens)


async def probe_health(client: httpx.AsyncClient, stop: asyncio.Event) -> float:
    worst = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        await client.get("/health")
        worst = max(worst, time.perf_counter() - started)
        await asyncio.sleep(0.02)
    return worst


async def run_level(url: str, api_key: str | None, clients: int, max_tokens: int, round_: int = 0) -> Level:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=clients + 2)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600, limits=limits) as client:
        stop = asyncio.Event()
        probe = asyncio.create_task(probe_health(client, stop))
        started = time.perf_counter()
        tag = f"{round_}.{clients}"
        runs = await asyncio.gather(*(stream_one(client, tag, i, max_tokens) for i in range(clients)))
        wall = time.perf_counter() - started
        stop.set()
        return Level(clients, list(runs), wall, await probe)


def llama_server_command(port: int, args: argparse.Namespace, slots: int) -> list[str]:
    """llama-server on the GGUF: `slots` parallel sequences of 512 tokens each, the same threads."""
    return [args.llama_server, "-m", str(args.gguf), "--port", str(port), "-t", str(args.threads),
            "-tb", str(args.threads), "-np", str(slots), "-c", str(512 * slots), "--no-webui"]  # fmt: skip


STARTUP_SECONDS = 300  # llama-server loading a GGUF of several GB included


def start(name: str, command: Callable[[int], list[str]]) -> ServerProcess:
    """A server whose output (a log line per request) is not printed among the results."""
    return start_on_free_port(command, what=name, timeout=STARTUP_SECONDS, quiet=True)


def measure(url: str, api_key: str | None, counts: list[int], max_tokens: int, round_: int) -> list[Level]:
    """One round: a warm-up answer, then every level once."""
    asyncio.run(run_level(url, api_key, 1, 8, -1 - round_))
    return [asyncio.run(run_level(url, api_key, n, max_tokens, round_)) for n in counts]


def table(rounds: list[list[Level]]) -> str:
    """One row per level: median tokens/s over the rounds; TTFT percentiles over all their requests."""
    rows = [
        "| clients | tokens | tokens/s (median) | × single | TTFT p50 ms | TTFT p95 ms | max /health ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = None
    for runs in zip(*rounds, strict=True):
        speed, every = pooled(runs)
        base = base or speed
        tokens = sum(r.tokens for r in runs[0].runs)
        rows.append(
            f"| {every.clients} | {tokens} | {speed:.1f} | {speed / base:.2f} | "
            f"{every.ttft_ms(0.5):.0f} | {every.ttft_ms(0.95):.0f} | "
            f"{1000 * max(lv.worst_health_s for lv in runs):.0f} |"
        )
    return "\n".join(rows)


def pooled(runs: tuple[Level, ...]) -> tuple[float, Level]:
    """The median tokens/s of a level over the rounds, and all its requests as one level."""
    return statistics.median(lv.tokens_per_s for lv in runs), Level(
        runs[0].clients, [r for lv in runs for r in lv.runs], 0.0, 0.0
    )


def side_by_side(ours: list[list[Level]], theirs: list[list[Level]]) -> str:
    """One row per level: both engines' median tokens/s, their ratio, and TTFT p50/p95 of each."""
    rows = [
        "| clients | ovchat tokens/s | llama-server tokens/s | ovchat ÷ llama-server "
        "| ovchat TTFT p50 / p95 ms | llama-server TTFT p50 / p95 ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for a, b in zip(zip(*ours, strict=True), zip(*theirs, strict=True), strict=True):
        (speed_a, all_a), (speed_b, all_b) = pooled(a), pooled(b)
        rows.append(
            f"| {all_a.clients} | {speed_a:.1f} | {speed_b:.1f} | {speed_a / speed_b:.2f}× | "
            f"{all_a.ttft_ms(0.5):.0f} / {all_a.ttft_ms(0.95):.0f} | "
            f"{all_b.ttft_ms(0.5):.0f} / {all_b.ttft_ms(0.95):.0f} |"
        )
    return "\n".join(rows)


def compare(args: argparse.Namespace, counts: list[int]) -> str:
    """ovchat serve and llama-server, one up at a time, order alternating round by round."""
    results: dict[str, list[list[Level]]] = {"ovchat": [], "llama-server": []}
    ours = ["--threads", str(args.threads), *args.server_arg]
    commands: dict[str, Callable[[int], list[str]]] = {
        "ovchat": lambda port: ovchat_serve(port, *ours),
        "llama-server": lambda port: llama_server_command(port, args, max(counts)),
    }
    for round_ in range(args.rounds):
        order = ["ovchat", "llama-server"] if round_ % 2 == 0 else ["llama-server", "ovchat"]
        for name in order:
            server = start(name, commands[name])
            try:
                results[name].append(measure(server.url, None, counts, args.max_tokens, round_))
            finally:
                server.stop()
            print(f"round {round_ + 1}: {name} done", file=sys.stderr, flush=True)
    return side_by_side(results["ovchat"], results["llama-server"])


def serve_section(args: argparse.Namespace, table_text: str) -> str:
    return (
        f"## Serving, side by side with llama-server\n\n"
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()} by `make bench-serve` "
        f"(`scripts/bench/bench_serve.py --llama-server`; {args.rounds} rounds, the engines' order "
        f"alternating, one server up at a time). `ovchat serve` on the default model's IR at its "
        f"default settings; llama-server built for this CPU from the llama-cpp-python sdist's vendored "
        f"tree, on the Q4_1 GGUF the IR was built from, with one slot per client of the largest level "
        f"(`-np {max(int(n) for n in args.clients.split(','))}`, 512 tokens each). Both on "
        f"{args.threads} threads. Every client streams one greedy answer of {args.max_tokens} tokens "
        f"(eos ignored) to a prompt new to the server; tokens/s is all clients' tokens over the wall "
        f"time of the level (median over the rounds), TTFT percentiles pool every request of the "
        f"level.\n\n{table_text}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--api-key")
    parser.add_argument("--clients", default="1,2,4,8,16", help="comma-separated concurrency levels")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="runs of every level (median tokens/s)")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `ovchat serve` argument")
    parser.add_argument("--llama-server", help="side by side with this llama-server binary (needs --gguf)")
    parser.add_argument(
        "--gguf", type=Path, help="the GGUF llama-server runs: the one the model was built from"
    )
    parser.add_argument("--threads", type=int, default=2, help="both engines' threads (side by side)")
    parser.add_argument("--write", action="store_true", help="put the side-by-side table in BENCHMARKS.md")
    args = parser.parse_args()
    counts = [int(n) for n in args.clients.split(",")]
    if args.llama_server:
        if args.gguf is None or not args.gguf.is_file():
            parser.error("--llama-server needs --gguf, the GGUF file the model was built from")
        text = serve_section(args, compare(args, counts))
        print(text)
        if args.write:
            replace_section("serve", text)
        return
    server = None if args.url else start("ovchat", lambda port: ovchat_serve(port, *args.server_arg))
    url = server.url if server else args.url
    try:
        # Levels interleaved round by round, so that machine drift hits them all alike.
        rounds = [measure(url, args.api_key, counts, args.max_tokens, r) for r in range(args.rounds)]
    finally:
        if server is not None:
            server.stop()
    print(f"{args.rounds} rounds, levels interleaved; {args.max_tokens} tokens per request (eos ignored)\n")
    print(table(rounds))


if __name__ == "__main__":
    main()
