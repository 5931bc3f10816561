"""The gate in front of every route: API key, body size limit, request counting (pure ASGI middleware).

It knows the paths from the app's own routes (ovchat.server.routes declares them), so a new route is
counted under its path and asks for the key unless its OpenAPI entry says it needs none.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ovchat.server.metrics import ServerMetrics
from ovchat.server.protocol.http_errors import HttpRefusal, error_reply
from ovchat.server.settings import ServerSettings
from ovchat.server.webui import WEB_FILES


@dataclass(frozen=True)
class RoutePaths:
    """The paths the gate tells apart: every other path is counted as "other" and asks for the key."""

    known: frozenset[str]  # counted under their own path label
    open: frozenset[str]  # answered without an API key


def route_paths(routes: Sequence[BaseRoute]) -> RoutePaths:
    """The gate's view of an app's routes: an API route that documents no security is open.

    The chat page's paths keep their label when the page is off, so turning it off does not move
    its requests (404s then) to "other"."""
    known = {route.path for route in routes if isinstance(route, Route)} | set(WEB_FILES)
    open_paths = {
        route.path
        for route in routes
        if isinstance(route, APIRoute) and "security" not in (route.openapi_extra or {})
    }
    return RoutePaths(frozenset(known), frozenset(open_paths))


class Gate:
    """Pure ASGI middleware in front of every route: API key, body size limit, request counting."""

    def __init__(
        self, app: ASGIApp, settings: ServerSettings, metrics: ServerMetrics, paths: RoutePaths
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"] if scope["path"] in self.paths.known else "other"
        counted = False

        async def counting_send(message: Message) -> None:
            nonlocal counted
            if message["type"] == "http.response.start" and not counted:
                counted = True  # before the client can see the answer, so a scrape after it counts it
                self.metrics.count_request(path, message["status"])
            await send(message)

        try:
            problem = self._check_key(scope)
            body = b""
            if problem is None:
                body, problem = await self._read_body(scope, receive)
            if problem is not None:
                await error_reply(problem).response()(scope, receive, counting_send)
                return
            await self.app(scope, _replay(body, receive), counting_send)
        finally:
            if not counted:  # the app failed before it answered
                self.metrics.count_request(path, 500)

    def _check_key(self, scope: Scope) -> HttpRefusal | None:
        key = self.settings.api_key
        if key is None or scope["path"] in self.paths.open or scope["method"] == "OPTIONS":
            return None
        headers = dict(scope["headers"])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode()):
            return None
        return HttpRefusal(
            "missing or wrong API key: send 'Authorization: Bearer <key>'",
            401,
            code="invalid_api_key",
            error_type="authentication_error",
        )

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, HttpRefusal | None]:
        limit = self.settings.max_body_bytes
        too_big = HttpRefusal(f"the request body is larger than {limit} bytes", 413, code="body_too_large")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return b"", too_big
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return b"", too_big
            more = message.get("more_body", False)
        return b"".join(chunks), None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands over the already-read body once, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
