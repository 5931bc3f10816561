"""Several models behind one name each, loaded on demand and unloaded when idle or when they must
make room: the rules a server (and a library user) holds its models by. Generic over what a loaded
model is (the server's engine, the library's Model): a Loader loads and unloads one.

    UNLOADED ──a request, room made──> LOADING ──> LOADED ──idle past keep-alive, or evicted──> UNLOADING
       ^                                  └──load failed──> FAILED (requests hear why; load() retries)  │
       └──────────────────────────────────────────────────────────────────────────────────────────────┘

- A request takes a Lease on a loaded model; a model with leases is never unloaded.
- A model that does not fit (count: `max_loaded`, memory: `memory_budget`) is loaded after the least
  recently used idle models are unloaded; while every loaded model is busy the request waits, up to
  its timeout (then Unavailable: 503 + Retry-After).
- No thrash spiral: a loaded model has a turn of `patience` seconds from its load (or twice the
  load time of the model waiting for its room): in its turn, it is not unloaded while in use a
  moment ago, and after it, while an older request waits for that room, it takes no new lease, goes
  idle and is swapped out. Under an alternating flood the models take turns of
  at least that long, so loading takes at most about a third of the time.
- One load at a time (the memory measured around it is that model's), off the caller's lock: the
  decisions are taken under the pool's lock, the slow work (Work) runs outside it, on whatever
  thread the caller gives it (the server: a loader thread, never the event loop nor an engine's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from ovchat.errors import ModelBusy, ModelFailed, ModelNotFound, OvchatError, Unavailable, plain_message
from ovchat.model.memory import GB, give_back, resident_bytes
from ovchat.model.slots import HOLDING, Event, Lease, Loader, Slot, SlotState, SlotView, Ticket, Work

T = TypeVar("T")
IN_USE_SECONDS = 1.0  # a model released this recently is in use (its client sends the next request)


class ModelPool(Generic[T]):
    """The models one process serves, each loaded when asked for (see the module's rules)."""

    def __init__(
        self,
        names: Iterable[str],
        loader: Loader[T],
        *,
        max_loaded: int | None = None,
        memory_budget: int | None = None,
        keep_alive: float | None = None,
        patience: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.loader = loader
        self.max_loaded, self.memory_budget, self.keep_alive = max_loaded, memory_budget, keep_alive
        self.patience, self.clock = patience, clock
        self.changed = threading.Condition()
        self._slots = {name: Slot[T](name, loader.size(name)) for name in names}
        self._tickets: list[Ticket] = []
        self._loading = False  # one load at a time
        self._listeners: list[Callable[[], None]] = []
        self._on_event = on_event or (lambda _: None)
        for slot in self._slots.values():
            self._check_fits_alone(slot)

    @property
    def names(self) -> list[str]:
        return list(self._slots)

    def models(self) -> list[SlotView]:
        now = self.clock()
        with self.changed:
            return [self._view(slot, now) for slot in self._slots.values()]

    def state(self, name: str) -> SlotState:
        return self._slot(name).state

    def waiting(self, name: str) -> int:
        """Requests waiting for `name` to be loaded (or to take requests again)."""
        with self.changed:
            return sum(1 for ticket in self._tickets if ticket.name == name)

    def loaded(self, name: str) -> T | None:
        """The model if it is loaded now (no lease: for reading what it is, not for using it)."""
        slot = self._slot(name)
        return slot.item if slot.state == SlotState.LOADED else None

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` (from any thread) whenever a state changes; returns the unsubscribe."""
        with self.changed:
            self._listeners.append(listener)
        return lambda: self._unsubscribe(listener)

    # --- leasing -----------------------------------------------------------------------------------

    def acquire(self, name: str, timeout: float = 60.0, keep_alive: float | None = None) -> Lease[T]:
        """A lease on `name`, loading it (and unloading others to make room) on this thread."""
        ticket = self.enter(name, keep_alive)
        deadline = time.monotonic() + timeout  # real waiting, whatever the pool's clock
        try:
            while True:
                got = self.poll(ticket)
                if isinstance(got, Lease):
                    return got
                if isinstance(got, Work):
                    got()
                    continue
                with self.changed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise self.busy(name)
                    self.changed.wait(min(left, 1.0))
        finally:
            self.leave(ticket)

    def enter(self, name: str, keep_alive: float | None = None) -> Ticket:
        """Queue a request for `name` (ModelNotFound if it is not served)."""
        self._slot(name)
        ticket = Ticket(name, self.clock(), keep_alive)
        with self.changed:
            self._tickets.append(ticket)
        return ticket

    def leave(self, ticket: Ticket) -> None:
        with self.changed:
            if ticket in self._tickets:
                self._tickets.remove(ticket)
                self._notify()

    def poll(self, ticket: Ticket) -> Lease[T] | Work | None:
        """A lease if the model is ready for this request; Work (a load) if this request should do
        it now; None to wait for a change."""
        with self.changed:
            slot = self._slots[ticket.name]
            if slot.state == SlotState.LOADED and not self._yields(slot, ticket):
                slot.users += 1
                if ticket.keep_alive is not None:
                    slot.keep_alive = ticket.keep_alive
                return Lease(slot, lambda: self._release(slot))
            if slot.state == SlotState.FAILED:
                raise ModelFailed(f"model '{slot.name}' failed to load: {slot.error}")
            if slot.state == SlotState.UNLOADED and not self._loading:
                victims = self._room_for(slot)
                if victims is not None:
                    return self._start_load(slot, victims, ticket.keep_alive)
            return None

    def busy(self, name: str) -> Unavailable:
        """Why a request waited in vain."""
        return Unavailable(
            f"model '{name}' cannot be loaded now: the models holding the memory are busy; retry shortly",
            "model_busy",
            retry_after_s=max(1, round(self.patience)),
        )

    # --- loading and unloading on request ------------------------------------------------------------

    def load(self, name: str, timeout: float = 300.0) -> None:
        """Load `name` now (also after a failed load), unloading idle models to make room."""
        self.forget_failure(name)
        self.acquire(name, timeout).release()

    def forget_failure(self, name: str) -> None:
        """Let the next request try loading a model whose last load failed."""
        with self.changed:
            slot = self._slot(name)
            if slot.state == SlotState.FAILED:
                slot.state, slot.error = SlotState.UNLOADED, None

    def unload(self, name: str) -> Work | None:
        """Unload an idle model (run the returned Work); ModelBusy while requests use it."""
        with self.changed:
            slot = self._slot(name)
            if slot.users or slot.state == SlotState.LOADING:
                doing = f"{slot.users} requests are using it" if slot.users else "it is loading"
                raise ModelBusy(f"model '{name}' cannot be unloaded now: {doing}; retry when it is idle")
            if slot.state != SlotState.LOADED:
                return None
            return self._start_unload(slot, "asked")

    def expired(self) -> list[Work]:
        """Unloads of the idle models whose keep-alive has run out."""
        now = self.clock()
        with self.changed:
            due = [slot for slot in self._slots.values() if self._expires_at(slot) <= now]
            return [self._start_unload(slot, "idle") for slot in due]

    def next_expiry(self) -> float | None:
        """When the next keep-alive runs out (on the pool's clock), if any will."""
        with self.changed:
            times = [self._expires_at(slot) for slot in self._slots.values()]
        due = [at for at in times if at != float("inf")]
        return min(due) if due else None

    def discard(self, name: str, error: str) -> Work | None:
        """A loaded model broke for good: it fails its next requests with `error` until load() again."""
        with self.changed:
            slot = self._slot(name)
            item, slot.item = slot.item, None
            # Its requests still hold leases (the engine fails them); they release as they end.
            slot.state, slot.error = SlotState.FAILED, error
            self._notify()
        if item is None:
            return None
        held = [item]
        del item
        return Work(lambda: self._unload_item(name, held, "failed"), name)

    def close(self) -> list[Work]:
        """Unload everything that is loaded and idle (a shutdown)."""
        with self.changed:
            idle = [s for s in self._slots.values() if s.state == SlotState.LOADED and not s.users]
            return [self._start_unload(slot, "shutdown") for slot in idle]

    # --- under the lock ------------------------------------------------------------------------------

    def _slot(self, name: str) -> Slot[T]:
        slot = self._slots.get(name)
        if slot is None:
            raise ModelNotFound(f"model '{name}' is not served here; served: {', '.join(self._slots)}")
        return slot

    def _view(self, slot: Slot[T], now: float) -> SlotView:
        idle = slot.state == SlotState.LOADED and not slot.users
        return SlotView(
            slot.name,
            slot.state,
            slot.users,
            slot.size,
            slot.loads,
            slot.error,
            now - slot.last_used if idle else None,
        )

    def _check_fits_alone(self, slot: Slot[T]) -> None:
        if self.max_loaded is not None and self.max_loaded < 1:
            raise OvchatError("at most 0 loaded models: give --max-loaded 1 or more")
        if self.memory_budget is not None and slot.size > self.memory_budget:
            raise OvchatError(
                f"model '{slot.name}' needs about {slot.size / GB:.1f} GB, more than the memory budget "
                f"({self.memory_budget / GB:.1f} GB): raise --memory-budget or lower --kv-cache-gb"
            )

    def _holding(self) -> list[Slot[T]]:
        return [slot for slot in self._slots.values() if slot.state in HOLDING]

    def _fits(self, slot: Slot[T], staying: list[Slot[T]]) -> bool:
        if self.max_loaded is not None and len(staying) + 1 > self.max_loaded:
            return False
        return self.memory_budget is None or sum(s.size for s in staying) + slot.size <= self.memory_budget

    def _room_for(self, slot: Slot[T]) -> list[Slot[T]] | None:
        """The idle models to unload so that `slot` fits (least recently used first, those that
        requests wait for last), or None while it cannot fit yet."""
        staying = self._holding()
        wanted = {ticket.name for ticket in self._tickets}
        now, turn = self.clock(), self._turn(slot)
        # In its turn and in use a moment ago (its clients between two requests), a model stays.
        idle = [
            s
            for s in staying
            if s.state == SlotState.LOADED
            and not s.users
            and not (now - s.loaded_at < turn and now - s.last_used < IN_USE_SECONDS)
        ]
        idle.sort(key=lambda s: (s.name in wanted, s.last_used))
        victims: list[Slot[T]] = []
        while not self._fits(slot, staying):
            if not idle:
                return None
            victims.append(idle.pop(0))
            staying.remove(victims[-1])
        return victims

    def _yields(self, slot: Slot[T], ticket: Ticket) -> bool:
        """Whether `slot` takes no new lease, so that it goes idle and makes room: an older request
        waits for a model that needs that room, and `slot` has had its turn — loaded for `patience`
        seconds, or twice the waiting model's last load time if longer (loading then takes at most
        a third of the time under an alternating flood)."""
        turn = self.clock() - slot.loaded_at
        for other in self._tickets:
            if other is ticket or other.arrived >= ticket.arrived:
                break
            waiting = self._slots[other.name]
            if other.name == slot.name or waiting.state != SlotState.UNLOADED:
                continue
            had_its_turn = turn >= self._turn(waiting)
            if had_its_turn and not self._fits(waiting, self._holding()):
                return True
        return False

    def _turn(self, waiting: Slot[T]) -> float:
        """How long a loaded model keeps serving before it makes room for `waiting`."""
        return max(self.patience, 2 * waiting.load_seconds)

    def _expires_at(self, slot: Slot[T]) -> float:
        keep = slot.keep_alive if slot.keep_alive is not None else self.keep_alive
        if slot.state != SlotState.LOADED or slot.users or keep is None or keep < 0:
            return float("inf")
        return slot.last_used + keep

    def _release(self, slot: Slot[T]) -> None:
        with self.changed:
            slot.users -= 1
            slot.last_used = self.clock()
            self._notify()

    def _notify(self) -> None:
        self.changed.notify_all()
        for listener in list(self._listeners):
            listener()

    def _unsubscribe(self, listener: Callable[[], None]) -> None:
        with self.changed:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _start_unload(self, slot: Slot[T], reason: str) -> Work:
        item, slot.item = slot.item, None
        slot.state = SlotState.UNLOADING
        self._notify()

        held = [] if item is None else [item]
        del item

        def run() -> None:
            try:
                if held:
                    self._unload_item(slot.name, held, reason)
            finally:
                with self.changed:
                    if slot.state == SlotState.UNLOADING:
                        slot.state = SlotState.UNLOADED
                    slot.keep_alive = None
                    self._notify()

        return Work(run, slot.name)

    def _start_load(self, slot: Slot[T], victims: list[Slot[T]], keep_alive: float | None) -> Work:
        unloads = [self._start_unload(victim, "room") for victim in victims]
        slot.state, slot.keep_alive, self._loading = SlotState.LOADING, keep_alive, True
        self._notify()
        return Work(lambda: self._load(slot, unloads), slot.name)

    # --- outside the lock --------------------------------------------------------------------------

    def _unload_item(self, name: str, held: list[T], reason: str) -> None:
        """Unload the one item in `held`, dropping the last reference to it before memory is given
        back (a closure or a frame that kept it would keep all of it)."""
        item = held.pop()
        try:
            self.loader.unload(name, item)
        finally:
            del item
            give_back()
            self._on_event(Event("unloaded", name, reason=reason))

    def _load(self, slot: Slot[T], unloads: list[Work]) -> None:
        item: T | None = None
        error: str | None = None
        started = self.clock()
        try:
            for unload in unloads:
                unload()
            before = resident_bytes()
            item = self.loader.load(slot.name)
            after = resident_bytes()
            if before is not None and after is not None:
                slot.size = max(slot.size, after - before)
        except OvchatError as exc:
            error = str(exc)
        except Exception as exc:  # a loader's bug must not leave the slot LOADING forever
            error = plain_message(exc)
        finally:
            seconds = self.clock() - started
            with self.changed:
                self._loading = False
                slot.load_seconds = seconds
                if item is not None:
                    slot.item, slot.state, slot.loads = item, SlotState.LOADED, slot.loads + 1
                    slot.last_used = slot.loaded_at = self.clock()
                else:
                    slot.state, slot.error = SlotState.FAILED, error or "the load was interrupted"
                self._notify()
        if item is None:
            give_back()  # what a half-done load left behind
        self._on_event(
            Event("loaded" if item is not None else "load_failed", slot.name, seconds, error or "")
        )
