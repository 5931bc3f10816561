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
LOAD_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
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
        by_model = ["model"]
        self.generations = Counter(
            "ovchat_generations", "Generations by outcome.", ["model", "outcome"], registry=self.registry
        )
        self.prompt_tokens = Counter(
            "ovchat_prompt_tokens", "Prompt tokens read.", by_model, registry=self.registry
        )
        self.completion_tokens = Counter(
            "ovchat_completion_tokens", "Tokens made.", by_model, registry=self.registry
        )
        self.ttft = Histogram(
            "ovchat_time_to_first_token_seconds",
            "Arrival to first token.",
            by_model,
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.token_latency = Histogram(
            "ovchat_time_per_output_token_seconds",
            "Gap between tokens.",
            by_model,
            buckets=TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.steps = Counter(
            "ovchat_engine_steps",
            "Generation steps the engine ran (prefill chunks and decode).",
            by_model,
            registry=self.registry,
        )
        self.restarts = Counter(
            "ovchat_engine_restarts",
            "Pipeline rebuilds after a failed generation step.",
            by_model,
            registry=self.registry,
        )
        self.running = Gauge(
            "ovchat_requests_running", "Requests in the batch now.", by_model, registry=self.registry
        )
        self.queued = Gauge(
            "ovchat_requests_queued",
            "Requests waiting for a batch slot (or for their model to load).",
            by_model,
            registry=self.registry,
        )
        self.ready = Gauge(
            "ovchat_ready", "1 while the server takes requests, else 0.", registry=self.registry
        )
        self._add_model_series()

    def _add_model_series(self) -> None:
        """The series of the pool of models: loaded, loads, unloads, load time, memory."""
        by_model = ["model"]
        self.loaded = Gauge(
            "ovchat_model_loaded", "1 while the model is loaded, else 0.", by_model, registry=self.registry
        )
        self.loads = Counter(
            "ovchat_model_loads", "Model loads by outcome.", ["model", "outcome"], registry=self.registry
        )
        self.unloads = Counter(
            "ovchat_model_unloads",
            "Model unloads by reason (idle, room, asked, failed, shutdown).",
            ["model", "reason"],
            registry=self.registry,
        )
        self.load_seconds = Histogram(
            "ovchat_model_load_seconds",
            "Time to load a model (until it takes requests).",
            by_model,
            buckets=LOAD_BUCKETS,
            registry=self.registry,
        )
        self.encoder_runs = Counter(
            "ovchat_encoder_runs",
            "Inferences of an embedding model or reranker (concurrent embedding requests share one).",
            by_model,
            registry=self.registry,
        )
        self.encoded = Counter(
            "ovchat_encoded_texts",
            "Texts embedded, or documents ranked.",
            by_model,
            registry=self.registry,
        )
        self.model_bytes = Gauge(
            "ovchat_model_memory_bytes",
            "Memory the model is expected to take (measured at its last load).",
            by_model,
            registry=self.registry,
        )

    def watch(self, ready: Callable[[], float]) -> None:
        """Read the readiness gauge at each scrape."""
        self.ready.set_function(ready)

    def watch_model(
        self,
        model: str,
        running: Callable[[], float],
        queued: Callable[[], float],
        loaded: Callable[[], float],
        size: Callable[[], float],
    ) -> None:
        """Read one model's gauges from the pool at each scrape."""
        self.running.labels(model=model).set_function(running)
        self.queued.labels(model=model).set_function(queued)
        self.loaded.labels(model=model).set_function(loaded)
        self.model_bytes.labels(model=model).set_function(size)

    def for_model(self, model: str) -> ModelMetrics:
        return ModelMetrics(self, model)

    def count_load(self, model: str, ok: bool, seconds: float) -> None:
        self.loads.labels(model=model, outcome="ok" if ok else "failed").inc()
        if ok:
            self.load_seconds.labels(model=model).observe(seconds)

    def count_unload(self, model: str, reason: str) -> None:
        self.unloads.labels(model=model, reason=reason).inc()

    def count_request(self, path: str, status: int) -> None:
        self.requests.labels(path=path, code=str(status)).inc()

    def render(self) -> bytes:
        """The whole exposition, in Prometheus' text format."""
        return generate_latest(self.registry)


class ModelMetrics:
    """One model's view of the server's metrics: what its engine counts, under its `model` label."""

    def __init__(self, server: ServerMetrics, model: str) -> None:
        self.model = model
        self._generations = server.generations
        self._prompt_tokens = server.prompt_tokens.labels(model=model)
        self._completion_tokens = server.completion_tokens.labels(model=model)
        self._ttft = server.ttft.labels(model=model)
        self._token_latency = server.token_latency.labels(model=model)
        self._steps = server.steps.labels(model=model)
        self._restarts = server.restarts.labels(model=model)
        self._encoder_runs = server.encoder_runs.labels(model=model)
        self._encoded = server.encoded.labels(model=model)

    def count_generation(self, outcome: str, prompt_tokens: int, completion_tokens: int) -> None:
        """One finished generation: stop, length, cancelled, rejected or failed."""
        self._generations.labels(model=self.model, outcome=outcome).inc()
        self._prompt_tokens.inc(prompt_tokens)
        self._completion_tokens.inc(completion_tokens)

    def observe_ttft(self, seconds: float) -> None:
        self._ttft.observe(seconds)

    def observe_token_latency(self, seconds: float) -> None:
        self._token_latency.observe(seconds)

    def count_step(self) -> None:
        self._steps.inc()

    def count_restart(self) -> None:
        self._restarts.inc()

    def count_encoder_run(self, texts: int, tokens: int) -> None:
        """One inference of an embedding model or reranker over `texts` inputs of `tokens` tokens."""
        self._encoder_runs.inc()
        self._encoded.inc(texts)
        self._prompt_tokens.inc(tokens)
