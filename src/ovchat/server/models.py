"""The server's models: each an engine in a ModelPool (ovchat.model.pool), loaded on demand, leased
by each request from the event loop, unloaded when idle or to make room.

Loads and unloads run on one loader thread: never on the event loop, never on another model's
engine thread, so one model's load does not stall another model's streams. With one model served,
any `model` a request names is that model (as before there were several) and the engine giving up
stops the server; with several, each fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

from ovchat.errors import ModelNotFound, OvchatError, Unavailable, WrongKind
from ovchat.model.contract import CHAT, EMBEDDING, KIND_WORDS, RERANK
from ovchat.model.device import DeviceConfig
from ovchat.model.files import ModelFiles
from ovchat.model.memory import GB, default_budget, kv_token_bytes, model_bytes
from ovchat.model.pool import ModelPool
from ovchat.model.slots import Event, Lease, SlotState, SlotView, Work
from ovchat.prompt.template import ToolFormat
from ovchat.server.engine.encoders import EncoderRunner
from ovchat.server.engine.engine import Engine
from ovchat.server.engine.lifecycle import EngineState
from ovchat.server.metrics import ServerMetrics
from ovchat.server.settings import EngineConfig, PoolSettings

log = logging.getLogger("ovchat.server")
Fatal = Callable[[str], None]
Served = Engine | EncoderRunner  # a loaded chat model's engine, or an embedding model's or reranker's runner
# What a request of each kind is, for the error that names a model of another kind.
USES = {CHAT: "chat and completions", EMBEDDING: "/v1/embeddings", RERANK: "/v1/rerank"}


@dataclass(frozen=True)
class Facts:
    """What a model's chat template says about it, known from its first load on."""

    tool_format: ToolFormat | None
    thinks: bool | None


class EngineLoader:
    """Loads a model as a started engine (a chat model) or runner (an embedding model or reranker),
    ready for requests; unloads it by closing it."""

    def __init__(
        self,
        models: dict[str, ModelFiles],
        device: DeviceConfig,
        config: EngineConfig,
        metrics: ServerMetrics,
        on_fatal: Callable[[str, str], None],
        make_engine: Callable[[str], Served] | None = None,
    ) -> None:
        self.models, self.device, self.config, self.metrics = models, device, config, metrics
        self.on_fatal = on_fatal
        self.make_engine = make_engine or self._engine
        self.facts: dict[str, Facts] = {}

    def _engine(self, name: str) -> Served:
        files, metrics = self.models[name], self.metrics.for_model(name)
        if files.kind != CHAT:
            return EncoderRunner(files, self.device, metrics, self.config.encoder_batch)
        return Engine(files, self.device, self.config, metrics)

    def load(self, name: str) -> Served:
        engine = self.make_engine(name)
        started: list[bool] = []
        if not engine.started:  # (a test's stand-in may come started)
            # Only a failure after the load is the engine giving up; a failed load is this call's error.
            engine.start(lambda message: self.on_fatal(name, message) if started else None)
        if engine.lifecycle.settle() == EngineState.FAILED:
            engine.close(0)
            # Clients hear the model's name, not where the server keeps it (the log has the path).
            message = (engine.lifecycle.error or "the model failed to load").replace(
                f" at {self.models[name].path}", ""
            )
            raise OvchatError(message.replace(str(self.models[name].path), name))
        started.append(True)
        self.facts[name] = Facts(engine.tool_format, engine.thinks)
        return engine

    def unload(self, name: str, item: Served) -> None:
        item.close(0)  # idle: nothing runs

    def size(self, name: str) -> int:
        files, kv = self.models[name], self.config.kv_cache_gb * GB
        if files.kind != CHAT:
            return model_bytes(files)
        if self.config.kv_cache_tokens:
            kv = min(kv, self.config.kv_cache_tokens * kv_token_bytes(files))
        return model_bytes(files, kv)


