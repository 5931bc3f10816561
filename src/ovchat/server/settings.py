"""What the HTTP server and its engine are told: plain data, stdlib only.

`ovchat serve` reads its flags' defaults from these fields, and the bare CLI must not load the
serve extra (test_purity), so this module imports nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ServerSettings:
    """The HTTP side's settings: who may call, how big a request may be, how the server leaves."""

    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_000_000
    shutdown_timeout: int = 10  # seconds running requests get to finish after SIGTERM
    web_ui: bool = True
    drain_delay: float = 0.0  # seconds /health says 503 after SIGTERM before the shutdown starts


@dataclass(frozen=True)
class PoolSettings:
    """Which models stay loaded (ovchat.model.pool): how many, in how much memory, for how long idle."""

    max_loaded: int | None = None  # None: as many as the memory budget holds
    memory_budget_gb: float | None = None  # None: what the machine or its cgroup can give at start
    keep_alive: float | None = None  # seconds a model stays loaded idle; None: forever, 0: unload at once
    preload: tuple[str, ...] = ()  # loaded at start; /health is ready once they are
    load_wait: float = 60.0  # seconds a request waits for its model to be loaded before a 503


KV_BLOCK_TOKENS = 32  # tokens per KV-cache block of GenAI's CPU paged attention


@dataclass(frozen=True)
class EngineConfig:
    """How many requests run and wait, and how the scheduler batches them."""

    max_batch: int = 16  # sequences generated together (scheduler max_num_seqs)
    max_queue: int = 64  # requests waiting for a batch slot before new ones get 503
    prefill_chunk: int = 256  # tokens per step; bounds how long one step holds the GIL
    kv_cache_gb: int = 1  # the KV cache's upper bound: GenAI allocates it as blocks are first used
    kv_cache_tokens: int | None = None  # an exact capacity instead, in tokens (blocks of KV_BLOCK_TOKENS)
    prefix_cache: bool = True  # reuse the KV blocks of a prompt prefix seen before (multi-turn chats)
    max_tokens_ceiling: int | None = 4096  # the most tokens one answer may ask for (None: no limit)
    encoder_batch: int = 64  # texts one embedding inference takes from the requests waiting (1: one each)


DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, option: str = "duration") -> float | None:
    """Seconds from "30s", "5m", "1h", "250ms", a bare number of seconds, or "forever"/"-1" (None).
    ValueError (naming `option`) for anything else."""
    word = text.strip().lower()
    if word in ("forever", "inf", "never", "-1"):
        return None
    number = word.rstrip("hms")
    unit = word[len(number) :] or "s"
    try:
        seconds = float(number) * DURATION_UNITS[unit]
    except (ValueError, KeyError):
        raise ValueError(f"{option}: '{text}' is not a duration (like 30s, 5m, 1h, 0 or forever)") from None
    if seconds < 0:
        raise ValueError(f"{option}: '{text}' is negative (use forever to never unload)")
    return seconds


def field_default(of: type[Any], name: str) -> Any:
    """The default of one field of a dataclass, so that a flag shows and uses that same value."""
    return next(field.default for field in fields(of) if field.name == name)
