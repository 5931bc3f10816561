"""Benchmark `ovchat serve`: aggregate tokens/s and TTFT at rising numbers of concurrent streams.

    build/venv/bin/python scripts/bench_serve.py                      # starts a server itself
    build/venv/bin/python scripts/bench_serve.py --url http://127.0.0.1:8000 --api-key KEY

Prints a markdown table. Every level runs N streaming requests at once, greedy, with include_usage;
"max /health ms" is the slowest /health answer seen meanwhile: how long the event loop stalled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
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


async def stream_one(client: httpx.AsyncClient, index: int, max_tokens: int) -> Run:
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": f"Write a long story about {TOPICS[index % len(TOPICS)]}."}],
        "max_tokens": max_tokens,
        "temperature": 0,
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


async def run_level(url: str, api_key: str | None, clients: int, max_tokens: int) -> Level:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=clients + 2)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600, limits=limits) as client:
        stop = asyncio.Event()
        probe = asyncio.create_task(probe_health(client, stop))
        started = time.perf_counter()
        runs = await asyncio.gather(*(stream_one(client, i, max_tokens) for i in range(clients)))
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


def table(levels: list[Level]) -> str:
    base = levels[0].tokens_per_s
    rows = [
        "| clients | tokens | wall s | tokens/s | × single | TTFT p50 ms | TTFT p95 ms | max /health ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:
        rows.append(
            f"| {lv.clients} | {sum(r.tokens for r in lv.runs)} | {lv.wall_s:.2f} | {lv.tokens_per_s:.1f} | "
            f"{lv.tokens_per_s / base:.2f} | {lv.ttft_ms(0.5):.0f} | {lv.ttft_ms(0.95):.0f} | "
            f"{1000 * lv.worst_health_s:.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--api-key")
    parser.add_argument("--clients", default="1,2,4,8,16", help="comma-separated concurrency levels")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--server-arg", action="append", default=[], help="extra `ovchat serve` argument")
    args = parser.parse_args()
    process, url = (None, args.url) if args.url else start_server(args.server_arg)
    try:
        asyncio.run(run_level(url, args.api_key, 1, 8))  # warm-up
        levels = [
            asyncio.run(run_level(url, args.api_key, int(n), args.max_tokens))
            for n in args.clients.split(",")
        ]
    finally:
        if process is not None:
            process.terminate()
            process.wait()
    print(table(levels))


if __name__ == "__main__":
    main()
