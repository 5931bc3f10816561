"""`ovchat serve` options, each on a server of its own: CORS, the loading window, the default bind,
prefill chunks, the prefix cache, the API key from the environment."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from conftest import embedded_gguf
from servers import OVCHAT, Server, free_port, start_server

LONG_PROMPT = " ".join(f"Fact {n}: the river ran past the old stone wall." for n in range(60))  # ~700 tokens


def test_cors_is_off_by_default_and_on_for_the_named_origin(model_dir: Path, default_server: Server) -> None:
    origin = "https://my.app"
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    plain = default_server
    assert (
        "access-control-allow-origin"
        not in httpx.options(f"{plain.base}/v1/chat/completions", headers=preflight).headers
    )
    assert (
        "access-control-allow-origin"
        not in httpx.get(f"{plain.base}/health", headers={"Origin": origin}).headers
    )
    cors = start_server(model_dir, "--cors", origin, key="k")
    try:
        answer = httpx.options(f"{cors.base}/v1/chat/completions", headers=preflight)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == origin
        assert "authorization" in answer.headers["access-control-allow-headers"].lower()
        other = httpx.options(
            f"{cors.base}/v1/chat/completions", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"
        get = httpx.get(f"{cors.base}/v1/models", headers={"Origin": origin, **cors.headers()})
        assert get.headers["access-control-allow-origin"] == origin
    finally:
        cors.stop()


def test_health_is_503_while_the_model_loads_then_200(model_dir: Path) -> None:
    # A .gguf file loads slowly (GenAI converts it), so the loading window is seconds wide.
    port = free_port()
    process = subprocess.Popen(
        [
            str(OVCHAT),
            "serve",
            "--model",
            str(embedded_gguf()),
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--cache-dir",
            "",
        ]
    )
    try:
        seen: list[tuple[int, str]] = []
        refused: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not seen or seen[-1][0] != 200):
            try:
                # Asked before /health each round, so a refusal is seen while loading.
                early = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
                )
                if early.status_code == 503:
                    assert early.headers["Retry-After"]
                    refused.append(early.json()["error"]["code"])
                response = httpx.get(f"http://127.0.0.1:{port}/health")
                if response.status_code == 503:
                    assert response.headers["Retry-After"]
                seen.append((response.status_code, response.json()["status"]))
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        assert (503, "loading") in seen and seen[-1] == (200, "ok")
        assert refused and set(refused) == {"model_not_ready"}
    finally:
        process.kill()
        process.wait()


def test_the_default_bind_is_loopback_only(default_server: Server) -> None:
    port = int(default_server.base.rsplit(":", 1)[1])
    listening = [
        line.split()[1]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[3] == "0A"
    ]
    assert f"0100007F:{port:04X}" in listening  # 127.0.0.1, not 0.0.0.0
    assert f"00000000:{port:04X}" not in listening


def steps_for(server: Server, prompt: str) -> float:
    """Engine steps one request takes (ovchat_engine_steps_total; nothing else runs meanwhile)."""
    before = server.metric("ovchat_engine_steps_total")
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 1}
    assert httpx.post(f"{server.base}/v1/chat/completions", json=body, timeout=120).status_code == 200
    return server.metric("ovchat_engine_steps_total") - before


def test_prefill_chunk_splits_a_long_prompt_into_that_many_tokens_per_step(model_dir: Path) -> None:
    small = start_server(model_dir, "--prefill-chunk", "64", "--no-prefix-cache")
    try:
        chunked = steps_for(small, LONG_PROMPT)
    finally:
        small.stop()
    large = start_server(model_dir, "--prefill-chunk", "1024", "--no-prefix-cache")
    try:
        whole = steps_for(large, LONG_PROMPT)
    finally:
        large.stop()
    assert whole <= 2 and chunked >= 10, (chunked, whole)


def test_the_prefix_cache_skips_the_prefill_of_a_prompt_seen_before(model_dir: Path) -> None:
    on = start_server(model_dir, "--prefill-chunk", "64")
    try:
        first, again = steps_for(on, LONG_PROMPT), steps_for(on, LONG_PROMPT)
    finally:
        on.stop()
    off = start_server(model_dir, "--prefill-chunk", "64", "--no-prefix-cache")
    try:
        first_off, again_off = steps_for(off, LONG_PROMPT), steps_for(off, LONG_PROMPT)
    finally:
        off.stop()
    assert first >= 10 and again <= 2, (first, again)  # the cached prefix is not computed again
    assert again_off == first_off >= 10


def test_the_api_key_can_come_from_the_environment(model_dir: Path) -> None:
    server = start_server(model_dir, env={"OVCHAT_API_KEY": "from-env"})
    try:
        assert httpx.get(f"{server.base}/v1/models").status_code == 401
        assert (
            httpx.get(f"{server.base}/v1/models", headers={"Authorization": "Bearer from-env"}).status_code
            == 200
        )
    finally:
        server.stop()
