"""An embedding model or reranker served: its pipeline on a thread of its own, as a chat model's is
on its engine thread, so the event loop only parses and answers.

Embedding requests that arrive while the pipeline is busy wait in a queue, and the next run takes
them all (up to `max_texts` texts) as one batch: one inference for many clients, each request
getting its own vectors back. A request's own errors (an input past the model's length) are found
before the batch runs, so one bad request never fails the others of its batch."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ovchat.errors import GenerationError, OvchatError, Unavailable, plain_message
from ovchat.model.device import DeviceConfig
from ovchat.model.encoders import Embedder, Embeddings, Ranking, Reranker, max_length, open_encoder
from ovchat.model.files import ModelFiles
from ovchat.server.engine.lifecycle import EngineState, Lifecycle
from ovchat.server.metrics import ModelMetrics

log = logging.getLogger("ovchat.server")
MAX_TEXTS = 64  # texts in one batched inference: past this, padding and memory outgrow the gain


@dataclass
class Task:
    """One request's work and the future its answer goes to (on the event loop)."""

    run: Callable[[Any], Any]  # on the runner thread, with the opened model
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    texts: list[str] | None = None  # an embedding request's texts (batched with others); None: `run`
    truncate: bool = False

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        def apply() -> None:
            if self.future.done():
                return  # the client left meanwhile
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(apply)


class EncoderRunner:
    """Loads an embedding model or reranker on its own thread, then runs its requests there."""

    tool_format = None  # what the pool's loader reads of a chat engine
    thinks = None

    def __init__(
        self,
        model: ModelFiles,
        device: DeviceConfig,
        metrics: ModelMetrics,
        max_texts: int = MAX_TEXTS,
    ) -> None:
        self.model, self.device, self.metrics, self.max_texts = model, device, metrics, max_texts
        self.lifecycle = Lifecycle()
        self.encoder: Embedder | Reranker | None = None
        self._tasks: deque[Task] = deque()
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name="ovchat-encoder", daemon=True)

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def state(self) -> EngineState:
        return self.lifecycle.state

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    @property
    def running(self) -> int:
        return self._busy

    @property
    def queued(self) -> int:
        return len(self._tasks)

    @property
    def context_length(self) -> int:
        return max_length(self.model)

    def start(self, on_fatal: Callable[[str], None] | None = None) -> None:
        self._thread.start()

    # --- the routes' work ------------------------------------------------------------------------

    async def embed(self, texts: list[str], truncate: bool) -> Embeddings:
        """Vectors of `texts`, batched with whatever other embedding requests wait."""
        if not texts:
            return Embeddings([], 0)
        return await self._submit(lambda model: None, texts, truncate)  # type: ignore[no-any-return]

    async def rerank(self, query: str, documents: list[str], top_n: int | None, truncate: bool) -> Ranking:
        def work(model: Any) -> Ranking:
            if not isinstance(model, Reranker):
                raise OvchatError(f"{self.model.name} is not a reranker")
            return model.rerank(query, documents, top_n=top_n, truncate=truncate)

        return await self._submit(work)  # type: ignore[no-any-return]

    async def on_model(self, work: Callable[[Embedder | Reranker], Any]) -> Any:
        """Run `work` with the opened model on its thread (the tokenizer, say)."""
        return await self._submit(work)

    async def _submit(
        self, run: Callable[[Any], Any], texts: list[str] | None = None, truncate: bool = False
    ) -> Any:
        loop = asyncio.get_running_loop()
        task = Task(run, loop.create_future(), loop, texts, truncate)
        with self.lifecycle.wake:
            self.lifecycle.check_accepting()
            self._tasks.append(task)
            self.lifecycle.wake.notify_all()
        return await task.future

    # --- the runner thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.encoder = open_encoder(self.model, self.device)
        except OvchatError as exc:
            self.lifecycle.failed(str(exc))
            return
        self.lifecycle.loaded()
        while True:
            with self.lifecycle.wake:
                self.lifecycle.wake.wait_for(lambda: self._tasks or self.lifecycle.stopping)
                if not self._tasks:
                    break  # stopping, and nothing left
                batch = self._take()
                self._busy = len(batch)
            try:
                self._serve(batch)
            except Exception as exc:  # a bug or GenAI's own failure: these requests fail, the model serves on
                log.exception("model %s failed a request", self.model.name)
                for task in batch:
                    task.settle(error=GenerationError(f"{self.model.name} failed: {plain_message(exc)}"))
            finally:
                self._busy = 0
        self.encoder = None  # the pipeline goes with the last reference (see ServedModels' unload)

    def _take(self) -> list[Task]:
        """The next task, and with an embedding task every embedding task after it that fits."""
        first = self._tasks.popleft()
        if first.texts is None or not isinstance(self.encoder, Embedder):
            return [first]
        batch, count = [first], len(first.texts)
        for task in list(self._tasks):
            if task.texts is not None and count + len(task.texts) <= self.max_texts:
                self._tasks.remove(task)
                batch.append(task)
                count += len(task.texts)
        return batch

    def _serve(self, batch: list[Task]) -> None:
        model = self.encoder
        assert model is not None
        if self.lifecycle.aborting:
            for task in batch:
                task.settle(error=Unavailable("the server is shutting down", "shutting_down"))
            return
        if batch[0].texts is None:
            try:
                result = batch[0].run(model)
            except OvchatError as exc:
                batch[0].settle(error=exc)
                return
            if isinstance(result, Ranking):
                self.metrics.count_encoder_run(len(result.results), result.tokens)
            batch[0].settle(result)
            return
        assert isinstance(model, Embedder)
        accepted: list[tuple[Task, int]] = []
        for task in batch:  # each request's own errors are its own
            assert task.texts is not None
            try:
                accepted.append((task, model.counted(model.lengths(task.texts), task.truncate, "input")))
            except OvchatError as exc:
                task.settle(error=exc)
        texts = [text for task, _ in accepted for text in task.texts or []]
        if not texts:
            return
        try:
            vectors = model.vectors(texts)
        except OvchatError as exc:
            for task, _ in accepted:
                task.settle(error=exc)
            return
        self.metrics.count_encoder_run(len(texts), sum(tokens for _, tokens in accepted))
        start = 0
        for task, tokens in accepted:
            count = len(task.texts or [])
            task.settle(Embeddings(vectors[start : start + count], tokens))
            start += count

    # --- shutdown ---------------------------------------------------------------------------------

    def drain(self) -> None:
        self.lifecycle.drain()

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new work, finish what waits for up to `timeout` s, then refuse the rest."""
        self.lifecycle.close(self._thread, timeout)
