"""Server metrics for Prometheus, kept by prometheus_client in a registry of the server's own.

The registry also carries prometheus_client's process collector: resident memory, CPU seconds,
open file descriptors, start time.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: noise for users
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOKEN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    """Counters and histograms shared by the HTTP layer and the engine thread (prometheus_client locks)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "ovchat_requests",
            "HTTP requests by path and status code.",
            ["path", "code"],
            registry=self.registry,
        )
        self.generations = Counter(
            "ovchat_generations", "Generations by outcome.", ["outcome"], registry=self.registry
        )
        self.prompt_tokens = Counter("ovchat_prompt_tokens", "Prompt tokens read.", registry=self.registry)
        self.completion_tokens = Counter("ovchat_completion_tokens", "Tokens made.", registry=self.registry)
        self.ttft = Histogram(
            "ovchat_time_to_first_token_seconds",
            "Arrival to first token.",
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.token_latency = Histogram(
            "ovchat_time_per_output_token_seconds",
            "Gap between tokens.",
            buckets=TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.steps = Counter(
            "ovchat_engine_steps",
            "Generation steps the engine ran (prefill chunks and decode).",
            registry=self.registry,
        )
        self.restarts = Counter(
            "ovchat_engine_restarts",
            "Pipeline rebuilds after a failed generation step.",
            registry=self.registry,
        )
        self.running = Gauge("ovchat_requests_running", "Requests in the batch now.", registry=self.registry)
        self.queued = Gauge(
            "ovchat_requests_queued", "Requests waiting for a batch slot.", registry=self.registry
        )
        self.ready = Gauge(
            "ovchat_ready", "1 while the server takes requests, else 0.", registry=self.registry
        )

    def watch(
        self, running: Callable[[], float], queued: Callable[[], float], ready: Callable[[], float]
    ) -> None:
        """Read the gauges from the engine at each scrape."""
        self.running.set_function(running)
        self.queued.set_function(queued)
        self.ready.set_function(ready)

    def count_request(self, path: str, status: int) -> None:
        self.requests.labels(path=path, code=str(status)).inc()

    def count_generation(self, outcome: str, prompt_tokens: int, completion_tokens: int) -> None:
        """One finished generation: stop, length, cancelled, rejected or failed."""
        self.generations.labels(outcome=outcome).inc()
        self.prompt_tokens.inc(prompt_tokens)
        self.completion_tokens.inc(completion_tokens)

    def observe_ttft(self, seconds: float) -> None:
        self.ttft.observe(seconds)

    def observe_token_latency(self, seconds: float) -> None:
        self.token_latency.observe(seconds)

    def count_step(self) -> None:
        self.steps.inc()

    def count_restart(self) -> None:
        self.restarts.inc()

    def render(self) -> bytes:
        """The whole exposition, in Prometheus' text format."""
        return generate_latest(self.registry)
