"""Benchmark the server's prefix cache: TTFT per turn of a chat that resends its history each turn.

    build/venv/bin/python scripts/bench_prefix_cache.py [--rounds 3] [--turns 6]

Starts two servers, `--prefix-cache` and `--no-prefix-cache`, and plays the same greedy
conversation about a ~500-token document on both, turn by turn, alternating A B A B so that
machine drift hits both alike. Prints a markdown table of median TTFT per turn and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx
from bench_serve import start_server

from ovchat_build.fidelity.eval_set import TEXTS_DIR

DOCUMENT = (TEXTS_DIR / "prose_lighthouse.txt").read_text()[:2500]
QUESTIONS = [
    "Summarize the text in one sentence.",
    "Who is the main character?",
    "Where does it happen?",
    "What is the mood of the text?",
    "Give the text a title.",
    "Name one detail from the text.",
    "What happens at the end?",
    "Thank you.",
]


def ask(client: httpx.Client, messages: list[dict[str, str]]) -> tuple[float, str, int]:
    """TTFT in seconds (to the first content chunk), the answer, and the prompt's token count."""
    body = {"model": "bench", "messages": messages, "max_tokens": 32, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    started, ttft, parts, prompt_tokens = time.perf_counter(), None, [], 0
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and (text := chunk["choices"][0]["delta"].get("content")):
                ttft = ttft if ttft is not None else time.perf_counter() - started
                parts.append(text)
            if chunk.get("usage"):
                prompt_tokens = chunk["usage"]["prompt_tokens"]
    return (ttft if ttft is not None else time.perf_counter() - started), "".join(parts), prompt_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="conversations played on each server")
    parser.add_argument("--turns", type=int, default=6, choices=range(1, len(QUESTIONS) + 1))
    args = parser.parse_args()
    servers = {name: start_server([flag]) for name, flag in (("cache", "--prefix-cache"),
                                                              ("no cache", "--no-prefix-cache"))}  # fmt: skip
    ttfts: dict[str, list[list[float]]] = {name: [[] for _ in range(args.turns)] for name in servers}
    tokens = [0] * args.turns
    try:
        clients = {name: httpx.Client(base_url=url, timeout=600) for name, (_, url) in servers.items()}
        for name in servers:  # warm-up, and a first answer that fills neither cache with this document
            ask(clients[name], [{"role": "user", "content": "Hi"}])
        for round_ in range(args.rounds):
            # Each round starts a new conversation (a different first line), so the first turn
            # always pays the full prefill and later turns can reuse only this conversation.
            system = f"Conversation {round_}. Answer about this text:\n{DOCUMENT}"
            history = {name: [{"role": "system", "content": system}] for name in servers}
            for turn in range(args.turns):
                for name in servers:
                    history[name].append({"role": "user", "content": QUESTIONS[turn]})
                    ttft, answer, tokens[turn] = ask(clients[name], history[name])
                    history[name].append({"role": "assistant", "content": answer})
                    ttfts[name][turn].append(ttft)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()
    print(f"Median TTFT over {args.rounds} conversations; the history is resent every turn.\n")
    print("| turn | prompt tokens | TTFT ms, prefix cache | TTFT ms, no cache | cache ÷ no cache |")
    print("|---:|---:|---:|---:|---:|")
    for turn in range(args.turns):
        cached = 1000 * statistics.median(ttfts["cache"][turn])
        plain = 1000 * statistics.median(ttfts["no cache"][turn])
        print(f"| {turn + 1} | {tokens[turn]} | {cached:.0f} | {plain:.0f} | {cached / plain:.2f}× |")


if __name__ == "__main__":
    main()
