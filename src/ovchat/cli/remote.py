"""`ovchat ask --server URL`: answer through a running `ovchat serve` instead of loading the model.

A one-shot `ask` pays Python's start, OpenVINO's import, the model load and the CPU plugin's
first-inference set-up on every call (measured on the default model: about 1.1 s to the first
token, most of it the load and the set-up); a resident server has paid them once, so a client
only pays Python's start and one request (what ollama users get from `ollama run`). Standard
library only: the bare CLI needs no HTTP package for this.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ovchat import GenerationOptions, TurnMetrics
from ovchat.errors import OvchatError
from ovchat.options import FIELD_SPECS, OPENAI_NAMES, cli_flag

# The fields with no request name (top_k, repetition_penalty) are not OpenAI fields: a server never
# sees them, so asking for them through one is an error.
NOT_SENT = {name: cli_flag(name) for name, spec in FIELD_SPECS.items() if not spec.openai}
TIMEOUT_S = 600.0  # a long answer on a busy server; the server itself bounds max_tokens


@dataclass(frozen=True)
class RemoteReply:
    """What the server answered, in the shape a local answer has (TurnMetrics timed by the client)."""

    text: str
    reasoning: str | None
    finish_reason: str  # stop | length | tool_calls
    model: str
    metrics: TurnMetrics


def request_body(
    text: str, options: GenerationOptions, system: str | None, raw: bool, model: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The route and the OpenAI request for one answer (streamed, with usage at the end); without
    `model`, the server's default model answers."""
    given = options.given()
    for name, flag in NOT_SENT.items():
        if name in given:
            raise OvchatError(
                f"{flag} cannot be sent to a server (it is not an OpenAI field): drop it or --server"
            )
    body: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
    if model:
        body["model"] = model
    for name, value in given.items():  # a field left at its default is the server's default too
        body[OPENAI_NAMES[name]] = list(value) if isinstance(value, tuple) else value
    if raw:
        return "/v1/completions", {**body, "prompt": text}
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": text}
    ]
    return "/v1/chat/completions", {**body, "messages": messages}


def ask_server(
    url: str,
    text: str,
    options: GenerationOptions,
    system: str | None = None,
    raw: bool = False,
    api_key: str | None = None,
    on_text: Callable[[str], None] | None = None,
    on_reasoning: Callable[[str], None] | None = None,
    model: str | None = None,
) -> RemoteReply:
    """Stream one answer from the `ovchat serve` at `url` (from its `model`, else its default).
    Leaving early (Ctrl-C) closes the connection, and the server cancels the request."""
    route, body = request_body(text, options, system, raw, model)
    started = time.perf_counter()
    with _exchange(url, "POST", route, api_key, body, "an OpenAI stream") as response:
        return _read_stream(response, raw, started, on_text, on_reasoning)


def _read_stream(
    response: http.client.HTTPResponse,
    raw: bool,
    started: float,
    on_text: Callable[[str], None] | None,
    on_reasoning: Callable[[str], None] | None,
) -> RemoteReply:
    parts: list[str] = []
    thoughts: list[str] = []
    reason, model, first = "stop", "", None
    usage: dict[str, Any] = {}
    for event in _events(response):
        if "error" in event:
            raise OvchatError(
                f"the server failed the answer: {event['error'].get('message', event['error'])}"
            )
        model = event.get("model", model)
        usage = event.get("usage") or usage
        for choice in event.get("choices", []):
            delta = choice.get("delta") or {}
            piece = choice.get("text") if raw else delta.get("content")
            thought = None if raw else delta.get("reasoning_content")
            if piece or thought:
                first = first if first is not None else time.perf_counter()
            if thought:
                thoughts.append(thought)
                if on_reasoning is not None:
                    on_reasoning(thought)
            if piece:
                parts.append(piece)
                if on_text is not None:
                    on_text(piece)
            reason = choice.get("finish_reason") or reason
    done = time.perf_counter()
    made = int(usage.get("completion_tokens", 0))
    ttft, total = ((first or done) - started) * 1000, (done - started) * 1000
    tpot = (total - ttft) / (made - 1) if made > 1 else 0.0
    metrics = TurnMetrics(
        input_tokens=int(usage.get("prompt_tokens", 0)),
        output_tokens=made,
        ttft_ms=round(ttft, 2),
        tpot_ms=round(tpot, 2),
        tokens_per_s=round(1000 / tpot, 2) if tpot else 0.0,
        generate_ms=round(total, 2),
    )
    return RemoteReply("".join(parts), "".join(thoughts) if thoughts else None, reason, model, metrics)


def _events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """The JSON payloads of a server-sent event stream, up to its [DONE]."""
    for line in response:
        if not line.startswith(b"data: "):
            continue
        data = line[6:].strip()
        if data == b"[DONE]":
            return
        yield json.loads(data)


def server_models(url: str, api_key: str | None = None) -> list[dict[str, Any]]:
    """The models the `ovchat serve` at `url` serves, as its GET /v1/models lists them."""
    with _exchange(url, "GET", "/v1/models", api_key, None, "an OpenAI model list") as response:
        return list(json.loads(response.read())["data"])


@contextlib.contextmanager
def _exchange(
    url: str, method: str, route: str, api_key: str | None, body: dict[str, Any] | None, shape: str
) -> Iterator[http.client.HTTPResponse]:
    """One request to the server at `url`, its 200 response read inside the block; every failure
    (no server, a refusal, an answer not in `shape`) is one OvchatError."""
    connection = _connect(url)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    if body is not None:
        headers |= {"Content-Type": "application/json", "Accept": "text/event-stream"}
    try:
        connection.request(method, _path(url, route), json.dumps(body).encode() if body else None, headers)
        response = connection.getresponse()
        if response.status != 200:
            raise OvchatError(f"the server at {url} answered {response.status}: {_error_message(response)}")
        yield response
    except (ValueError, KeyError, TypeError):
        raise OvchatError(f"the server at {url} did not answer as {shape}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise OvchatError(
            f"no ovchat server answers at {url} ({_reason(exc)}): start one with `ovchat serve`"
        ) from None
    finally:
        connection.close()


def _connect(url: str) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OvchatError(f"--server must be an http:// or https:// URL, not '{url}'")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return kind(parts.hostname, parts.port, timeout=TIMEOUT_S)


def _path(url: str, route: str) -> str:
    """The route under the URL's own path; a URL ending in /v1 (as OpenAI clients take it) works too."""
    base = urllib.parse.urlsplit(url).path.rstrip("/")
    return (base.removesuffix("/v1") + route) if base else route


def _error_message(response: http.client.HTTPResponse) -> str:
    text = response.read(65536).decode("utf-8", "replace")
    try:
        error = json.loads(text)["error"]
        return str(error.get("message", error))
    except (ValueError, KeyError, TypeError, AttributeError):
        return text.strip()[:200] or response.reason


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def encode_server(url: str, route: str, body: dict[str, Any], api_key: str | None = None) -> dict[str, Any]:
    """`embed --server` / `rerank --server`: one JSON request to /v1/embeddings or /v1/rerank."""
    with _exchange(url, "POST", route, api_key, body, "an embeddings or rerank answer") as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer
