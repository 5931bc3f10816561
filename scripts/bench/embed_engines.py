"""The engines `make bench-embed` compares, behind one interface: a server answering OpenAI's
POST /v1/embeddings (ovchat serve, llama-server), or sentence-transformers in a worker process of its
own (scripts/bench/embed_torch.py: in-process calls, no HTTP); the peak memory of each, and the CPU
other processes took meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import httpx

from lib.processes import tree, tree_memory_mb
from lib.server import ServerProcess

ROUTE = "/v1/embeddings"
TICKS = os.sysconf("SC_CLK_TCK")  # /proc's unit of CPU time


class Running(Protocol):
    """One engine, started: what a round asks of it."""

    @property
    def pid(self) -> int: ...

    def timed(self, requests: list[list[str]]) -> list[float]:
        """Each request in turn (its texts in one call); the seconds each took."""
        ...

    def concurrent(self, clients: list[list[list[str]]]) -> float | None:
        """Every client's requests, the clients at once; the wall seconds (None: not a server)."""
        ...

    def vectors(self, texts: list[str]) -> list[list[float]]:
        """One request's vectors, in the order of its texts."""
        ...

    def tokens(self, texts: list[str]) -> list[int]:
        """Each text's length as the engine counts it."""
        ...

    def stop(self) -> None: ...


@dataclass
class Served:
    """A server answering POST /v1/embeddings."""

    server: ServerProcess
    model: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.server.url, timeout=600)

    @property
    def pid(self) -> int:
        return self.server.process.pid

    def post(self, client: httpx.Client, texts: list[str]) -> dict[str, Any]:
        response = client.post(ROUTE, json={"model": self.model, "input": texts})
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        if len(body["data"]) != len(texts):
            raise RuntimeError(f"{len(texts)} texts got {len(body['data'])} vectors")
        return body

    def timed(self, requests: list[list[str]]) -> list[float]:
        seconds = []
        for texts in requests:
            started = time.perf_counter()
            self.post(self.client, texts)
            seconds.append(time.perf_counter() - started)
        return seconds

    def concurrent(self, clients: list[list[list[str]]]) -> float:
        """Each client on a connection of its own, opened before the clock starts."""
        ready = threading.Barrier(len(clients) + 1)
        errors: list[BaseException] = []

        def client(requests: list[list[str]]) -> None:
            try:
                with httpx.Client(base_url=self.server.url, timeout=600) as own:
                    own.get("/health")
                    ready.wait()
                    for texts in requests:
                        self.post(own, texts)
            except BaseException as error:
                errors.append(error)
                ready.abort()  # nobody waits for a client that failed before the start

        threads = [threading.Thread(target=client, args=(requests,)) for requests in clients]
        for thread in threads:
            thread.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return time.perf_counter() - started

    def vectors(self, texts: list[str]) -> list[list[float]]:
        data = sorted(self.post(self.client, texts)["data"], key=lambda item: int(item["index"]))
        return [list(item["embedding"]) for item in data]

    def tokens(self, texts: list[str]) -> list[int]:
        return [int(self.post(self.client, [text])["usage"]["prompt_tokens"]) for text in texts]

    def stop(self) -> None:
        self.client.close()
        self.server.stop()


class TorchWorker:
    """sentence-transformers in scripts/bench/embed_torch.py, asked over its stdin and stdout; it times
    its own encode() calls (in-process, no HTTP), and its stderr is shown only if it fails."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (the worker's stderr: closed in stop())
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env, text=True
        )
        self.read_line()  # {"ready": true}, once the model is loaded

    @property
    def pid(self) -> int:
        return self.process.pid

    def read_line(self) -> dict[str, Any]:
        """The worker's next answer; it answers every line or exits (then its stderr says why)."""
        line = self.pipe(self.process.stdout).readline()
        if not line:
            self.log.seek(0)
            tail = self.log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"the torch worker exited with {self.process.wait()}:\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    @staticmethod
    def pipe(stream: IO[str] | None) -> IO[str]:
        assert stream is not None
        return stream

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin = self.pipe(self.process.stdin)
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        return self.read_line()

    def timed(self, requests: list[list[str]]) -> list[float]:
        return [float(s) for s in self.ask({"time": requests})["seconds"]]

    def concurrent(self, clients: list[list[list[str]]]) -> None:
        return None  # a library has callers, not clients: its batch-32 figure is the batched one

    def vectors(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in self.ask({"vectors": texts})["vectors"]]

    def tokens(self, texts: list[str]) -> list[int]:
        return [int(n) for n in self.ask({"tokens": texts})["tokens"]]

    def stop(self) -> None:
        self.pipe(self.process.stdin).close()  # the worker's loop ends at end of input
        self.process.wait(60)
        self.log.close()


class PeakMemory:
    """The largest resident memory of a process tree over a run: its sum sampled every 50 ms, or the
    root process's own high-water mark (VmHWM), which catches a peak between two samples."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every, self.peak = pid, every, 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, tree_memory_mb(self.pid)[0])
            self.done.wait(self.every)

    def stop(self) -> float:
        """The peak in MB; call it while the process still runs."""
        self.done.set()
        self.thread.join()
        return max(self.peak, high_water_mb(self.pid))


def high_water_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class OtherCpu:
    """The share of the machine's CPU that processes other than the engine and this driver took over
    a span: what other work on a shared machine cost a measurement (0 on an idle one, up to rounding)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.started = self.read()

    def read(self) -> tuple[float, float, float]:
        """The machine's busy CPU seconds, the engine's and the driver's own, and the clock."""
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        busy = (sum(fields) - fields[3] - fields[4]) / TICKS  # all but idle and iowait (steal counts)
        own = sum(os.times()[:2]) + sum(process_cpu_s(member) for member in tree(self.pid))
        return busy, own, time.monotonic()

    def share(self) -> float:
        busy, own, now = self.read()
        other = (busy - self.started[0]) - (own - self.started[1])
        return max(0.0, other / ((now - self.started[2]) * (os.cpu_count() or 1)))


def process_cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process, all its threads (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS
