"""Benchmark the server's prefix cache: TTFT per turn of a chat that resends its history each turn.

    PYTHONPATH=scripts/bench build/venv/bin/python scripts/bench/probes/bench_prefix_cache.py \
        [--rounds 3] [--turns 6]

Starts two servers, `--prefix-cache` and `--no-prefix-cache`, and plays the same greedy
conversation about a ~500-token document on both, turn by turn, alternating A B A B so that
machine drift hits both alike. Prints a markdown table of median TTFT per turn and the ratio.
"""

from __future__ import annotations

import argparse
import statistics

import httpx

from lib.chat_stream import chat_body, stream_chat
from lib.server import ServerProcess, ovchat_serve, start_on_free_port
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
    streamed = stream_chat(client, chat_body(messages, 32))
    return streamed.ttft_s, streamed.text, streamed.prompt_tokens


def start(flag: str) -> ServerProcess:
    return start_on_free_port(
        lambda port: ovchat_serve(port, flag), what="ovchat serve", timeout=300, quiet=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="conversations played on each server")
    parser.add_argument("--turns", type=int, default=6, choices=range(1, len(QUESTIONS) + 1))
    args = parser.parse_args()
    servers = {"cache": start("--prefix-cache"), "no cache": start("--no-prefix-cache")}
    ttfts: dict[str, list[list[float]]] = {name: [[] for _ in range(args.turns)] for name in servers}
    tokens = [0] * args.turns
    try:
        clients = {name: httpx.Client(base_url=server.url, timeout=600) for name, server in servers.items()}
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
        for server in servers.values():
            server.stop()
    print(f"Median TTFT over {args.rounds} conversations; the history is resent every turn.\n")
    print("| turn | prompt tokens | TTFT ms, prefix cache | TTFT ms, no cache | cache ÷ no cache |")
    print("|---:|---:|---:|---:|---:|")
    for turn in range(args.turns):
        cached = 1000 * statistics.median(ttfts["cache"][turn])
        plain = 1000 * statistics.median(ttfts["no cache"][turn])
        print(f"| {turn + 1} | {tokens[turn]} | {cached:.0f} | {plain:.0f} | {cached / plain:.2f}× |")


if __name__ == "__main__":
    main()
