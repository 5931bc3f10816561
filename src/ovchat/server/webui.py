"""The browser chat page at `/`: three static files shipped in the package, no build step, no CDN."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import Response

# URL path -> (file in ovchat/server/web, media type). The Gate opens exactly these paths, no prefix.
WEB_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
# The page only ever puts the model's text into the DOM as text; the policy is a second line of defence.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


def add_web_ui(app: FastAPI) -> None:
    """GET routes for the page and its assets, left out of the OpenAPI document."""
    for path, (name, media_type) in WEB_FILES.items():
        body = (files("ovchat.server") / "web" / name).read_bytes()
        app.add_api_route(path, _static(body, media_type), methods=["GET"], include_in_schema=False)


def _static(body: bytes, media_type: str) -> Callable[[], Awaitable[Response]]:
    async def serve() -> Response:
        return Response(body, media_type=media_type, headers=HEADERS)

    return serve
