"""`ovchat serve`: the command line of the HTTP server. FastAPI and uvicorn load only when it runs."""

from __future__ import annotations

import logging
from typing import Any

import click

from ovchat.cli_options import model_options
from ovchat.errors import OvchatError


@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="OVCHAT_HOST",
    help="Address to bind; use 0.0.0.0 to accept other machines (then set --api-key).",
)
@click.option(
    "--port", "-p", default=8000, show_default=True, type=click.IntRange(0, 65535), envvar="OVCHAT_PORT"
)
@click.option(
    "--api-key",
    envvar="OVCHAT_API_KEY",
    metavar="KEY",
    help="Require 'Authorization: Bearer KEY' (all but /health) [env OVCHAT_API_KEY].",
)
@click.option("--cors", multiple=True, metavar="ORIGIN", help="Allow browser calls from ORIGIN (repeatable).")
@click.option(
    "--max-batch",
    default=16,
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests generated together.",
)
@click.option(
    "--max-queue",
    default=64,
    show_default=True,
    type=click.IntRange(min=0),
    help="Requests waiting for a slot before new ones get 503.",
)
@click.option(
    "--prefill-chunk",
    default=256,
    show_default=True,
    type=click.IntRange(min=16),
    help="Prompt tokens per engine step (smaller: a more responsive server, slower prefill).",
)
@click.option(
    "--kv-cache-gb", default=1, show_default=True, type=click.IntRange(min=1), help="KV cache size."
)
@click.option(
    "--prefix-cache/--no-prefix-cache",
    default=True,
    show_default=True,
    help="Reuse the computed start of a prompt seen before (each turn of a chat resends the history).",
)
@click.option(
    "--max-body-bytes",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Larger request bodies get 413.",
)
@click.option(
    "--shutdown-timeout",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="On SIGTERM, seconds running requests get to finish before they are cancelled.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@model_options
def run_server(host: str, port: int, api_key: str | None, cors: tuple[str, ...], max_batch: int,
               max_queue: int, prefill_chunk: int, kv_cache_gb: int, prefix_cache: bool,
               max_body_bytes: int, shutdown_timeout: int, log_level: str,
               **kwargs: Any) -> None:  # fmt: skip
    """Serve the model over an OpenAI-compatible HTTP API, batching concurrent requests."""
    try:
        import uvicorn

        from ovchat.server.app import GracefulServer, ServerSettings, create_app
    except ImportError:
        raise OvchatError("`ovchat serve` needs the serve extra: pip install 'ovchat[serve]'") from None
    from ovchat.model import DeviceConfig, check_device, find_model
    from ovchat.server.engine import Engine, EngineConfig
    from ovchat.server.metrics import ServerMetrics

    model = find_model(kwargs["model"])
    device = DeviceConfig(device=kwargs["device"], performance_hint=kwargs["performance_hint"],
                          num_streams=kwargs["num_streams"], cache_dir=kwargs["cache_dir"])  # fmt: skip
    check_device(device)
    metrics = ServerMetrics()
    engine_config = EngineConfig(max_batch, max_queue, prefill_chunk, kv_cache_gb, prefix_cache)
    engine = Engine(model, device, engine_config, metrics)
    settings = ServerSettings(model.name, api_key or None, cors, max_body_bytes)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(message)s")
    holder: list[uvicorn.Server] = []

    def stop_on_fatal(_: str) -> None:
        for server in holder:
            server.should_exit = True

    app = create_app(engine, settings, metrics, on_fatal=stop_on_fatal)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug",
                            timeout_graceful_shutdown=shutdown_timeout)  # fmt: skip
    holder.append(GracefulServer(config))
    holder[0].run()
    if engine.state == "failed":
        raise OvchatError(engine.error or "the model failed to load")


# Annotated so that type checkers know it without following the decorators (ovchat.cli imports it).
serve: click.Command = click.command("serve")(run_server)
