"""The OpenAI-compatible HTTP app: the routes of ovchat.server.routes behind the gate, and the
uvicorn server that leaves gracefully on SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import FrameType

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ovchat import __version__
from ovchat.errors import OvchatError
from ovchat.server.guard import Gate, route_paths
from ovchat.server.metrics import ServerMetrics
from ovchat.server.models import ServedModels
from ovchat.server.protocol.http_errors import error_reply
from ovchat.server.routes import API, Replica
from ovchat.server.settings import ServerSettings
from ovchat.server.webui import add_web_ui

log = logging.getLogger("ovchat.server")


def create_app(
    models: ServedModels,
    settings: ServerSettings,
    metrics: ServerMetrics,
    on_fatal: Callable[[str], None] | None = None,
) -> FastAPI:
    """The FastAPI app over its (not yet loaded) models; the lifespan starts and stops them."""
    replica = Replica(models, settings, metrics)
    app = FastAPI(
        title="ovchat",
        version=__version__,
        lifespan=_lifespan(replica, on_fatal),
        docs_url=None,
        redoc_url=None,
    )
    app.state.replica = replica
    app.include_router(API)
    if settings.web_ui:
        add_web_ui(app)
    _add_error_handlers(app)
    _add_middleware(app, replica)
    metrics.watch(lambda: float(replica.ready()))
    _document_security(app)
    return app


def _lifespan(
    replica: Replica, on_fatal: Callable[[str], None] | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        replica.models.start(on_fatal)
        yield
        replica.models.close(replica.settings.shutdown_timeout)

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure, ovchat's or FastAPI's, answers with the one OpenAI error body."""
    handler: Callable[[Request, Exception], Awaitable[JSONResponse]] = _handle
    for kind in (OvchatError, RequestValidationError, HTTPException):
        app.add_exception_handler(kind, handler)


async def _handle(_: Request, exc: Exception) -> JSONResponse:
    return error_reply(exc).response()


def _add_middleware(app: FastAPI, replica: Replica) -> None:
    """The gate (after every route is declared: it reads them), and outside it CORS when asked for."""
    settings = replica.settings
    # The router's own list too: recent FastAPI keeps an included router as one entry of app.routes.
    paths = route_paths([*API.routes, *app.routes])
    app.add_middleware(Gate, settings=settings, metrics=replica.metrics, paths=paths)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )


def _document_security(app: FastAPI) -> None:
    """Name the bearer scheme that the protected routes' OpenAPI entries refer to."""
    app.openapi_schema = None
    schema = app.openapi()
    schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}


class GracefulServer(uvicorn.Server):
    """uvicorn that shuts down gracefully on SIGTERM and then exits 0 (uvicorn would re-raise it).

    With a `drain_delay`, SIGTERM first turns /health to 503 and keeps serving for that long, so a
    load balancer's health checks take the replica out before it stops listening; a second SIGTERM
    ends the wait. Then the engines drain: new requests get 503, running answers finish."""

    def __init__(self, config: uvicorn.Config, models: ServedModels, drain_delay: float) -> None:
        super().__init__(config)
        self.models = models
        self.drain_delay = drain_delay
        self._stop_at: float | None = None  # when the drain period ends

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_delay > 0 and self._stop_at is None:
            # A signal handler must not block: on_tick ends the period on the event loop.
            self.models.leave()
            self._stop_at = time.monotonic() + self.drain_delay
            log.info("SIGTERM: /health answers 503; serving %g s more, then shutting down", self.drain_delay)
            return
        self._shut_down(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._stop_at is not None and time.monotonic() >= self._stop_at and not self.should_exit:
            self._shut_down(signal.SIGTERM, None)
        return await super().on_tick(counter)

    def _shut_down(self, sig: int, frame: FrameType | None) -> None:
        self.models.drain()
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM and sig in self._captured_signals:
            self._captured_signals.remove(sig)
