"""Rewriting one marked section of a report (BENCHMARKS.md, FIDELITY.md) and leaving the rest as is."""

from __future__ import annotations

from pathlib import Path

from lib.paths import BENCHMARKS


def replace_marked(text: str, begin: str, end: str, block: str) -> str:
    """`text` with the span from `begin` to `end` (both included) replaced by `block`, which carries
    its own markers; appended when the markers are not both there."""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip() + "\n\n" + block + "\n"


def replace_section(name: str, text: str, path: Path = BENCHMARKS) -> None:
    """Rewrite the part of `path` between `<!-- name: start -->` and `<!-- name: end -->`."""
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_marked(current, start, end, f"{start}\n{text.rstrip()}\n{end}"))
