"""The routes are declared once: the gate counts each under its path and asks for the key where the
OpenAPI document says so, without a list of its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Route
from test_engine_scheduler import make_engine, serve_engine

from ovchat.model.device import DeviceConfig
from ovchat.model.files import ModelFiles
from ovchat.server.app import create_app
from ovchat.server.engine.engine import Engine
from ovchat.server.guard import route_paths
from ovchat.server.metrics import ServerMetrics
from ovchat.server.routes import API, PROTECTED
from ovchat.server.settings import EngineConfig, ServerSettings

ROUTES = {"/openapi.json", "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/live"}
ROUTES |= {"/metrics", "/tokenize", "/detokenize", "/apply-template", "/", "/app.js", "/style.css"}
ROUTES |= {"/v1/models/{name}/load", "/v1/models/{name}/unload"}
ROUTES |= {"/v1/embeddings", "/v1/rerank", "/v2/rerank", "/rerank"}
OPEN = {"/health", "/live", "/", "/app.js", "/style.css"}  # the probes and the chat page need no key


def get_each(app: FastAPI, paths: list[str]) -> list[httpx.Response]:
    """GET every path in process, without a key (no lifespan: the engine is already started)."""

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(asyncio.wait_for(go(), timeout=10))


def declared(app: FastAPI) -> set[str]:
    return {route.path for route in [*API.routes, *app.routes] if isinstance(route, Route)}


def test_every_route_is_counted_under_its_own_path_and_any_other_path_as_other() -> None:
    engine, _ = make_engine()
    metrics = ServerMetrics()
    app = create_app(serve_engine(engine), ServerSettings(), metrics)
    paths = sorted(declared(app))
    responses = get_each(app, [*paths, "/nowhere", "/v1/nowhere"])
    engine.close()
    assert set(paths) == ROUTES
    for path, response in zip([*paths, "other", "other"], responses, strict=True):
        labels = {"path": path, "code": str(response.status_code)}
        assert metrics.registry.get_sample_value("ovchat_requests_total", labels), labels
    assert metrics.registry.get_sample_value("ovchat_requests_total", {"path": "other", "code": "404"}) == 2


def test_the_key_is_asked_for_on_every_route_but_the_probes_and_the_page() -> None:
    engine, _ = make_engine()
    for web_ui in (True, False):
        app = create_app(serve_engine(engine), ServerSettings(api_key="k", web_ui=web_ui), ServerMetrics())
        operations = app.openapi()["paths"].items()
        documented = {path for path, ops in operations if all("security" not in op for op in ops.values())}
        responses = dict(zip(sorted(ROUTES), get_each(app, sorted(ROUTES)), strict=True))
        refused = {path for path, response in responses.items() if response.status_code == 401}
        expected_open = OPEN if web_ui else {"/health", "/live"}
        assert ROUTES - refused == expected_open
        assert documented == {"/health", "/live"}  # the document says which need no key
    engine.close()


def test_a_route_added_later_is_known_and_keyed_as_its_declaration_says() -> None:
    app = FastAPI()
    app.add_api_route("/v1/new", lambda: None, openapi_extra=PROTECTED)
    app.add_api_route("/ping", lambda: None)
    paths = route_paths(app.routes)
    assert {"/v1/new", "/ping"} <= paths.known and "/v1/new" not in paths.open and "/ping" in paths.open


@pytest.mark.parametrize("web_ui", [True, False])
def test_the_key_opens_exactly_the_page_paths_and_only_while_the_page_is_on(web_ui: bool) -> None:
    # No model needed: the Gate answers before the engine is asked (the lifespan does not run).
    metrics = ServerMetrics()
    engine = Engine(
        ModelFiles(Path("model"), False, 8192), DeviceConfig(), EngineConfig(), metrics.for_model("m")
    )
    app = create_app(serve_engine(engine, load=False), ServerSettings(api_key="k", web_ui=web_ui), metrics)
    client = TestClient(app)
    for path in ("/", "/app.js", "/style.css"):
        assert client.get(path).status_code == (200 if web_ui else 401), path
    for path in ("/v1/models", "/metrics", "/index.html", "/app.js/", "/web/app.js", "/style.css/../metrics"):
        assert client.get(path).status_code == 401, path
    assert client.get("/", headers={"Authorization": "Bearer k"}).status_code == (200 if web_ui else 404)
