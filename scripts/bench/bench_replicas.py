"""Benchmark replicas: aggregate tokens/s of three `ovchat serve` replicas behind HAProxy against one.

    build/venv/bin/python scripts/bench/bench_replicas.py             # 16 clients, 3 rounds
    build/venv/bin/python scripts/bench/bench_replicas.py --clients 8 --server-arg=--no-prefix-cache

Starts three replicas and two HAProxy processes on deploy/haproxy/haproxy.cfg as shipped: one over
the three replicas, one whose three server lines all point at the first replica (the same proxy
path with one process behind it). Each round sends the same load through both, in alternating
order so that drift in the machine's load hits both alike: --clients concurrent workers send
--requests greedy chat requests of --max-tokens tokens each (eos ignored, every prompt new, so the
prefix cache cannot help). Prints a markdown table, with the CPU that other processes took during
the rounds (the machine may be shared: figures taken while others ran are not comparable).

Replicas add CPU only where there are idle cores: one replica's batching already keeps every core
busy, so on a small machine expect about 1x (or less: three processes then compete for the cores).
Replicas buy failover there, not speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from lib.paths import ROOT
from lib.ports import free_port
from lib.server import ServerProcess, ovchat_serve, start_on_free_port, wait_ready
from lib.stats import percentile
from lib.workload import fresh_prompt

CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
HAPROXY = "/usr/sbin/haproxy"
STARTUP_SECONDS = 180


@dataclass(frozen=True)
class Round:
    tokens: int
    wall_s: float
    latencies_s: list[float]
    others_cores: float = 0.0  # CPU that processes outside the benchmark took meanwhile, in cores

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s(pids: list[int]) -> float:
    """CPU seconds used by this process and the replicas and balancers it started."""
    total = sum(os.times()[:2])
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def measured(pids: list[int], load: Coroutine[Any, Any, Round]) -> Round:
    """Run `load`, noting the CPU that others took meanwhile: the machine is shared, and they slow it."""
    busy, own = busy_cpu_s(), own_cpu_s(pids)
    result = asyncio.run(load)
    others = (busy_cpu_s() - busy) - (own_cpu_s(pids) - own)
    return replace(result, others_cores=max(0.0, others) / result.wall_s)


def start_replica(extra: list[str]) -> ServerProcess:
    return start_on_free_port(
        lambda port: ovchat_serve(port, *extra), what="a replica", timeout=STARTUP_SECONDS
    )


def start_balancer(replicas: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    """HAProxy on the shipped config; its /health is the first ready replica's, proxied.

    Its ports are in its environment, not its arguments: it is started here, not by lib.server
    (which passes a port in the arguments), and a port taken meanwhile fails the run."""
    bind = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "OVCHAT_LB_BIND": bind, "OVCHAT_LB_STATS": f"127.0.0.1:{free_port()}"}
    env.update({f"OVCHAT_REPLICA_{n}": address for n, address in enumerate(replicas, 1)})
    quiet = subprocess.DEVNULL  # its request log
    process = subprocess.Popen([HAPROXY, "-db", "-f", str(CONFIG)], env=env, stdout=quiet, stderr=quiet)
    return process, f"http://{bind}"


async def one_request(client: httpx.AsyncClient, tag: str, index: int, max_tokens: int) -> tuple[int, float]:
    # A prompt new to the server, so neither run is helped by a prefix seen before.
    body = {
        "messages": [{"role": "user", "content": fresh_prompt(tag, index)}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }
    started = time.perf_counter()
    response = await client.post("/v1/chat/completions", json=body)
    response.raise_for_status()
    return response.json()["usage"]["completion_tokens"], time.perf_counter() - started


async def run_round(url: str, clients: int, requests: int, max_tokens: int, tag: str) -> Round:
    """`clients` workers share `requests` requests; aggregate tokens over the wall time of all."""
    numbers = iter(range(requests))
    results: list[tuple[int, float]] = []
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def worker() -> None:
            for index in numbers:
                results.append(await one_request(client, tag, index, max_tokens))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    return Round(sum(t for t, _ in results), wall, [s for _, s in results])


def table(rounds: dict[str, list[Round]]) -> str:
    rows = [
        "| behind HAProxy | tokens/s (median) | min–max | × one replica | latency p50 s | latency p95 s "
        "| others' CPU (cores, max) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = statistics.median(r.tokens_per_s for r in rounds["1 replica"])
    for name, runs in rounds.items():
        speeds = [r.tokens_per_s for r in runs]
        latencies = [s for r in runs for s in r.latencies_s]
        p95 = percentile(latencies, 0.95)
        rows.append(
            f"| {name} | {statistics.median(speeds):.0f} | {min(speeds):.0f}–{max(speeds):.0f} | "
            f"{statistics.median(speeds) / base:.2f} | {statistics.median(latencies):.2f} | {p95:.2f} | "
            f"{max(r.others_cores for r in runs):.2f} |"
        )
    return "\n".join(rows)


def start_targets(processes: list[subprocess.Popen[bytes]], server_args: list[str]) -> dict[str, str]:
    """Three replicas, and a balancer over them and one whose three lines all point at the first:
    each target's URL, once ready. Every process started joins `processes` (the caller stops them)."""
    replicas = []
    for _ in range(3):
        replicas.append(start_replica(server_args))
        processes.append(replicas[-1].process)
    addresses = [r.url.removeprefix("http://") for r in replicas]
    targets = {}
    for name, behind in (("1 replica", [addresses[0]] * 3), ("3 replicas", addresses)):
        process, url = start_balancer(behind)
        processes.append(process)
        wait_ready(url, process, f"HAProxy for {name}", STARTUP_SECONDS)
        targets[name] = url
    return targets


