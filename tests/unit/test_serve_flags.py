"""`ovchat serve`'s flags default to what the server and the engine use without them."""

from __future__ import annotations

from dataclasses import fields

from ovchat.cli.serve import serve
from ovchat.server.settings import EngineConfig, ServerSettings

# flag (click's parameter name) -> the field it sets
SETTINGS_FLAGS = {
    "web_ui": "web_ui",
    "max_body_bytes": "max_body_bytes",
    "shutdown_timeout": "shutdown_timeout",
    "drain_delay": "drain_delay",
}
ENGINE_FLAGS = {
    "max_batch": "max_batch",
    "max_queue": "max_queue",
    "prefill_chunk": "prefill_chunk",
    "kv_cache_gb": "kv_cache_gb",
    "kv_cache_tokens": "kv_cache_tokens",
    "prefix_cache": "prefix_cache",
}


def flag_defaults() -> dict[str, object]:
    """What `ovchat serve` without flags passes on, as click parses it."""
    return dict(serve.make_context("serve", []).params)


def field_defaults(of: type) -> dict[str, object]:
    return {field.name: field.default for field in fields(of)}


def test_the_server_flags_default_to_the_server_settings() -> None:
    flags, settings = flag_defaults(), field_defaults(ServerSettings)
    assert {flag: flags[flag] for flag in SETTINGS_FLAGS} == {
        f: settings[n] for f, n in SETTINGS_FLAGS.items()
    }


def test_the_engine_flags_default_to_the_engine_config() -> None:
    flags, config = flag_defaults(), field_defaults(EngineConfig)
    assert {flag: flags[flag] for flag in ENGINE_FLAGS} == {f: config[n] for f, n in ENGINE_FLAGS.items()}
