"""Fuzzing the HTTP API from its own OpenAPI document (schemathesis): no 5xx, and every response
conforms to the document (status codes, content types, bodies, headers). Bounded: a fixed number
of examples per operation, a derandomized run, and answers of at most 4 tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ovchat.model.device import DeviceConfig
from ovchat.model.files import ModelFiles
from ovchat.server.app import create_app
from ovchat.server.metrics import ServerMetrics
from ovchat.server.models import ServedModels
from ovchat.server.settings import EngineConfig, ServerSettings
from servers import Server, start_server

KEY = "fuzz-key"
ENCODER_PATHS = {"/v1/embeddings", "/v1/rerank", "/v2/rerank", "/rerank"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def fuzz_server(model_dir: Path) -> Iterator[Server]:
    started = start_server(model_dir, "--max-tokens-limit", "4", key=KEY)
    yield started
    started.stop()


def app_document() -> dict[str, Any]:
    """The server's OpenAPI document, from the app itself (no model needed to collect the tests);
    the first test checks that the running server serves this same document."""
    metrics = ServerMetrics()
    files = {"model": ModelFiles(Path("model"), False, 8192)}
    return create_app(
        ServedModels(files, DeviceConfig(), EngineConfig(), metrics), ServerSettings(), metrics
    ).openapi()


def test_the_openapi_document_needs_the_key_and_describes_every_route(fuzz_server: Server) -> None:
    assert httpx.get(f"{fuzz_server.base}/openapi.json").status_code == 401
    document = httpx.get(f"{fuzz_server.base}/openapi.json", headers=fuzz_server.headers()).json()
    assert set(document["paths"]) == {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/v1/models/{name}/load",
        "/v1/models/{name}/unload",
        "/health",
        "/live",
        "/metrics",
        "/tokenize",
        "/detokenize",
        "/apply-template",
        *ENCODER_PATHS,
    }
    temperature = document["components"]["schemas"]["ChatRequest"]["properties"]["temperature"]
    assert (temperature["minimum"], temperature["maximum"]) == (0.0, 2.0)  # GenerationOptions' bounds
    unavailable = {
        path: op["responses"]["503"]
        for path, operations in document["paths"].items()
        for op in operations.values()
        if "503" in op["responses"]
    }
    generating = {"/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize", "/apply-template"}
    generating |= ENCODER_PATHS
    assert set(unavailable) == generating | {"/health", "/live", "/v1/models/{name}/load"}
    assert all("Retry-After" in answer["headers"] for answer in unavailable.values())  # every 503 sends it
    assert document == app_document()


# schemathesis' lazy (fixture) loader does not run on pytest 9; the eager one does.
schema = schemathesis.openapi.from_dict(app_document())
ENCODING = "embeddings|rerank"


@schema.exclude(path_regex=ENCODING).parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_get_no_server_error_and_conform_to_the_document(
    case: schemathesis.Case, fuzz_server: Server
) -> None:
    case.call_and_validate(
        base_url=fuzz_server.base, headers=fuzz_server.headers(), checks=CHECKS, timeout=60
    )


@pytest.fixture(scope="module")
def encoder_server(embedder_dir: Path, reranker_dir: Path) -> Iterator[Server]:
    """MiniLM and the reranker: requests without `model` (and fuzzed names: 404) reach each kind."""
    started = start_server(embedder_dir, "--model", f"reranker={reranker_dir}", key=KEY)
    yield started
    started.stop()


@schema.include(path_regex=ENCODING).parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzzed_embedding_and_rerank_requests_get_no_server_error(
    case: schemathesis.Case, encoder_server: Server
) -> None:
    case.call_and_validate(
        base_url=encoder_server.base, headers=encoder_server.headers(), checks=CHECKS, timeout=60
    )


# The tool fields' shapes are in the document (schemathesis fuzzes them above); their values are
# JSON schemas, which it fills with arbitrary objects. These draw schemas that look like schemas,
# so that they get past the request's shape to the schema checks and to GenAI's grammar compiler.
SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "a", "(", "\\d+", "[z-a]"])
KEYWORDS = st.sampled_from(
    ["type", "properties", "required", "enum", "pattern", "minimum", "maxLength", "items", "$ref", "anyOf"]
)
SCHEMA_LIKE = st.recursive(
    SCALARS | st.sampled_from(["string", "object", "integer", "array", "#/nowhere"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(KEYWORDS | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
CHOICES = st.sampled_from(["auto", "required", "none", {"type": "function", "function": {"name": "f"}}])


@given(parameters=st.dictionaries(KEYWORDS, SCHEMA_LIKE, max_size=4), choice=CHOICES)
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzzed_tool_schemas_get_no_server_error(
    fuzz_server: Server, parameters: dict[str, Any], choice: Any
) -> None:
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object", **parameters}}}
        ],
        "tool_choice": choice,
        "max_tokens": 4,
    }
    url = f"{fuzz_server.base}/v1/chat/completions"
    response = httpx.post(url, json=body, headers=fuzz_server.headers(), timeout=60)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"]["param"].startswith("tools")
    # A schema only the grammar compiler refuses fails its step: the engine rebuilds, then serves.
    deadline = time.monotonic() + 120
    while httpx.get(f"{fuzz_server.base}/health").status_code != 200:
        assert time.monotonic() < deadline, "the engine did not come back"
        time.sleep(0.2)
