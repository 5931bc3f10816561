"""`ovchat serve` end to end: a real server process on a loopback port, the real model, the real SDK."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from conftest import DEFAULT_MODEL_NAME, embedded_gguf, inference_precision
from servers import Server, start_server

API_KEY = "test-key-3f1c"
MAX_BATCH, MAX_QUEUE, MAX_BODY = 8, 2, 64_000


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[Server]:
    started = start_server(
        model_dir,
        "--max-batch",
        str(MAX_BATCH),
        "--max-queue",
        str(MAX_QUEUE),
        "--max-body-bytes",
        str(MAX_BODY),
        "--max-tokens-limit",
        "8192",
        key=API_KEY,
    )
    yield started
    started.stop()


@pytest.fixture(scope="module")
def base(server: Server) -> str:
    return server.base


@pytest.fixture(scope="module")
def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=API_KEY, max_retries=0)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


def chat(client: openai.OpenAI, text: str, max_tokens: int = 32) -> str:
    reply = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": text}], max_tokens=max_tokens, temperature=0
    )
    return reply.choices[0].message.content or ""


def shared_start(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def test_health_needs_no_key_and_models_lists_the_model(base: str, client: openai.OpenAI) -> None:
    assert httpx.get(f"{base}/health").json()["status"] == "ok"
    assert [m.id for m in client.models.list()] == [DEFAULT_MODEL_NAME]


def test_chat_answer_carries_usage_and_finish_reason(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smollm2",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a color."},
        ],
        max_tokens=4,
        temperature=0,
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 4


def test_ignore_eos_generates_max_tokens_past_the_end_of_the_answer(client: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "What is the capital of France?"}]
    short = client.chat.completions.create(model="m", messages=question, max_tokens=40, temperature=0)  # type: ignore[arg-type]
    assert short.choices[0].finish_reason == "stop" and short.usage and short.usage.completion_tokens < 40
    longer = client.chat.completions.create(
        model="m",
        messages=question,
        max_tokens=40,
        temperature=0,
        extra_body={"ignore_eos": True},  # type: ignore[arg-type]
    )
    assert longer.choices[0].finish_reason == "length"
    assert longer.usage and longer.usage.completion_tokens == 40


def test_streamed_chat_equals_the_whole_answer(client: openai.OpenAI) -> None:
    # A prompt's first answer computes its whole prefill; later ones reuse its KV blocks from the
    # prefix cache, which shifts the kernels' rounding (docs/performance.md). So both compared
    # answers reuse them.
    chat(client, "Why is the sky blue?", 24)
    whole = chat(client, "Why is the sky blue?", 24)
    stream = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Why is the sky blue?"}],
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 24


def test_a_chat_resent_turn_by_turn_answers_in_context(client: openai.OpenAI) -> None:
    # Each turn resends the whole history; with the prefix cache (on by default) only the new part
    # is computed, and the answer must still see everything before it: "its" tower is Paris's only
    # when the first turn is there (test_session has the control without it).
    messages: list[dict[str, str]] = []
    for text in ("What is the capital of France?", "And what is its most famous tower?"):
        messages.append({"role": "user", "content": text})
        reply = client.chat.completions.create(model="m", messages=messages, max_tokens=24, temperature=0)  # type: ignore[arg-type]
        messages.append({"role": "assistant", "content": reply.choices[0].message.content or ""})
    assert "Paris" in messages[-1]["content"]
    again = client.chat.completions.create(model="m", messages=messages[:-1], max_tokens=24, temperature=0)  # type: ignore[arg-type]
    assert "Paris" in (again.choices[0].message.content or "")  # a repeat, served from the cached prefix


def test_completions_continue_the_raw_prompt(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="smollm2", prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=["7"]
    )
    assert reply.object == "text_completion"
    assert reply.choices[0].text.startswith(" 5, 6,")
    assert "7" not in reply.choices[0].text and reply.choices[0].finish_reason == "stop"


def test_json_schema_answer_parses_and_matches_the_schema(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "country": {"enum": ["France", "Spain", "Italy"]},
            "is_capital": {"type": "boolean"},
        },
        "required": ["city", "country", "is_capital"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Give the largest city of France as JSON."}],
        max_tokens=80,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    data = json.loads(reply.choices[0].message.content or "")
    assert set(data) == {"city", "country", "is_capital"}
    assert isinstance(data["city"], str) and len(data["city"]) <= 20
    assert data["country"] in ("France", "Spain", "Italy") and isinstance(data["is_capital"], bool)


def test_sse_framing_byte_by_byte(base: str) -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 5,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, headers=auth()) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(response.iter_raw())
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    assert all(e.startswith(b"data: {") and b"\n" not in e for e in events[:-2])
    chunks = [json.loads(e[len(b"data: ") :]) for e in events[:-2]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    *middle, finish, last = chunks
    assert all(c["choices"][0]["finish_reason"] is None and c["usage"] is None for c in middle)
    assert finish["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 5
    assert len(middle) - 1 <= 5  # one chunk per token at most, after the role chunk


def test_eight_concurrent_streams_finish_unmixed_and_start_as_alone(client: openai.OpenAI) -> None:
    subjects = ["elephants", "volcanoes", "the Moon", "honey", "penguins", "Mount Everest", "coffee", "Mars"]
    prompts = [f"Tell me one fact about {subject}." for subject in subjects]
    alone = [chat(client, p) for p in prompts]
    together: list[str] = [""] * len(prompts)
    tokens = [0] * len(prompts)

    def stream(i: int) -> None:
        events = client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": prompts[i]}],
            max_tokens=32,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in events:
            if chunk.choices:
                together[i] += chunk.choices[0].delta.content or ""
            if chunk.usage:
                tokens[i] = chunk.usage.completion_tokens

    started = time.perf_counter()
    threads = [threading.Thread(target=stream, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    rate = sum(tokens) / elapsed
    print(f"\n8 concurrent streams: {sum(tokens)} tokens in {elapsed:.2f} s = {rate:.1f} tokens/s")
    assert all(tokens)
    # Greedy answers under batching are not bit-identical to solo ones: the CPU kernels' results
    # depend on the batch shape, which flips near-ties between tokens (measured: 3-8 of these 8
    # answers identical per run in bf16, 5 of 8 even in f32), always after a shared start. What
    # must hold: no answer is mixed up with another request's (each is nearest its own solo
    # answer, past the shared "One fact about"), and each starts as its solo answer does.
    same = sum(t == a for t, a in zip(together, alone, strict=True))
    print(f"{same} of {len(prompts)} identical to their solo answers")
    for i, text in enumerate(together):
        own = shared_start(text, alone[i])
        others = [shared_start(text, a) for j, a in enumerate(alone) if j != i]
        assert own > max(others) and own >= min(len(alone[i]), 24), (text, alone[i])


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_client_disconnect_cancels_the_request_and_the_next_is_served(
    server: Server, client: openai.OpenAI
) -> None:
    cancelled = lambda: server.metric_or_zero("ovchat_generations_total", outcome="cancelled")  # noqa: E731
    before = cancelled()
    body = {
        "messages": [{"role": "user", "content": "Write a long story."}],
        "max_tokens": 2000,
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.stream("POST", f"{server.base}/v1/chat/completions", json=body, headers=auth()) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]
    assert sum(line.startswith("data: ") for line in received) >= 3
    wait_for(lambda: cancelled() == before + 1)  # counted when the engine drops it...
    assert server.metric("ovchat_requests_running") == 0  # ...and it left the batch at that moment
    assert chat(client, "Say hello.", 8)


def test_a_client_that_gives_up_on_a_whole_answer_cancels_it(server: Server) -> None:
    # Non-streamed: nothing is written until the end, so only the disconnect tells the server.
    cancelled = lambda: server.metric_or_zero("ovchat_generations_total", outcome="cancelled")  # noqa: E731
    before = cancelled()
    body = {
        "messages": [{"role": "user", "content": "Write a long story."}],
        "max_tokens": 2000,
        "ignore_eos": True,
    }
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{server.base}/v1/chat/completions", json=body, headers=auth(), timeout=httpx.Timeout(60, read=1)
        )
    # 2,000 tokens take well over a minute here: only a cancellation ends it this soon
    wait_for(lambda: cancelled() == before + 1, timeout=30)
    assert server.metric("ovchat_requests_running") == 0


ASK = {"messages": [{"role": "user", "content": "x"}]}
BAD_REQUESTS = [
    ("malformed JSON", b'{"messages": [', None, 400, None),
    ("wrong type", {**ASK, "temperature": "hot"}, None, 400, "temperature"),
    ("empty messages", {"messages": []}, None, 400, "messages"),
    ("unknown role", {"messages": [{"role": "robot", "content": "x"}]}, None, 400, "messages[0].role"),
    ("n=2", {**ASK, "n": 2}, None, 400, "n"),
    ("tool without a function", {**ASK, "tools": [{"type": "function"}]}, None, 400, "tools[0].function"),
    ("top_logprobs", {**ASK, "logprobs": True, "top_logprobs": 5}, None, 400, "top_logprobs"),
    ("negative max_tokens", {**ASK, "max_tokens": -1}, None, 400, "max_tokens"),
    ("min_p of 1", {**ASK, "min_p": 1.0}, None, 400, "min_p"),
    ("oversized body", {"messages": [{"role": "user", "content": "x" * MAX_BODY}]}, None, 413, None),
    ("missing API key", ASK, {}, 401, None),
    ("wrong API key", ASK, {"Authorization": "Bearer nope"}, 401, None),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "param"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_request_gets_an_openai_error_and_the_server_stays_up(
    base: str, case: str, body: object, headers: dict[str, str] | None, status: int, param: str | None
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(auth() if headers is None else headers)}
    response = httpx.post(f"{base}/v1/chat/completions", content=content, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    assert httpx.get(f"{base}/health").status_code == 200


def test_prompt_plus_max_tokens_over_the_context_is_context_length_exceeded(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, "Hi", max_tokens=8192)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="x", prompt="Hi", max_tokens=8192)
    assert (caught.value.code, caught.value.param) == ("context_length_exceeded", "prompt")


def test_a_full_queue_answers_503_with_retry_after(base: str) -> None:
    body = {"messages": [{"role": "user", "content": "Count to fifty."}], "max_tokens": 24}
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def send() -> None:
        response = httpx.post(f"{base}/v1/chat/completions", json=body, headers=auth(), timeout=60)
        with lock:
            results.append(response)

    threads = [threading.Thread(target=send) for _ in range(MAX_BATCH + MAX_QUEUE + 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    busy = [r for r in results if r.status_code == 503]
    assert busy and all(r.headers["Retry-After"] and r.json()["error"]["code"] == "queue_full" for r in busy)
    assert all(r.status_code in (200, 503) for r in results)


def test_sigterm_lets_the_running_answer_finish_and_exits_0(model_dir: Path) -> None:
    own = start_server(model_dir)  # its own server: stopping it cannot disturb the other tests
    try:
        body = {
            "messages": [{"role": "user", "content": "Tell a story."}],
            "max_tokens": 40,
            "ignore_eos": True,
            "stream": True,
        }
        with httpx.stream("POST", f"{own.base}/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            next(lines)
            own.process.send_signal(signal.SIGTERM)
            rest = list(lines)
        assert "data: [DONE]" in rest
        assert any('"finish_reason":"length"' in line for line in rest)
        assert own.process.wait(timeout=30) == 0
    finally:
        own.stop()


def test_serves_a_gguf_file_directly_converting_it_once(model_dir: Path, tmp_path: Path) -> None:
    # model_dir: the default build installs the GGUF; this server runs without a prefix cache
    cache, stamps = {"XDG_CACHE_HOME": str(tmp_path)}, []
    for start in ("converts the file", "opens the kept IR"):
        own = start_server(embedded_gguf(), "--no-prefix-cache", env=cache)
        try:
            client = openai.OpenAI(base_url=f"{own.base}/v1", api_key="unused", max_retries=0)
            assert "Paris" in chat(client, "What is the capital of France?", 16), start
            assert httpx.get(f"{own.base}/v1/models").json()["data"][0]["id"] == "SmolLM2-135M-Instruct.Q4_1"
        finally:
            own.stop()
        kept = list((tmp_path / "ovchat" / "gguf").iterdir())
        assert len(kept) == 1 and (kept[0] / "ovchat-gguf.json").is_file(), start
        stamps.append((kept[0] / "ovchat-gguf.json").stat().st_mtime_ns)
    assert stamps[0] == stamps[1]  # the second start converted nothing


def ask_chat(client: openai.OpenAI, text: str, **fields: object) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}], **fields)  # type: ignore[arg-type, call-overload, no-any-return]


def test_max_completion_tokens_limits_the_answer(client: openai.OpenAI) -> None:
    reply = ask_chat(client, "Tell me about the sea.", max_completion_tokens=7, temperature=0)
    assert reply.usage is not None and reply.usage.completion_tokens == 7
    assert reply.choices[0].finish_reason == "length"


def test_json_object_answers_with_a_json_object(client: openai.OpenAI) -> None:
    reply = ask_chat(
        client,
        "Give me a JSON object with one key, name, whose value is Ada.",
        max_tokens=100,
        temperature=0,
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_stop_on_chat_ends_the_answer_before_the_stop_string(client: openai.OpenAI) -> None:
    reply = ask_chat(
        client, "Count from 1 to 10, separated by commas.", max_tokens=40, temperature=0, stop=["5"]
    )
    text = reply.choices[0].message.content or ""
    assert "4" in text and "5" not in text and reply.choices[0].finish_reason == "stop"


def test_content_as_a_list_of_parts_is_the_same_as_text(client: openai.OpenAI) -> None:
    parts = [{"type": "text", "text": "What is the capital "}, {"type": "text", "text": "of France?"}]
    listed = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": parts}],  # type: ignore[list-item]
        max_tokens=12,
        temperature=0,
    )
    assert listed.choices[0].message.content == chat(client, "What is the capital of France?", 12)


def test_seed_repeats_a_sampled_answer_and_another_seed_changes_it(client: openai.OpenAI) -> None:
    def sampled(seed: int) -> str:
        return (
            ask_chat(client, "Invent a name for a dragon.", max_tokens=16, temperature=1.0, seed=seed)
            .choices[0]
            .message.content
            or ""
        )

    answers = [sampled(seed) for seed in (1, 2, 3)]
    assert sampled(1) == answers[0]
    assert len(set(answers)) > 1


def test_top_p_this_small_leaves_only_the_most_likely_token(client: openai.OpenAI) -> None:
    greedy = chat(client, "Invent a name for a dragon.", 16)
    for seed in (1, 2, 3):
        tight = ask_chat(
            client, "Invent a name for a dragon.", max_tokens=16, temperature=1.0, top_p=0.001, seed=seed
        )
        assert tight.choices[0].message.content == greedy


def test_min_p_this_high_leaves_only_the_most_likely_token(client: openai.OpenAI) -> None:
    # The same seeds sample different answers without it (test_seed_repeats_a_sampled_answer_...).
    greedy = chat(client, "Invent a name for a dragon.", 16)
    for seed in (1, 2, 3):
        tight = ask_chat(
            client,
            "Invent a name for a dragon.",
            max_tokens=16,
            temperature=1.0,
            seed=seed,
            extra_body={"min_p": 0.999},  # vLLM's and llama-server's extra, as OpenAI's SDK sends one
        )
        assert tight.choices[0].message.content == greedy


def test_presence_and_frequency_penalties_change_the_answer(client: openai.OpenAI) -> None:
    question = "List ten fruits, one per line."
    plain = ask_chat(client, question, max_tokens=48, temperature=0).choices[0].message.content
    assert (
        ask_chat(client, question, max_tokens=48, temperature=0, presence_penalty=2.0)
        .choices[0]
        .message.content
        != plain
    )
    assert (
        ask_chat(client, question, max_tokens=48, temperature=0, frequency_penalty=2.0)
        .choices[0]
        .message.content
        != plain
    )


def test_without_temperature_the_model_samples_as_its_authors_recommend(client: openai.OpenAI) -> None:
    # SmolLM2's generation_config.json (written by the build): temperature 0.2, top_p 0.9
    question = "Invent a name for a dragon."
    greedy = chat(client, question, 16)
    defaults = [
        ask_chat(client, question, max_tokens=16, seed=seed).choices[0].message.content for seed in range(6)
    ]
    explicit = [
        ask_chat(client, question, max_tokens=16, seed=seed, temperature=0.2, top_p=0.9)
        .choices[0]
        .message.content
        for seed in range(6)
    ]
    assert defaults == explicit
    assert any(d != greedy for d in defaults)


def test_every_protected_route_needs_the_key_and_health_does_not(base: str) -> None:
    for method, path in (
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("GET", "/v1/models"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("POST", "/tokenize"),
        ("POST", "/detokenize"),
        ("POST", "/apply-template"),
    ):
        response = httpx.request(method, f"{base}{path}", json={})
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "invalid_api_key"
    for path in ("/health", "/live"):
        assert httpx.get(f"{base}{path}").status_code == 200


def test_a_chunked_body_over_the_limit_gets_413(base: str) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY // 1000 + 2):
            yield b"x" * 1000
        yield b'"}]}'

    response = httpx.post(f"{base}/v1/chat/completions", content=chunks(), headers=auth())
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


def test_metrics_count_requests_tokens_latencies_and_queue(server: Server, client: openai.OpenAI) -> None:
    ok_before = server.metric_or_zero("ovchat_requests_total", path="/v1/chat/completions", code="200")
    tokens_before = server.metric("ovchat_completion_tokens_total")
    prompt_before = server.metric("ovchat_prompt_tokens_total")
    ttft_before = server.metric("ovchat_time_to_first_token_seconds_count")
    reply = ask_chat(client, "Say hi.", max_tokens=5, temperature=0, extra_body={"ignore_eos": True})
    assert server.metric("ovchat_requests_total", path="/v1/chat/completions", code="200") == ok_before + 1
    assert server.metric("ovchat_completion_tokens_total") == tokens_before + 5
    assert reply.usage is not None
    assert server.metric("ovchat_prompt_tokens_total") == prompt_before + reply.usage.prompt_tokens
    assert server.metric("ovchat_time_to_first_token_seconds_count") == ttft_before + 1
    assert server.metric("ovchat_time_per_output_token_seconds_count") > 0
    assert server.metric("ovchat_requests_queued") == 0 and server.metric("ovchat_requests_running") == 0
    assert server.metric("ovchat_ready") == 1 and server.metric("process_resident_memory_bytes") > 1e8
    bad = httpx.post(f"{server.base}/v1/chat/completions", json={"messages": []}, headers=auth())
    assert bad.status_code == 400
    assert server.metric("ovchat_requests_total", path="/v1/chat/completions", code="400") >= 1


def post(base: str, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{base}{path}", json=body, headers=auth(), timeout=60)


def test_tokenize_counts_a_prompt_as_its_generation_does_and_detokenize_round_trips(
    base: str, client: openai.OpenAI
) -> None:
    text = "héllo wörld 😀 <|im_start|>"
    ids = post(base, "/tokenize", {"content": text}).json()["tokens"]
    pieces = post(base, "/tokenize", {"content": text, "with_pieces": True}).json()["tokens"]
    assert [p["id"] for p in pieces] == ids and 1 in ids  # the special token's text is parsed
    # A token holding part of the emoji is its bytes; all of them together are the text's bytes.
    assert any(isinstance(p["piece"], list) for p in pieces)
    joined = b"".join(
        bytes(p["piece"]) if isinstance(p["piece"], list) else p["piece"].encode() for p in pieces
    )
    assert joined == text.encode()
    assert post(base, "/detokenize", {"tokens": ids}).json() == {"content": text}
    answer = client.completions.create(model="m", prompt=text, max_tokens=1)
    assert answer.usage is not None and answer.usage.prompt_tokens == len(ids)


def test_apply_template_is_the_prompt_a_chat_answer_reads(base: str, client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    prompt = post(base, "/apply-template", {"messages": messages}).json()["prompt"]
    assert prompt.endswith("<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n")
    answer = client.chat.completions.create(model="m", messages=messages, max_tokens=1)  # type: ignore[arg-type]
    ids = post(base, "/tokenize", {"content": prompt}).json()["tokens"]
    assert answer.usage is not None and answer.usage.prompt_tokens == len(ids)


def test_a_token_outside_the_vocabulary_is_a_400_and_the_next_request_is_served(base: str) -> None:
    refused = post(base, "/detokenize", {"tokens": [5, 49152]})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "tokens"
    assert "49151" in refused.json()["error"]["message"]
    assert post(base, "/detokenize", {"tokens": [5]}).status_code == 200


def test_logprobs_give_each_generated_tokens_logprob_whole_and_streamed(
    client: openai.OpenAI, manifest: dict
) -> None:
    ask = {"model": "m", "messages": [{"role": "user", "content": "Name a fruit."}], "max_tokens": 12}
    whole = client.chat.completions.create(**ask, temperature=0, logprobs=True)  # type: ignore[call-overload]
    choice = whole.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    tokens = choice.logprobs.content
    assert whole.usage is not None and len(tokens) == whole.usage.completion_tokens
    assert all(t.logprob <= 0 and t.top_logprobs == [] and t.bytes is not None for t in tokens)
    answer_bytes = b"".join(bytes(t.bytes or []) for t in tokens)
    assert answer_bytes.decode().startswith(choice.message.content or "")  # then, maybe, <|im_end|>
    stream = client.chat.completions.create(**ask, temperature=0, logprobs=True, stream=True)  # type: ignore[call-overload]
    streamed = [
        t
        for chunk in stream
        if chunk.choices and chunk.choices[0].logprobs
        for t in chunk.choices[0].logprobs.content or []
    ]
    assert [t.token for t in streamed] == [t.token for t in tokens]
    # The second request finds the prompt in the prefix cache, so its logits come from other shapes:
    # equal within f32's rounding, within bf16's where the model runs at bf16 (0.09 seen on a Zen 4).
    tolerance = 1e-3 if inference_precision(manifest) == "f32" else 0.2
    assert [t.logprob for t in streamed] == pytest.approx([t.logprob for t in tokens], abs=tolerance)
    plain = client.chat.completions.create(**ask, temperature=0)  # type: ignore[call-overload]
    assert plain.choices[0].logprobs is None and plain.choices[0].message.content == choice.message.content


def test_a_likely_token_has_a_high_logprob_and_completions_use_the_legacy_shape(
    client: openai.OpenAI,
) -> None:
    likely = client.completions.create(
        model="m", prompt="The capital of France is", max_tokens=1, temperature=0, logprobs=0
    )
    logprobs = likely.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens == [" Paris"] and logprobs.text_offset == [0]
    assert logprobs.token_logprobs is not None and -1.5 < logprobs.token_logprobs[0] < 0  # p > 0.22
    longer = client.completions.create(
        model="m", prompt="One, two, three,", max_tokens=6, logprobs=0, temperature=0
    )
    legacy = longer.choices[0].logprobs
    assert legacy is not None and legacy.tokens is not None and legacy.text_offset is not None
    assert "".join(legacy.tokens).startswith(longer.choices[0].text)
    assert legacy.text_offset == [len("".join(legacy.tokens[:i])) for i in range(len(legacy.tokens))]
    assert legacy.top_logprobs is None  # the engine reports no alternatives: none are made up
    stream = client.completions.create(
        model="m", prompt="One, two, three,", max_tokens=6, logprobs=0, temperature=0, stream=True
    )
    streamed = [
        t for chunk in stream if chunk.choices[0].logprobs for t in chunk.choices[0].logprobs.tokens or []
    ]
    assert streamed == legacy.tokens
