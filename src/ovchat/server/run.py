"""Running the HTTP server until it is stopped: the port checked first, the engine started, uvicorn
run, SIGTERM handled gracefully (ovchat.server.app.GracefulServer)."""

from __future__ import annotations

import errno
import socket

import uvicorn

from ovchat.errors import OvchatError
from ovchat.model.device import DeviceConfig
from ovchat.model.files import ModelFiles
from ovchat.server.app import GracefulServer, create_app
from ovchat.server.metrics import ServerMetrics
from ovchat.server.models import ServedModels
from ovchat.server.settings import EngineConfig, PoolSettings, ServerSettings


def serve_until_stopped(
    models: dict[str, ModelFiles],
    device: DeviceConfig,
    engine_config: EngineConfig,
    pool: PoolSettings,
    settings: ServerSettings,
    host: str,
    port: int,
    log_level: str,
) -> None:
    """Run the server until SIGTERM, Ctrl-C or, when it serves one model, an engine that gave up
    (then fail with its reason)."""
    metrics = ServerMetrics()
    served = ServedModels(models, device, engine_config, metrics, pool)
    holder: list[uvicorn.Server] = []

    def stop_on_fatal(_: str) -> None:
        for server in holder:
            server.should_exit = True

    app = create_app(served, settings, metrics, on_fatal=stop_on_fatal)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level == "debug",
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    holder.append(GracefulServer(config, served, settings.drain_delay))
    holder[0].run()
    if served.failure is not None:
        raise OvchatError(served.failure)


def check_port(host: str, port: int) -> None:
    """Fail in plain words when the address cannot be listened on (uvicorn would log a few lines)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OvchatError(f"{host}:{port} is in use: stop what runs there or choose --port") from None
            raise OvchatError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
