"""Server metrics, rendered in the Prometheus text exposition format (no client library needed)."""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from dataclasses import dataclass, field

TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOKEN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Histogram:
    """A cumulative Prometheus histogram over fixed upper bounds (seconds)."""

    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            label = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{le="{label}"}} {running}')
        return [*out, f"{name}_sum {self.total:.6f}", f"{name}_count {self.count}"]


@dataclass
class ServerMetrics:
    """Counters and histograms shared by the HTTP layer and the engine thread (hence the lock)."""

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    generations: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    token_latency: Histogram = field(default_factory=lambda: Histogram(TOKEN_BUCKETS))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_request(self, path: str, status: int) -> None:
        with self._lock:
            self.requests[(path, status)] += 1

    def count_generation(self, outcome: str, prompt_tokens: int, completion_tokens: int) -> None:
        """One finished generation: outcome is stop, length, cancelled or failed."""
        with self._lock:
            self.generations[outcome] += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens

    def observe_ttft(self, seconds: float) -> None:
        with self._lock:
            self.ttft.observe(seconds)

    def observe_token_latency(self, seconds: float) -> None:
        with self._lock:
            self.token_latency.observe(seconds)

    def render(self, running: int, queued: int) -> str:
        """The whole exposition; `running` and `queued` are gauges read from the engine now."""
        with self._lock:
            requests = sorted(self.requests.items())
            lines = _header("ovchat_requests_total", "counter", "HTTP requests by path and status code.")
            lines += [f'ovchat_requests_total{{path="{p}",code="{c}"}} {n}' for (p, c), n in requests]
            lines += _header("ovchat_generations_total", "counter", "Generations by outcome.")
            lines += [
                f'ovchat_generations_total{{outcome="{o}"}} {n}' for o, n in sorted(self.generations.items())
            ]
            lines += _gauge(
                "ovchat_prompt_tokens_total", "counter", "Prompt tokens read.", self.prompt_tokens
            )
            lines += _gauge(
                "ovchat_completion_tokens_total", "counter", "Tokens made.", self.completion_tokens
            )
            lines += _header("ovchat_time_to_first_token_seconds", "histogram", "Arrival to first token.")
            lines += self.ttft.lines("ovchat_time_to_first_token_seconds")
            lines += _header("ovchat_time_per_output_token_seconds", "histogram", "Gap between tokens.")
            lines += self.token_latency.lines("ovchat_time_per_output_token_seconds")
        lines += _gauge("ovchat_requests_running", "gauge", "Requests in the batch now.", running)
        lines += _gauge("ovchat_requests_queued", "gauge", "Requests waiting for a batch slot.", queued)
        return "\n".join(lines) + "\n"


def _header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _gauge(name: str, kind: str, help_text: str, value: int) -> list[str]:
    return [*_header(name, kind, help_text), f"{name} {value}"]
