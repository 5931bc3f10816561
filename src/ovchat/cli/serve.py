"""`ovchat serve`: the command line of the HTTP server. FastAPI and uvicorn load only when it runs."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import click

from ovchat.cli.options import device_config, model_options
from ovchat.errors import OvchatError
from ovchat.server.settings import EngineConfig, PoolSettings, ServerSettings, field_default, parse_duration

SERVE_EXTRA = "it needs the serve extra: pip install 'ovchat[serve]'"


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
    help="Require 'Authorization: Bearer KEY' (not /health, /live, the chat page) [env OVCHAT_API_KEY].",
)
@click.option("--cors", multiple=True, metavar="ORIGIN", help="Allow browser calls from ORIGIN (repeatable).")
@click.option(
    "--web-ui/--no-web-ui",
    default=field_default(ServerSettings, "web_ui"),
    show_default=True,
    help="Serve the browser chat page at / (it asks for the API key when the server has one).",
)
@click.option(
    "--max-batch",
    default=field_default(EngineConfig, "max_batch"),
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests generated together.",
)
@click.option(
    "--encoder-batch",
    default=field_default(EngineConfig, "encoder_batch"),
    show_default=True,
    type=click.IntRange(min=1),
    help="Texts one embedding inference takes from the requests waiting (1: each request alone).",
)
@click.option(
    "--max-queue",
    default=field_default(EngineConfig, "max_queue"),
    show_default=True,
    type=click.IntRange(min=0),
    help="Requests waiting for a slot before new ones get 503.",
)
@click.option(
    "--prefill-chunk",
    default=field_default(EngineConfig, "prefill_chunk"),
    show_default=True,
    type=click.IntRange(min=16),
    help="Prompt tokens per engine step (smaller: a more responsive server, slower prefill).",
)
@click.option(
    "--kv-cache-gb",
    default=field_default(EngineConfig, "kv_cache_gb"),
    show_default=True,
    type=click.IntRange(min=1),
    help="Upper bound of the KV cache, which takes memory as it is first used and keeps it.",
)
@click.option(
    "--kv-cache-tokens",
    type=click.IntRange(min=256),
    help="An exact KV cache capacity in tokens instead (less memory; also the longest request).",
)
@click.option(
    "--prefix-cache/--no-prefix-cache",
    default=field_default(EngineConfig, "prefix_cache"),
    show_default=True,
    help="Reuse the computed start of a prompt seen before (each turn of a chat resends the history).",
)
@click.option(
    "--max-tokens-limit",
    default=field_default(EngineConfig, "max_tokens_ceiling"),
    show_default=True,
    type=click.IntRange(min=1),
    help="The most tokens one answer may ask for (max_tokens above it gets 400).",
)
@click.option(
    "--max-body-bytes",
    default=field_default(ServerSettings, "max_body_bytes"),
    show_default=True,
    type=click.IntRange(min=1),
    help="Larger request bodies get 413.",
)
@click.option(
    "--shutdown-timeout",
    default=field_default(ServerSettings, "shutdown_timeout"),
    show_default=True,
    type=click.IntRange(min=0),
    help="On SIGTERM, seconds running requests get to finish before they are cancelled.",
)
@click.option(
    "--drain-delay",
    default=field_default(ServerSettings, "drain_delay"),
    show_default=True,
    type=click.FloatRange(min=0),
    help="On SIGTERM, seconds /health answers 503 while requests are still served, before the shutdown "
    "starts (longer than a load balancer takes to notice; a second SIGTERM ends it).",
)
@click.option(
    "--models-dir",
    envvar="OVCHAT_MODELS_DIR",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Serve every model folder and .gguf file in DIR too, each under its name [env OVCHAT_MODELS_DIR].",
)
@click.option(
    "--max-loaded",
    type=click.IntRange(min=1),
    envvar="OVCHAT_MAX_LOADED",
    help="Models loaded at once; the least recently used idle one is unloaded to load another "
    "[default: as many as --memory-budget holds].",
)
@click.option(
    "--memory-budget",
    type=click.FloatRange(min=0.1),
    metavar="GB",
    envvar="OVCHAT_MEMORY_BUDGET",
    help="Memory the loaded models may take (weights and KV cache bound) [default: what the machine "
    "or container has free at start, less 10%].",
)
@click.option(
    "--keep-alive",
    default="forever",
    show_default=True,
    envvar="OVCHAT_KEEP_ALIVE",
    callback=lambda _ctx, _param, value: duration(value),
    help="Unload a model idle this long: 30s, 5m, 1h, 0 (after each request) or forever.",
)
@click.option(
    "--preload",
    multiple=True,
    metavar="NAME",
    help="Load NAME at start; /health is ready once it is (default: the model, when one is served; "
    "'all': every one). Repeatable.",
)
@click.option(
    "--load-wait",
    default=field_default(PoolSettings, "load_wait"),
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a request waits for its model to be loaded (behind busy ones) before a 503.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@model_options(attention_backend=False, several=True)
def run_server(
    host: str,
    port: int,
    api_key: str | None,
    cors: tuple[str, ...],
    web_ui: bool,
    max_batch: int,
    encoder_batch: int,
    max_queue: int,
    prefill_chunk: int,
    kv_cache_gb: int,
    kv_cache_tokens: int | None,
    prefix_cache: bool,
    max_tokens_limit: int,
    max_body_bytes: int,
    shutdown_timeout: int,
    drain_delay: float,
    models_dir: str | None,
    max_loaded: int | None,
    memory_budget: float | None,
    keep_alive: float | None,
    preload: tuple[str, ...],
    load_wait: float,
    log_level: str,
    **kwargs: Any,
) -> None:
    """Serve models over an OpenAI-compatible HTTP API, batching concurrent requests. Several models
    (--model repeated, --models-dir: chat models, embedding models, rerankers) are loaded on demand by
    the request's `model`."""
    require_serve_extra()
    from ovchat import check_device, find_models
    from ovchat.server.run import check_port, serve_until_stopped

    check_port(host, port)  # before the slow model load, and in one line
    models = find_models(kwargs.pop("model") or (), models_dir)
    device = device_config(kwargs)
    check_device(device)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(message)s")
    for model in models.values():
        if model.import_note:
            logging.getLogger("ovchat.server").warning("%s", model.import_note)
    pool = PoolSettings(
        max_loaded=max_loaded,
        memory_budget_gb=memory_budget,
        keep_alive=keep_alive,
        preload=tuple(models) if preload == ("all",) else preload,
        load_wait=load_wait,
    )
    engine_config = EngineConfig(
        max_batch=max_batch,
        encoder_batch=encoder_batch,
        max_queue=max_queue,
        prefill_chunk=prefill_chunk,
        kv_cache_gb=kv_cache_gb,
        kv_cache_tokens=kv_cache_tokens,
        prefix_cache=prefix_cache,
        max_tokens_ceiling=max_tokens_limit,
    )
    settings = ServerSettings(api_key or None, cors, max_body_bytes, shutdown_timeout, web_ui, drain_delay)
    serve_until_stopped(models, device, engine_config, pool, settings, host, port, log_level)


def duration(text: str) -> float | None:
    """--keep-alive's seconds (None: forever), or click's usage error in one line."""
    try:
        return parse_duration(text, "--keep-alive")
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix("--keep-alive: ")) from None


def require_serve_extra() -> None:
    """Fail in plain words when FastAPI or uvicorn is missing, before any slow work."""
    try:
        import ovchat.server.run  # noqa: F401  (FastAPI, uvicorn)
    except ImportError:
        raise OvchatError(f"`ovchat serve`: {SERVE_EXTRA}") from None


# Annotated so that type checkers know it without following the decorators (ovchat.cli.main imports it).
SERVE_HELP = f"{inspect.cleandoc(run_server.__doc__ or '')}\n\nWithout FastAPI, {SERVE_EXTRA}."
serve: click.Command = click.command("serve", help=SERVE_HELP)(run_server)
