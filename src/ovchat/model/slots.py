"""What a pool of models keeps about each model (a Slot), shows of it (SlotView), asks of a loader
(Loader), hands to a request (Lease) and leaves to be done outside its lock (Work): the records of
ovchat.model.pool."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from ovchat.compat import StrEnum

T = TypeVar("T")


class SlotState(StrEnum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"
    FAILED = "failed"  # its last load failed; it stays unloaded until load() is asked again


HOLDING = (SlotState.LOADING, SlotState.LOADED, SlotState.UNLOADING)  # states that take memory


class Loader(Protocol[T]):
    """How a pool loads, unloads and sizes one model, by its name."""

    def load(self, name: str) -> T: ...  # OvchatError when it cannot

    def unload(self, name: str, item: T) -> None: ...

    def size(self, name: str) -> int: ...  # bytes it is expected to take once loaded


@dataclass
class Slot(Generic[T]):
    name: str
    size: int  # bytes: the loader's estimate, raised to what a load was measured to take
    state: SlotState = SlotState.UNLOADED
    item: T | None = None
    users: int = 0
    last_used: float = 0.0
    loaded_at: float = 0.0  # when its current turn began
    keep_alive: float | None = None  # this load's own keep-alive (a request may set it)
    error: str | None = None
    loads: int = 0
    load_seconds: float = 0.0


@dataclass(frozen=True)
class SlotView:
    """One model as /v1/models and `ModelPool.models()` show it."""

    name: str
    state: SlotState
    users: int
    size: int
    loads: int
    error: str | None
    idle_seconds: float | None  # since its last lease ended, while loaded and idle


@dataclass(eq=False)
class Ticket:
    """A request waiting for a model, in arrival order."""

    name: str
    arrived: float
    keep_alive: float | None = None


@dataclass(frozen=True)
class Event:
    """What the pool did, for metrics and logs: loaded, load_failed, unloaded."""

    kind: str
    name: str
    seconds: float = 0.0
    reason: str = ""


@dataclass
class Work:
    """Slow work a decision left to do outside the pool's lock: run() it on a thread that may block."""

    run: Callable[[], None]
    name: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    def __call__(self) -> None:
        try:
            self.run()
        finally:
            self.done.set()


class Lease(Generic[T]):
    """One request's hold on a loaded model: the model stays loaded until every lease is released."""

    def __init__(self, slot: Slot[T], on_release: Callable[[], None]) -> None:
        assert slot.item is not None
        self.item: T = slot.item
        self.name = slot.name
        self._on_release: Callable[[], None] | None = on_release

    def release(self) -> None:
        """Once: a second call does nothing."""
        if self._on_release is not None:
            on_release, self._on_release = self._on_release, None
            self.item = None  # type: ignore[assignment]  # a lease kept around must not keep the model
            on_release()

    def __enter__(self) -> T:
        return self.item

    def __exit__(self, *_: object) -> None:
        self.release()
