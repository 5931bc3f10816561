"""The pool's rules (ovchat.model.pool) on a stand-in loader and a hand-moved clock: loading on demand,
least-recently-used unloading under a count and a memory budget, busy models kept, keep-alive,
each model failing alone, turns under an alternating flood.

The real thing (engines, a server, RSS) is tests/test_models.py."""

from __future__ import annotations

import threading

import pytest

from ovchat.errors import ModelBusy, ModelFailed, ModelNotFound, OvchatError, Unavailable
from ovchat.model.pool import ModelPool
from ovchat.model.slots import Lease, SlotState, Work
from ovchat.server.settings import parse_duration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Loads "name!"; a name in `broken` fails to load; records what happened, in order."""

    def __init__(self, sizes: dict[str, int] | None = None, broken: set[str] | None = None) -> None:
        self.sizes = sizes or {}
        self.broken = broken or set()
        self.log: list[str] = []

    def load(self, name: str) -> str:
        if name in self.broken:
            self.log.append(f"fail {name}")
            raise OvchatError(f"{name} is corrupt")
        self.log.append(f"load {name}")
        return f"{name}!"

    def unload(self, name: str, item: str) -> None:
        self.log.append(f"unload {name}")

    def size(self, name: str) -> int:
        return self.sizes.get(name, 1)


def pool_of(
    names: str, loader: Loader | None = None, **limits: object
) -> tuple[ModelPool[str], Loader, Clock]:
    loader = loader or Loader()
    clock = Clock()
    return ModelPool(names.split(), loader, clock=clock, **limits), loader, clock  # type: ignore[arg-type]


def states(pool: ModelPool[str]) -> dict[str, str]:
    return {view.name: str(view.state) for view in pool.models()}


def use(pool: ModelPool[str], clock: Clock, *names: str) -> None:
    """One request to each model in turn, a second apart."""
    for name in names:
        clock.now += 1
        with pool.acquire(name, timeout=0.5) as item:
            assert item == f"{name}!"


def test_a_model_loads_on_its_first_request_and_stays_loaded() -> None:
    pool, loader, clock = pool_of("a b")
    assert states(pool) == {"a": "unloaded", "b": "unloaded"}
    use(pool, clock, "a", "a", "a")
    assert loader.log == ["load a"] and states(pool) == {"a": "loaded", "b": "unloaded"}


def test_the_least_recently_used_idle_model_makes_room_under_max_loaded() -> None:
    pool, loader, clock = pool_of("a b c", max_loaded=2)
    use(pool, clock, "a", "b", "a", "c")  # b is the least recently used when c comes
    assert loader.log == ["load a", "load b", "unload b", "load c"]
    assert states(pool) == {"a": "loaded", "b": "unloaded", "c": "loaded"}


def test_the_memory_budget_decides_what_fits() -> None:
    loader = Loader(sizes={"small": 30, "mid": 50, "big": 80})
    pool, _, clock = pool_of("small mid big", loader, memory_budget=100)
    use(pool, clock, "small", "mid")  # 80 of 100
    use(pool, clock, "big")  # 80 more: both must go
    assert loader.log == ["load small", "load mid", "unload small", "unload mid", "load big"]
    use(pool, clock, "small")  # 110 > 100: big goes
    assert states(pool) == {"small": "loaded", "mid": "unloaded", "big": "unloaded"}


def test_a_model_larger_than_the_budget_is_refused_at_start() -> None:
    with pytest.raises(OvchatError, match=r"'big' needs about 2\.0 GB, more than the memory budget"):
        pool_of("big", Loader(sizes={"big": 2 * 1024**3}), memory_budget=1024**3)


def test_a_busy_model_is_never_unloaded_the_request_waits_then_gets_503() -> None:
    pool, loader, clock = pool_of("a b", max_loaded=1, patience=5.0)
    held = pool.acquire("a")
    with pytest.raises(Unavailable) as refused:
        pool.acquire("b", timeout=0.05)
    assert refused.value.http_status == 503 and refused.value.retry_after_s == 5
    assert "model 'b' cannot be loaded now" in str(refused.value)
    assert loader.log == ["load a"] and states(pool)["a"] == "loaded"
    held.release()
    held.release()  # twice is once
    use(pool, clock, "b")
    assert loader.log == ["load a", "unload a", "load b"]


def test_a_waiting_request_gets_its_model_as_soon_as_the_busy_one_is_released() -> None:
    pool, _, _ = pool_of("a b", max_loaded=1, patience=0.0)  # no turn to wait out
    held = pool.acquire("a")
    got: list[Lease[str]] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire("b", timeout=10)))
    waiter.start()
    threading.Event().wait(0.05)
    assert not got  # still waiting: a is busy
    held.release()
    waiter.join(5)
    assert got and got[0].item == "b!"


def test_an_unknown_model_is_not_found_naming_what_is_served() -> None:
    pool, _, _ = pool_of("a b")
    with pytest.raises(ModelNotFound, match="model 'x' is not served here; served: a, b") as missing:
        pool.acquire("x")
    assert missing.value.http_status == 404 and missing.value.code == "model_not_found"


def test_a_model_that_fails_to_load_fails_alone_and_loads_again_when_asked() -> None:
    loader = Loader(broken={"bad"})
    pool, _, clock = pool_of("good bad", loader)
    for _ in range(2):  # the second request hears the same reason without another load
        with pytest.raises(ModelFailed, match="model 'bad' failed to load: bad is corrupt"):
            pool.acquire("bad")
    use(pool, clock, "good")
    assert loader.log == ["fail bad", "load good"]
    assert states(pool) == {"good": "loaded", "bad": "failed"}
    assert [view.error for view in pool.models()] == [None, "bad is corrupt"]
    loader.broken.clear()  # fixed on disk
    pool.load("bad")
    assert states(pool)["bad"] == "loaded"


def test_a_model_that_breaks_while_loaded_is_discarded_and_the_others_go_on() -> None:
    pool, loader, clock = pool_of("a b")
    use(pool, clock, "a", "b")
    in_flight = pool.acquire("a")  # a request the broken engine fails
    work = pool.discard("a", "the engine failed 5 steps in a row")
    assert isinstance(work, Work)
    work()
    assert loader.log[-1] == "unload a"
    with pytest.raises(ModelFailed, match="the engine failed 5 steps"):
        pool.acquire("a")
    use(pool, clock, "b")
    in_flight.release()
    pool.load("a")  # loaded again, and idle: no lease of the broken engine counts against it
    work = pool.unload("a")
    assert work is not None


def test_unloading_a_busy_model_is_refused_and_an_idle_one_goes() -> None:
    pool, loader, _ = pool_of("a")
    held = pool.acquire("a")
    with pytest.raises(ModelBusy, match="1 requests are using it") as busy:
        pool.unload("a")
    assert busy.value.http_status == 409
    held.release()
    work = pool.unload("a")
    assert work is not None and states(pool)["a"] == "unloading"
    work()
    assert states(pool)["a"] == "unloaded" and loader.log == ["load a", "unload a"]
    assert pool.unload("a") is None  # nothing to do


def test_keep_alive_unloads_an_idle_model_once_its_time_is_up() -> None:
    pool, loader, clock = pool_of("a b", keep_alive=300.0)
    use(pool, clock, "a")
    held = pool.acquire("b")
    clock.now += 299
    assert pool.expired() == [] and pool.next_expiry() == pytest.approx(clock.now + 1)
    clock.now += 1000
    due = pool.expired()
    assert len(due) == 1  # b is busy: it never expires while in use
    due[0]()
    assert states(pool) == {"a": "unloaded", "b": "loaded"}
    held.release()
    assert loader.log == ["load a", "load b", "unload a"]


def test_keep_alive_zero_unloads_after_each_request_and_a_request_may_set_its_own() -> None:
    pool, _, clock = pool_of("a b", keep_alive=0.0)
    use(pool, clock, "a")
    assert [work.name for work in pool.expired()] == ["a"]
    forever = pool.acquire("b", keep_alive=-1)  # ollama's keep_alive: -1 keeps it loaded
    forever.release()
    clock.now += 10**6
    assert pool.expired() == []


def test_no_thrash_models_take_turns_of_at_least_the_patience() -> None:
    """A flood alternating between two models that do not fit together: the loaded one keeps taking
    requests until an older request for the other has waited `patience`; then it takes no new ones,
    goes idle and is swapped out."""
    pool, loader, clock = pool_of("a b", max_loaded=1, patience=5.0)
    first = pool.acquire("a")
    waiting_b = pool.enter("b")  # arrives, cannot be served: a is busy
    clock.now += 1
    early_a = pool.enter("a")
    got = pool.poll(early_a)
    assert isinstance(got, Lease)  # within the patience a still serves
    clock.now += 5
    late_a = pool.enter("a")
    assert pool.poll(late_a) is None  # b has waited 6 s: a takes no new request
    first.release()
    got.release()
    work = pool.poll(waiting_b)
    assert isinstance(work, Work)
    work()
    assert isinstance(pool.poll(waiting_b), Lease)
    assert loader.log == ["load a", "unload a", "load b"]
    for ticket in (waiting_b, early_a, late_a):
        pool.leave(ticket)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
        ("0", 0.0),
        ("90", 90.0),
        ("forever", None),
    ],
)
def test_durations_read_as_ollama_and_llama_server_write_them(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "5d", "-5m", ""])
def test_a_bad_duration_names_the_option(text: str) -> None:
    with pytest.raises(ValueError, match="--keep-alive: "):
        parse_duration(text, "--keep-alive")


def test_states_are_plain_words() -> None:
    assert [str(state) for state in SlotState] == ["unloaded", "loading", "loaded", "unloading", "failed"]


def test_in_its_turn_a_model_in_use_a_moment_ago_is_not_swapped_out() -> None:
    """Its clients are between two requests: the waiting model gets its room once the turn is over."""
    pool, loader, clock = pool_of("a b", max_loaded=1, patience=5.0)
    pool.acquire("a").release()  # loaded and used at 1000
    waiting_b = pool.enter("b")
    clock.now += 0.5
    assert pool.poll(waiting_b) is None  # a was in use half a second ago, 0.5 s into its turn
    clock.now += 2
    work = pool.poll(waiting_b)  # not used for 2.5 s: nobody is waiting on it
    assert isinstance(work, Work)
    work()
    assert loader.log == ["load a", "unload a", "load b"]
    pool.leave(waiting_b)
