"""Replicas behind a real load balancer: three `ovchat serve` processes behind HAProxy, run with the
shipped deploy/haproxy/haproxy.cfg, under a bounded load of OpenAI SDK requests while one replica is
SIGKILLed and another gets SIGTERM. Every request completes: HAProxy replays what a dead replica never
answered, a stream cut off mid-answer reaches the client as a retryable error that its retry turns
into an answer, and the stopped replica leaves through its --drain-delay without dropping anything.

Throughput of 3 replicas against 1 is measured by scripts/bench/bench_replicas.py, not asserted here.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest

from conftest import ROOT, require_programs
from servers import Server, free_port, start_server

HAPROXY = "/usr/sbin/haproxy"
CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
# A small KV cache each (three replicas share the memory); a drain delay well above the 1.5 s HAProxy's
# checks take to notice, so that a loaded machine (a slow check) still leaves time.
REPLICA_OPTIONS = ("--kv-cache-tokens", "1024", "--drain-delay", "5")
REQUESTS, CLIENTS, TOKENS = 240, 12, 16
RESTARTS = 3  # whole-request retries by the client after the SDK's own retries (a broken stream)
TIME_LIMIT_S = 150  # bounded: the load stops itself


@dataclass
class Balancer:
    """HAProxy running the shipped config, its addresses filled in from the environment."""

    process: subprocess.Popen[bytes]
    base: str
    stats: str
    log: Path

    def servers(self) -> dict[str, dict[str, str]]:
        """The stats page's rows (status, retries, redispatches, ...) by server name, BACKEND included."""
        text = httpx.get(f"{self.stats}/stats;csv").text.lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(io.StringIO(text)) if row["pxname"] == "ovchat"}

    def wait_for(self, statuses: dict[str, str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                rows = self.servers()
            except httpx.TransportError:  # not listening yet
                rows = {}
            if rows and all(rows[name]["status"].startswith(status) for name, status in statuses.items()):
                return
            time.sleep(0.1)
        raise AssertionError(f"HAProxy's servers are not {statuses}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=10)


def balancer_env(replicas: list[str]) -> dict[str, str]:
    ports = {"OVCHAT_LB_BIND": f"127.0.0.1:{free_port()}", "OVCHAT_LB_STATS": f"127.0.0.1:{free_port()}"}
    return {**os.environ, **ports, **{f"OVCHAT_REPLICA_{n}": r for n, r in enumerate(replicas, 1)}}


def start_balancer(replicas: list[str], log: Path) -> Balancer:
    env = balancer_env(replicas)
    with log.open("wb") as out:  # HAProxy keeps its own copy of the descriptor
        process = subprocess.Popen([HAPROXY, "-db", "-f", str(CONFIG)], env=env, stdout=out, stderr=out)
    return Balancer(process, f"http://{env['OVCHAT_LB_BIND']}", f"http://{env['OVCHAT_LB_STATS']}", log)


@pytest.fixture(scope="module")
def replicas(model_dir: Path) -> Iterator[list[Server]]:
    require_programs(HAPROXY)
    with ThreadPoolExecutor(3) as pool:
        started = list(pool.map(lambda _: start_server(model_dir, *REPLICA_OPTIONS), range(3)))
    yield started
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def balancer(replicas: list[Server], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balancer]:
    log = tmp_path_factory.mktemp("haproxy") / "haproxy.log"
    started = start_balancer([s.base.removeprefix("http://") for s in replicas], log)
    started.wait_for({"replica1": "UP", "replica2": "UP", "replica3": "UP"})
    yield started
    started.stop()


def test_the_shipped_haproxy_config_is_valid() -> None:
    require_programs(HAPROXY)
    check = subprocess.run(
        [HAPROXY, "-c", "-f", str(CONFIG)], env=balancer_env(["127.0.0.1:1"] * 3), capture_output=True
    )
    assert check.returncode == 0, check.stderr.decode()


def test_with_no_replica_to_answer_haproxy_says_503_with_retry_after_in_openai_shape(tmp_path: Path) -> None:
    require_programs(HAPROXY)
    nowhere = [f"127.0.0.1:{free_port()}" for _ in range(3)]  # nothing listens there
    balancer = start_balancer(nowhere, tmp_path / "haproxy.log")
    try:
        balancer.wait_for({"BACKEND": "DOWN"})
        answer = httpx.post(f"{balancer.base}/v1/chat/completions", json={"messages": []})
    finally:
        balancer.stop()
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json()["error"]["code"] == "no_replica"


def test_sigterm_with_a_drain_delay_says_503_on_health_and_keeps_serving(model_dir: Path) -> None:
    own = start_server(model_dir, "--drain-delay", "600")  # the second SIGTERM ends the wait
    try:
        own.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        health = httpx.get(f"{own.base}/health")
        while health.status_code == 200 and time.monotonic() < deadline:  # until the signal is handled
            health = httpx.get(f"{own.base}/health")
        assert health.status_code == 503 and health.headers["Retry-After"] == "1"
        assert health.json()["status"] == "draining"
        body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
        answer = httpx.post(f"{own.base}/v1/chat/completions", json=body, timeout=60)
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
        assert httpx.get(f"{own.base}/live").status_code == 200
        assert own.process.poll() is None
        own.process.send_signal(signal.SIGTERM)
        assert own.process.wait(timeout=60) == 0
    finally:
        own.stop()


@dataclass
class Tally:
    """What happened to the requests: each is completed (first try or retried) or lost."""

    sent: int = 0
    completed: int = 0
    retried: int = 0  # completed, but after more than one HTTP attempt
    attempts: int = 0  # HTTP requests the clients made, the SDK's retries included
    restarts: int = 0  # whole requests the client sent again (a stream broken off mid-answer)
    restarted_after: Counter[str] = field(default_factory=Counter)  # what made the client send it again
    lost: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def answer(client: openai.OpenAI, number: int) -> str | None:
    """One request (odd numbers stream); its finish reason, or None when it ended without one."""
    messages = [{"role": "user", "content": f"Question {number}: name one colour."}]
    common = {"model": "ovchat", "messages": messages, "max_tokens": TOKENS, "temperature": 0}
    if number % 2:
        finish, text = None, ""
        for chunk in client.chat.completions.create(**common, stream=True):  # type: ignore[call-overload]
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        return finish if text else None
    reply = client.chat.completions.create(**common)  # type: ignore[call-overload]
    return reply.choices[0].finish_reason if reply.choices[0].message.content else None


def send_all(base: str, tally: Tally, deadline: float) -> None:
    """Worker: take request numbers until none are left, each answered or given up on."""
    attempts = 0

    def count(_: httpx.Request) -> None:
        nonlocal attempts
        attempts += 1

    with httpx.Client(event_hooks={"request": [count]}, timeout=60) as http:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=4, http_client=http)
        while True:
            with tally.lock:
                if tally.sent == REQUESTS:
                    return
                number, tally.sent = tally.sent, tally.sent + 1
            before = attempts
            problem = ask_until_answered(client, number, tally, deadline)
            with tally.lock:
                tally.attempts += attempts - before
                if problem:
                    tally.lost.append(f"request {number}: {problem}")
                else:
                    tally.completed += 1
                    tally.retried += attempts - before > 1


def ask_until_answered(client: openai.OpenAI, number: int, tally: Tally, deadline: float) -> str:
    """Send the request again after a retryable failure the SDK did not retry; "" once answered."""
    problem = "out of time"
    for restart in range(RESTARTS + 1):
        if time.monotonic() > deadline:
            break
        if restart:
            with tally.lock:
                tally.restarts += 1
                tally.restarted_after[problem] += 1
        try:
            if answer(client, number) in ("stop", "length"):
                return ""
            problem = "ended without a finish reason"
        except (openai.APIConnectionError, openai.InternalServerError) as exc:  # 5xx or cut off: retryable
            problem = type(exc).__name__
        except openai.APIError as exc:  # a 4xx: retrying would not help
            return repr(exc)
    return problem


def wait_until(condition: Callable[[], bool], deadline: float) -> None:
    while not condition():
        assert time.monotonic() < deadline, "the load ended before the failure could be injected"
        time.sleep(0.05)


@pytest.mark.stress
def test_a_killed_and_a_stopped_replica_lose_no_request(replicas: list[Server], balancer: Balancer) -> None:
    killed, stopped, survivor = replicas
    tally = Tally()
    deadline = time.monotonic() + TIME_LIMIT_S
    began = time.perf_counter()
    workers = [
        threading.Thread(target=send_all, args=(balancer.base, tally, deadline)) for _ in range(CLIENTS)
    ]
    for worker in workers:
        worker.start()

    # SIGKILL a quarter of the way in, while the replica is generating; SIGTERM at half way.
    wait_until(lambda: tally.completed >= REQUESTS // 4, deadline)
    wait_until(lambda: killed.metric("ovchat_requests_running") > 0, deadline)
    killed.process.kill()
    wait_until(lambda: tally.completed >= REQUESTS // 2, deadline)
    stopped.process.send_signal(signal.SIGTERM)
    stopped_exit = stopped.process.wait(timeout=60)
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began

    rows = balancer.servers()
    lb_retries, lb_redispatches = int(rows["BACKEND"]["wretr"] or 0), int(rows["BACKEND"]["wredis"] or 0)
    statuses = {name: row["status"] for name, row in rows.items() if name != "BACKEND"}

    # Connection errors, response errors, retries and aborts by HAProxy's count, of the stopped replica
    # and of the one left running: only the killed one may have any.
    def errors(name: str) -> dict[str, int]:
        return {key: int(rows[name][key] or 0) for key in ("econ", "eresp", "wretr", "srv_abrt")}

    stopped_errors, survivor_errors = errors("replica2"), errors("replica3")
    print(
        f"\nfailover, {REQUESTS} requests by {CLIENTS} clients in {elapsed:.0f} s: sent {tally.sent}, "
        f"completed {tally.completed}, retried {tally.retried}, lost {len(tally.lost)}; HTTP attempts "
        f"{tally.attempts}, whole requests sent again {tally.restarts} {dict(tally.restarted_after)}; "
        f"HAProxy retries {lb_retries}, redispatches {lb_redispatches}; servers {statuses}; "
        f"errors on the stopped replica {stopped_errors}, on the survivor {survivor_errors}"
    )
    assert tally.lost == [], tally.lost[:5]
    assert tally.sent == tally.completed == REQUESTS
    assert stopped_exit == 0  # SIGTERM: it drained, finished what it held and exited cleanly
    # ... and HAProxy stopped sending during its drain delay, before it stopped listening: not one
    # connection to it failed, not one answer of it was cut.
    assert not any(stopped_errors.values()), stopped_errors
    # ... and no request to a live replica was retried: HAProxy closes each connection to a replica
    # itself (http-server-close), so none races the replica's keep-alive timeout.
    assert not any(survivor_errors.values()), survivor_errors
    # The kill hit running answers: someone had to retry them (HAProxy or the client), and did.
    assert tally.retried + lb_retries + lb_redispatches > 0
    assert rows["replica3"]["status"].startswith("UP") and survivor.process.poll() is None
    assert not rows["replica1"]["status"].startswith("UP")
