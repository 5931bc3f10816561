"""Load: 1,000 chat requests at 16 at a time over loopback, bounded in time. Every request gets a
whole answer or a 503 with Retry-After that a retry turns into one: 0 server errors, 0 lost."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servers import Server, start_server

REQUESTS, CONCURRENCY, TOKENS = 1000, 16, 8
TIME_LIMIT_S = 600  # bounded: the test stops itself


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[Server]:
    started = start_server(model_dir, "--max-batch", "8", "--max-queue", "4")  # small: the 503 path is taken
    yield started
    started.stop()


@pytest.mark.stress
def test_a_thousand_requests_at_sixteen_at_a_time_all_get_answers(server: Server) -> None:
    rss_before = server.metric("process_resident_memory_bytes") / 1e6
    latencies: list[float] = []
    outcomes = {"answered": 0, "retried": 0, "server_error": 0, "lost": 0}
    lock = threading.Lock()
    numbers = iter(range(REQUESTS))
    deadline = time.monotonic() + TIME_LIMIT_S

    def worker() -> None:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            for number in numbers:
                body = {
                    "messages": [{"role": "user", "content": f"Question {number}: name a colour."}],
                    "max_tokens": TOKENS,
                    "ignore_eos": True,
                }
                started = time.perf_counter()
                outcome = "lost"
                while time.monotonic() < deadline:
                    try:
                        response = client.post("/v1/chat/completions", json=body)
                    except httpx.HTTPError:
                        break
                    if response.status_code == 503 and response.headers.get("Retry-After"):
                        with lock:
                            outcomes["retried"] += 1
                        time.sleep(0.05)  # a client honouring Retry-After would wait longer; this is a stress
                        continue
                    if response.status_code >= 500:
                        outcome = "server_error"
                    elif (
                        response.status_code == 200
                        and response.json()["usage"]["completion_tokens"] == TOKENS
                    ):
                        outcome = "answered"
                    break
                with lock:
                    outcomes[outcome] += 1
                    latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    server.wait_idle()
    rss_after = server.metric("process_resident_memory_bytes") / 1e6
    p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=20)[18]
    print(
        f"\n{REQUESTS} requests, {CONCURRENCY} at a time, {elapsed:.0f} s: {outcomes}; latency p50 "
        f"{p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms; RSS {rss_before:.0f} -> {rss_after:.0f} MB"
    )
    assert outcomes["answered"] == REQUESTS, outcomes
    assert outcomes["retried"] > 0  # the queue did fill: the 503 path was exercised
