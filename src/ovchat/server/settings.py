"""What the HTTP server is told: plain data, stdlib only.

`ovchat serve` reads its flags' defaults from these fields, and the bare CLI must not load the
serve extra (test_purity), so this module imports nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ServerSettings:
    """The HTTP side's settings: who may call, how big a request may be, how the server leaves."""

    model_name: str
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_000_000
    shutdown_timeout: int = 10  # seconds running requests get to finish after SIGTERM
    web_ui: bool = True
    drain_delay: float = 0.0  # seconds /health says 503 after SIGTERM before the shutdown starts


def field_default(of: type[Any], name: str) -> Any:
    """The default of one field of a dataclass, so that a flag shows and uses that same value."""
    return next(field.default for field in fields(of) if field.name == name)