def run_rounds(targets: dict[str, str], pids: list[int], args: argparse.Namespace) -> dict[str, list[Round]]:
    """Each round sends the same load through every target, the order alternating round by round."""
    rounds: dict[str, list[Round]] = {name: [] for name in targets}
    for number in range(args.rounds):
        order = list(targets) if number % 2 == 0 else list(reversed(targets))
        for name in order:
            tag = f"{number}-{name}"  # new prompts for each: replica 1 serves both targets
            result = measured(
                pids, run_round(targets[name], args.clients, args.requests, args.max_tokens, tag)
            )
            rounds[name].append(result)
            print(
                f"round {number + 1}, {name}: {result.tokens_per_s:.0f} tokens/s, "
                f"others took {result.others_cores:.2f} cores",
                file=sys.stderr,
            )
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent requests")
    parser.add_argument("--requests", type=int, default=64, help="requests per round and target")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra `ovchat serve` argument (repeatable; can override the --kv-cache-tokens 4096 given)",
    )
    args = parser.parse_args()
    if not Path(HAPROXY).exists():
        raise SystemExit(f"needs {HAPROXY}: bash scripts/dev/system_deps.sh installs it")
    server_args = ["--kv-cache-tokens", "4096", *args.server_arg]  # three caches share the memory
    processes: list[subprocess.Popen[bytes]] = []
    try:
        targets = start_targets(processes, server_args)
        for name, url in targets.items():
            asyncio.run(run_round(url, args.clients, args.clients, 8, f"warm-{name}"))  # every replica warm
        load_before = os.getloadavg()  # before anything of ours runs: how busy others keep the machine
        rounds = run_rounds(targets, [p.pid for p in processes], args)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait()
    print(
        f"{os.cpu_count()} cores; {args.rounds} rounds, alternating; {args.clients} clients, "
        f"{args.requests} requests of {args.max_tokens} tokens (eos ignored) per round and target; "
        f"load average before {load_before[0]:.2f} (1 min)\n"
    )
    print(table({name: rounds[name] for name in ("1 replica", "3 replicas")}))


if __name__ == "__main__":
    main()
