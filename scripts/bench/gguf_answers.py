#!/usr/bin/env python3
"""Looping answers per GGUF type: ovchat's default build of each fixture beside llama.cpp on the same file.

For each type (scripts/dev/gguf_fixtures.sh makes the files from the embedded model), the file is
built as a user's `make model SOURCE=file.gguf` builds it (its own grid, the fidelity gate choosing
the runtime precision), then both engines answer answer_quality.py's two prompt sets greedily and
the answers that run to the limit in a loop are counted, and both engines' answers are timed. Each
measured type's row replaces its row in FIDELITY.md's table; the others stay, each naming its
machine and date.

usage (runtime env): build/venv/bin/python scripts/bench/gguf_answers.py [TYPE...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from answer_quality import PROMPTS, count_degenerate, llamacpp_answers, ovchat_answers
from report import machine

from ovchat.model import open_model

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "build" / "fixtures" / "gguf"
MODELS = ROOT / "build" / "gguf-answers" / "models"
BUILD = ROOT / "build" / "venv-build" / "bin" / "ovchat-build"
TYPES = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0"]
BEGIN, END = "<!-- gguf-answers -->", "<!-- /gguf-answers -->"


def build(kind: str) -> Path:
    """The file's default build (gate included), cached: a second run is the build's no-op check."""
    subprocess.run([str(ROOT / "scripts" / "dev" / "gguf_fixtures.sh"), kind], check=True)
    name = f"smollm2-{kind.lower()}"
    command = [str(BUILD), str(FIXTURES / f"smollm2-{kind}.gguf"), "--out-dir", str(MODELS), "--name", name]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return MODELS / name


def row(kind: str, sets: dict[str, list[str]]) -> str:
    folder = build(kind)
    manifest = json.loads((folder / "manifest.json").read_text())
    precision = manifest["fidelity"]["ir_inference_precision"]
    tokenizer = open_model(str(folder)).tokenizer
    fixture = FIXTURES / f"smollm2-{kind}.gguf"
    cells, totals, speeds = [], [], []
    for answer in (lambda p: ovchat_answers(str(folder), p), lambda p: llamacpp_answers(fixture, p)):
        answered = {name: answer(prompts) for name, prompts in sets.items()}
        counts = [count_degenerate(answers, tokenizer) for answers in answered.values()]
        cells.append(" / ".join(f"{n} of {len(p)}" for n, p in zip(counts, sets.values(), strict=True)))
        totals.append(sum(counts))
        every = [a for answers in answered.values() for a in answers]
        speeds.append(sum(a.tokens for a in every) / sum(a.seconds for a in every))
    verdict = "yes" if totals[0] <= totals[1] else f"no (+{totals[0] - totals[1]})"
    speed = f"{speeds[0]:.1f} / {speeds[1]:.1f} ({speeds[0] / speeds[1]:.2f}x)"
    line = (
        f"| {kind} | {precision} | {cells[0]} | {cells[1]} | {totals[0]} vs {totals[1]} | {verdict} "
        f"| {speed} | {machine()}, {time.strftime('%Y-%m-%d')} |"
    )
    print(line, flush=True)
    return line


def main(argv: list[str]) -> int:
    sets = {name: json.loads((PROMPTS / f"{name}.json").read_text()) for name in ("chosen", "heldout")}
    path = ROOT / "FIDELITY.md"
    head, rest = path.read_text().split(BEGIN)
    kept, tail = rest.split(END, 1)
    # Rows of types not measured this time stay as they were (each row says where and when).
    rows = {cells[1].strip(): line for line in kept.splitlines() if len(cells := line.split("|")) > 2}
    for kind in argv or TYPES:
        rows[kind] = row(kind, sets)
    table = "\n".join(
        [
            BEGIN,
            "| file | IR precision (the gate's) | ovchat, chosen / held-out | llama.cpp, chosen / held-out "
            "| of 50 | no more than llama.cpp | answer tokens/s, ovchat / llama.cpp | CPU, date |",
            "|---|---|---|---|---|---|---|---|",
            *(rows[k] for k in TYPES if k in rows),
            END,
        ]
    )
    print(table)
    path.write_text(head + table + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
