"""Benchmark `ovchat serve`: aggregate tokens/s and TTFT at rising numbers of concurrent streams.

    build/venv/bin/python scripts/bench_serve.py                      # starts a server itself
    build/venv/bin/python scripts/bench_serve.py --url http://127.0.0.1:8000 --api-key KEY

Prints a markdown table. Every level runs N streaming requests at once, greedy, with include_usage
and eos ignored, each with a prompt the server has not seen (its prefix cache cannot help); levels
are interleaved over --rounds. "max /health ms" is the slowest /health answer seen meanwhile: how
long the event loop stalled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

TOPICS = ["a lighthouse", "a robot", "the sea", "a mountain", "a city", "a forest", "a train", "the moon"]


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
        values = sorted(r.ttft_s for r in self.runs)
        return 1000 * values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def stream_one(client: httpx.AsyncClient, tag: str, index: int, max_tokens: int) -> Run:
    # The tag makes every prompt new, so the server's prefix cache cannot shorten a prefill that a
    # first-time request would pay (only the chat template's shared start can be reused).
    topic = TOPICS[index % len(TOPICS)]
    body = {
        "model": "bench",
        "messages": [
            {"role": "user", "content": f"Request {tag}-{index}: write a long story about {topic}."}
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,  # every request generates max_tokens, whatever its prompt
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started, ttft, tokens = time.perf_counter(), None, 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if ttft is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                ttft = time.perf_counter() - started
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return Run(ttft if ttft is not None else time.perf_counter() - started, tokens)


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


def start_server(extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ovchat = Path(sys.executable).parent / "ovchat"
    process = subprocess.Popen([str(ovchat), "serve", "--port", str(port), "--log-level", "warning", *extra])
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def table(rounds: list[list[Level]]) -> str:
    """One row per level: median tokens/s over the rounds; TTFT percentiles over all their requests."""
    rows = [
        "| clients | tokens | tokens/s (median) | × single | TTFT p50 ms | TTFT p95 ms | max /health ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = None
    for runs in zip(*rounds, strict=True):
        speed = statistics.median(lv.tokens_per_s for lv in runs)
        base = base or speed
        pooled = Level(runs[0].clients, [r for lv in runs for r in lv.runs], 0.0, 0.0)
        tokens = sum(r.tokens for r in runs[0].runs)
        rows.append(
            f"| {pooled.clients} | {tokens} | {speed:.1f} | {speed / base:.2f} | "
            f"{pooled.ttft_ms(0.5):.0f} | {pooled.ttft_ms(0.95):.0f} | "
            f"{1000 * max(lv.worst_health_s for lv in runs):.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--api-key")
    parser.add_argument("--clients", default="1,2,4,8,16", help="comma-separated concurrency levels")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="runs of every level (median tokens/s)")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `ovchat serve` argument")
    args = parser.parse_args()
    process, url = (None, args.url) if args.url else start_server(args.server_arg)
    try:
        asyncio.run(run_level(url, args.api_key, 1, 8, -1))  # warm-up
        counts = [int(n) for n in args.clients.split(",")]
        # Levels interleaved round by round, so that machine drift hits them all alike.
        rounds = [[asyncio.run(run_level(url, args.api_key, n, args.max_tokens, r)) for n in counts]
                  for r in range(args.rounds)]  # fmt: skip
    finally:
        if process is not None:
            process.terminate()
            process.wait()
    print(f"{args.rounds} rounds, levels interleaved; {args.max_tokens} tokens per request (eos ignored)\n")
    print(table(rounds))


if __name__ == "__main__":
    main()