class ServedModels:
    """The models behind the routes: which one a request means, a lease on it, their states."""

    def __init__(
        self,
        models: dict[str, ModelFiles],
        device: DeviceConfig,
        config: EngineConfig,
        metrics: ServerMetrics,
        settings: PoolSettings | None = None,
        make_engine: Callable[[str], Served] | None = None,
    ) -> None:
        if not models:
            raise OvchatError("no model to serve")
        self.files = models
        self.settings = settings or PoolSettings()
        self.metrics = metrics
        self.single = len(models) == 1
        self.default = next(iter(models))
        self.failure: str | None = None  # why the one model's engine gave up
        self.leaving = False  # SIGTERM's drain delay: /health says draining
        self.stopping = False
        self._on_fatal: Fatal | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ovchat-loader")
        self.loader = EngineLoader(models, device, config, metrics, self._engine_failed, make_engine)
        budget = self.settings.memory_budget_gb
        self.pool: ModelPool[Served] = ModelPool(
            models,
            self.loader,
            max_loaded=self.settings.max_loaded,
            memory_budget=int(budget * GB) if budget else default_budget(),
            keep_alive=self.settings.keep_alive,
            on_event=self._count,
        )
        preload = self.settings.preload or ((self.default,) if self.single else ())
        self.preload = tuple(self.resolve(name) for name in preload)
        self._tasks: list[asyncio.Future[None]] = []
        self._preloaded: set[str] = set()  # the preloads that have ended (loaded or failed)
        for name in models:
            metrics.watch_model(name, *self._gauges(name))

    # --- which model, and a lease on it ------------------------------------------------------------

    def resolve(self, requested: str | None, exact: bool = False, kind: str | None = None) -> str:
        """The served model a request means: with one served, any name means it; with several, the
        name must be one of them (no name: the first of the `kind` asked for). `exact`: the name must
        match. A model of another kind than `kind` is the request's error (WrongKind)."""
        if not exact and (self.single or requested is None):
            name = next((n for n, f in self.files.items() if f.kind == kind), self.default)
        elif requested in self.files:
            name = requested
        else:
            served = ", ".join(self.files)
            raise ModelNotFound(f"model '{requested}' is not served here; served: {served}")
        have = self.files[name].kind
        if kind is not None and have != kind:
            raise WrongKind(f"model '{name}' is {KIND_WORDS[have]}: it serves {USES[have]}, not {USES[kind]}")
        return name

    async def chat_lease(self, requested: str | None, keep_alive: float | None = None) -> Lease[Engine]:
        """A lease on the chat model the request names."""
        return cast(Lease[Engine], await self.lease(requested, keep_alive, kind=CHAT))

    async def encoder_lease(self, requested: str | None, kind: str) -> Lease[EncoderRunner]:
        """A lease on the embedding model or reranker the request names."""
        return cast(Lease[EncoderRunner], await self.lease(requested, kind=kind))

    async def lease(
        self,
        requested: str | None,
        keep_alive: float | None = None,
        wait: float | None = None,
        kind: str | None = None,
    ) -> Lease[Served]:
        """A lease on the model the request names, loading it first if it is not loaded (the request
        waits up to --load-wait while the models holding the memory are busy; then 503 + Retry-After)."""
        if self.stopping:
            raise Unavailable("the server is shutting down: retry on another replica", "shutting_down")
        name = self.resolve(requested, kind=kind)
        if self._preloading(name):
            # At start, as any server that is not ready yet: refused fast, /health says when.
            raise Unavailable("the model is still loading: retry shortly", "model_not_ready")
        return await self._lease(name, keep_alive, self.settings.load_wait if wait is None else wait)

    def _preloading(self, name: str) -> bool:
        if name not in self.preload or name in self._preloaded:
            return False
        return next(view.loads == 0 for view in self.pool.models() if view.name == name)

    async def _lease(self, name: str, keep_alive: float | None, wait: float) -> Lease[Served]:
        pool, loop = self.pool, asyncio.get_running_loop()
        changed = asyncio.Event()
        unsubscribe = pool.subscribe(lambda: self._wake(loop, changed))
        ticket = pool.enter(name, keep_alive)
        deadline = loop.time() + wait
        try:
            while True:
                changed.clear()
                got = pool.poll(ticket)
                if isinstance(got, Lease):
                    return got
                if isinstance(got, Work):
                    # Shielded: a client that leaves does not stop a load others may wait for.
                    await asyncio.shield(self.run(got))
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    raise pool.busy(name)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(left, 1.0))
        finally:
            pool.leave(ticket)
            unsubscribe()

    @staticmethod
    def _wake(loop: asyncio.AbstractEventLoop, changed: asyncio.Event) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(changed.set)

    def run(self, work: Work) -> asyncio.Future[None]:
        """Run a load or unload on the loader thread."""
        return asyncio.get_running_loop().run_in_executor(self._executor, work)

    # --- start, keep-alive, shutdown -----------------------------------------------------------------

    def start(self, on_fatal: Fatal | None = None) -> None:
        """Preload, as tasks of the running loop (the server answers meanwhile, /health says loading)."""
        self._on_fatal = on_fatal
        self._tasks = [asyncio.ensure_future(self._preload(name)) for name in self.preload]
        self._tasks.append(asyncio.ensure_future(self.keep_alive_sweeper()))

    async def load(self, name: str) -> None:
        """Load `name` now (again after a failed load), unloading idle models to make room."""
        self.pool.forget_failure(name)
        (await self._lease(name, None, float("inf"))).release()

    async def unload(self, name: str) -> None:
        """Unload an idle model now (ModelBusy while requests use it)."""
        work = self.pool.unload(name)
        if work is not None:
            await self.run(work)

    async def _preload(self, name: str) -> None:
        try:
            await self.load(name)
        except OvchatError as exc:
            self._engine_failed(name, str(exc))
        finally:
            self._preloaded.add(name)

    async def keep_alive_sweeper(self) -> None:
        """Unload the models idle past their keep-alive, as they expire (a task of the app's loop)."""
        while not self.stopping:
            for work in self.pool.expired():
                await self.run(work)
            due = self.pool.next_expiry()
            wait = 1.0 if due is None else min(1.0, max(0.01, due - self.pool.clock()))
            await asyncio.sleep(wait)

    def leave(self) -> None:
        self.leaving = True
        for engine in self._engines():
            engine.lifecycle.leave()

    def drain(self) -> None:
        self.stopping = True
        for engine in self._engines():
            engine.drain()

    def close(self, timeout: float) -> None:
        """Let every loaded engine finish its requests (up to `timeout` s), then stop the loader."""
        self.drain()
        for task in self._tasks:
            task.cancel()
        for engine in self._engines():
            engine.close(timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- what the routes and metrics read -------------------------------------------------------------

    def models(self) -> list[SlotView]:
        return self.pool.models()

    def engine(self, name: str) -> Served | None:
        return self.pool.loaded(name)

    def ready(self) -> bool:
        return self.health()[0]

    def health(self) -> tuple[bool, str, dict[str, str]]:
        """Whether the server takes requests, its status word, and each model's state."""
        states = {view.name: self._state_word(view) for view in self.models()}
        if self.single:
            engine = self.engine(self.default)
            if engine is not None:
                state = engine.lifecycle.health()
                return state.ready, state.status, states
            if self.stopping or self.leaving:
                return False, "draining", states
            if states[self.default] == "failed":
                return False, "failed", states
            # Unloaded after its keep-alive, it loads again on the next request: still ready.
            loaded_before = self.models()[0].loads > 0
            return (True, "ok", states) if loaded_before else (False, "loading", states)
        if self.leaving or self.stopping:
            return False, "draining", states
        waiting = [name for name in self.preload if states[name] in ("unloaded", "loading")]
        return (False, "loading", states) if waiting else (True, "ok", states)

    def alive(self) -> bool:
        """False once the one model's engine has given up (the process is on its way out)."""
        if not self.single:
            return True  # each model fails alone
        engine = self.engine(self.default)
        return self.failure is None and (engine is None or engine.lifecycle.alive)

    def _state_word(self, view: SlotView) -> str:
        engine = self.engine(view.name) if view.state == SlotState.LOADED else None
        if engine is not None and engine.state == EngineState.RECOVERING:
            return "recovering"
        return str(view.state)

    def _engines(self) -> list[Served]:
        return [engine for name in self.files if (engine := self.engine(name)) is not None]

    def _gauges(self, name: str) -> tuple[Callable[[], float], ...]:
        def running() -> float:
            engine = self.engine(name)
            return engine.running if engine else 0

        def queued() -> float:
            engine = self.engine(name)
            return (engine.queued if engine else 0) + self.pool.waiting(name)

        def size() -> float:
            return float(next(view.size for view in self.pool.models() if view.name == name))

        return running, queued, lambda: float(self.pool.state(name) == SlotState.LOADED), size

    def _count(self, event: Event) -> None:
        if event.kind == "unloaded":
            self.metrics.count_unload(event.name, event.reason)
            log.info("model %s unloaded (%s)", event.name, event.reason)
            return
        ok = event.kind == "loaded"
        self.metrics.count_load(event.name, ok, event.seconds)
        if ok:
            log.info("model %s loaded in %.1f s", event.name, event.seconds)
        else:
            log.error("model %s failed to load: %s", event.name, event.reason)

    def _engine_failed(self, name: str, message: str) -> None:
        """An engine gave up (on its own thread): the server stops if it was the only model; else
        that model fails its requests with the reason and is unloaded, and the others go on."""
        if self.single:
            self.failure = message
            if self._on_fatal is not None:
                self._on_fatal(message)
            return
        log.error("model %s failed: %s", name, message)
        work = self.pool.discard(name, message)
        if work is not None:
            self._executor.submit(work)
