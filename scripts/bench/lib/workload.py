"""What the benchmarks ask: the side-by-side question and its length, and prompts new to a server.

Stdlib only: bench_workers.py imports it in each engine's own venv.
"""

from __future__ import annotations

# What every side-by-side run asks, and how long an answer it generates (eos ignored).
QUESTION = "Write a short story about a lighthouse keeper."
NEW_TOKENS = 128

TOPICS = ("a lighthouse", "a robot", "the sea", "a mountain", "a city", "a forest", "a train", "the moon")


def fresh_prompt(tag: str, index: int) -> str:
    """A story request no earlier request began with: the tag makes every prompt new, so a server's
    prefix cache cannot shorten a prefill that a first-time request would pay."""
    return f"Request {tag}-{index}: write a long story about {TOPICS[index % len(TOPICS)]}."
