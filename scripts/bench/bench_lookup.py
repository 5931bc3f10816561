"""Prompt-lookup decoding, side by side: `ovchat serve` with and without --prompt-lookup, and
llama-server (llama.cpp's own, built for this CPU) with and without its n-gram speculation
(`--spec-type ngram-simple`), one client at a time, greedy, on the same model.

    build/venv/bin/python scripts/bench/bench_lookup.py --gguf FILE.gguf --llama-server PATH

Tasks come in two kinds: copy-heavy answers (edit given code, correct a given text, answer from a
given document, continue a given list), where the answer repeats the prompt, and plain chat, where
it does not. Each engine runs every task once per round; rounds interleave the engines (one server
up at a time: two cores). Decode speed is the answer's tokens after the first over the time from
the first streamed token to the last; the median over rounds is reported, and the ratios against
plain llama-server. "same" says whether ovchat's answer with prompt lookup equals its answer
without, word for word.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from lib.chat_stream import chat_body, stream_chat
from lib.machine import machine
from lib.paths import DEFAULT_MODEL, ROOT
from lib.server import ServerProcess, ovchat_serve, start_on_free_port

CODE = """def load_scores(path):
    scores = {}
    with open(path) as handle:
        for line in handle:
            name, value = line.strip().split(",")
            scores[name] = int(value)
    return scores


def best(scores):
    top = None
    for name, value in scores.items():
        if top is None or value > scores[top]:
            top = name
    return top
"""
LETTER = (
    "Dear Mr Patel, thank you for your leter of 12 March. We have recieved the samples you sent and "
    "our team is testing them this week. We expect to send you the results by the end of the month, "
    "together with our offer for the first order. If you have any questions in the meantime, please "
    "do not hesitate to contact me. Kind regards, Anna Novak, Purchasing Manager."
)
DOCUMENT = (
    "The Harbour Library opens at 9 am on weekdays and at 10 am on Saturdays; it is closed on Sundays. "
    "Members may borrow up to eight books at a time for three weeks. A book can be renewed twice, "
    "online or at the desk, unless another member has reserved it. Late returns cost 20 cents per "
    "book per day. The reading room on the second floor is for quiet study and has forty desks with "
    "power sockets. Wi-Fi is free for everyone; the password is printed on the back of the library card."
)
TASKS = {
    "edit code": (
        "copy",
        f"Rename the variable `scores` to `results` in this Python code and return the whole code:\n\n{CODE}",
    ),
    "correct text": (
        "copy",
        f"Correct the spelling mistakes in this letter and return it in full:\n\n{LETTER}",
    ),
    "from a document": (
        "copy",
        f"{DOCUMENT}\n\nQuote the sentences of this text about borrowing and renewing books, word for word.",
    ),
    "continue a list": (
        "copy",
        "Continue this list in the same format up to item 12:\n1. January - winter\n2. February - winter\n"
        "3. March - spring\n4. April - spring\n5. May - spring\n",
    ),
    "capital": ("chat", "What is the capital of France? Tell me a little about it."),
    "trip": ("chat", "Plan a trip to Lisbon: three must-see sights and why."),
    "function": ("chat", "Write a Python function that checks whether a word is a palindrome."),
}


@dataclass
class Engine:
    name: str
    command: Callable[[int], list[str]]  # its command line on a given port
    speeds: dict[str, list[float]] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)


def start(engine: Engine) -> ServerProcess:
    return start_on_free_port(engine.command, what=engine.name, timeout=300, quiet=True)


def stream(server: ServerProcess, prompt: str, max_tokens: int) -> tuple[float, int, str]:
    """(decode tokens/s after the first token, tokens, text) of one greedy streamed answer."""
    body = chat_body([{"role": "user", "content": prompt}], max_tokens)
    with httpx.Client(base_url=server.url, timeout=600) as client:  # a connection per request
        streamed = stream_chat(client, body)
    return streamed.decode_tokens_per_s, streamed.completion_tokens, streamed.text


def engines(args: argparse.Namespace) -> list[Engine]:
    """ovchat serve with and without prompt lookup, llama-server with and without its n-gram drafts."""
    ovchat = ["--model", args.model, "--threads", str(args.threads)]
    threads = ["-t", str(args.threads), "-tb", str(args.threads)]
    llama = ["-m", args.gguf, *threads, "-np", "1", "-c", "4096", "--no-webui"]
    spec = ["--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", str(args.ngram)]

    def llama_server(*extra: str) -> Callable[[int], list[str]]:
        return lambda port: [args.llama_server, "--port", str(port), *llama, *extra]

    return [
        Engine("ovchat", lambda port: ovchat_serve(port, *ovchat)),
        Engine("ovchat --prompt-lookup", lambda port: ovchat_serve(port, *ovchat, "--prompt-lookup")),
        Engine("llama-server", llama_server()),
        Engine("llama-server ngram-simple", llama_server(*spec)),
    ]


def report(made: list[Engine], rounds: int) -> str:
    base = {task: statistics.median(made[2].speeds[task]) for task in TASKS}
    head = "| task | kind | " + " | ".join(f"{e.name} tok/s" for e in made)
    head += " | ovchat+lookup vs llama-server | ovchat+lookup vs llama-server ngram | same answer |"
    lines = [f"CPU: {machine()}; {rounds} rounds, medians; greedy, one client.", "", head]
    lines.append("|" + "---|" * (len(made) + 5))
    for task, (kind, _) in TASKS.items():
        speeds = [statistics.median(e.speeds[task]) for e in made]
        same = "yes" if made[0].answers[task] == made[1].answers[task] else "no"
        cells = " | ".join(f"{s:.1f}" for s in speeds)
        ratio_cells = f"{speeds[1] / base[task]:.2f}× | {speeds[1] / speeds[3]:.2f}×"
        lines.append(f"| {task} | {kind} | {cells} | {ratio_cells} | {same} |")
    for kind in ("copy", "chat"):
        tasks = [t for t, (k, _) in TASKS.items() if k == kind]
        ratios = [statistics.median(made[1].speeds[t]) / base[t] for t in tasks]
        own = [statistics.median(made[1].speeds[t]) / statistics.median(made[0].speeds[t]) for t in tasks]
        mean, own_mean = statistics.geometric_mean(ratios), statistics.geometric_mean(own)
        lines.append(
            f"\n{kind}: ovchat+lookup vs llama-server geometric mean {mean:.2f}×; "
            f"vs ovchat without lookup {own_mean:.2f}×"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", required=True, help="the GGUF file llama-server runs")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--llama-server", default=str(ROOT / "build/llama.cpp/build/bin/llama-server"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ngram", type=int, default=3, help="llama-server's lookup n-gram (ovchat's is 3)")
    args = parser.parse_args()
    made = engines(args)
    for round_ in range(args.rounds):
        for engine in made if round_ % 2 == 0 else reversed(made):
            server = start(engine)
            try:
                stream(server, "Hi", 8)  # the first answer's set-up is not decode
                for task, (_, prompt) in TASKS.items():
                    speed, tokens, text = stream(server, prompt, args.max_tokens)
                    engine.speeds.setdefault(task, []).append(speed)
                    engine.answers[task], engine.tokens[task] = text, tokens
                    line = f"{engine.name:26} {task:16} {tokens:4} tokens {speed:7.1f} tok/s"
                    print(f"round {round_ + 1} {line}", flush=True)
            finally:
                server.stop()
    print()
    print(report(made, args.rounds))


if __name__ == "__main__":
    main()
