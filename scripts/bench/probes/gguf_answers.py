#!/usr/bin/env python3
"""Looping answers per GGUF type: ovchat's default build of each fixture beside llama.cpp on the same file.

For each type (scripts/dev/gguf_fixtures.sh makes the files from the embedded model), the file is
built as a user's `make model SOURCE=file.gguf` builds it (its own grid, the fidelity gate choosing
the runtime precision), then both engines answer answer_quality.py's two prompt sets greedily and
the answers that run to the limit in a loop are counted, and both engines' answers are timed. Each
measured type's row replaces its row in FIDELITY.md's table; the others stay, each naming its
machine and date.

usage (runtime env): PYTHONPATH=scripts/bench build/venv/bin/python scripts/bench/probes/gguf_answers.py \
    [TYPE...] [--precision f32]
(--precision adds a row at that precision beside the gate's, from the same build and llama.cpp answers)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from answer_quality import PROMPTS, Answer, count_degenerate, llamacpp_answers, ovchat_answers
from lib.machine import machine
from lib.paths import BUILD, FIDELITY, ROOT
from ovchat.model.pipeline import open_model

FIXTURES = BUILD / "fixtures" / "gguf"
MODELS = BUILD / "gguf-answers" / "models"
BUILD_COMMAND = BUILD / "venv-build" / "bin" / "ovchat-build"
TYPES = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0"]
BEGIN, END = "<!-- gguf-answers -->", "<!-- /gguf-answers -->"


def build(kind: str) -> Path:
    """The file's default build (gate included), cached: a second run is the build's no-op check."""
    subprocess.run([str(ROOT / "scripts" / "dev" / "gguf_fixtures.sh"), kind], check=True)
    name = f"smollm2-{kind.lower()}"
    command = [
        str(BUILD_COMMAND),
        str(FIXTURES / f"smollm2-{kind}.gguf"),
        "--out-dir",
        str(MODELS),
        "--name",
        name,
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return MODELS / name


def row(kind: str, sets: dict[str, list[str]], precisions: list[str | None]) -> dict[tuple[str, str], str]:
    """One row per precision: the gate's (None) and any asked for; llama.cpp answers once."""
    folder = build(kind)
    manifest = json.loads((folder / "manifest.json").read_text())
    gates = manifest["fidelity"]["ir_inference_precision"]
    tokenizer = open_model(str(folder)).tokenizer
    fixture = FIXTURES / f"smollm2-{kind}.gguf"

    def measured(answer: Callable[[list[str]], list[Answer]]) -> tuple[str, int, float]:
        answered = {name: answer(prompts) for name, prompts in sets.items()}
        counts = [count_degenerate(answers, tokenizer) for answers in answered.values()]
        cell = " / ".join(f"{n} of {len(p)}" for n, p in zip(counts, sets.values(), strict=True))
        every = [a for answers in answered.values() for a in answers]
        return cell, sum(counts), sum(a.tokens for a in every) / sum(a.seconds for a in every)

    theirs = measured(lambda p: llamacpp_answers(fixture, p))
    lines = {}
    for precision in dict.fromkeys(None if p == gates else p for p in precisions):
        ours = measured(partial(ovchat_answers, str(folder), precision=precision))
        label = gates if precision in (None, gates) else f"{precision} (asked; the gate's {gates})"
        verdict = "yes" if ours[1] <= theirs[1] else f"no (+{ours[1] - theirs[1]})"
        speed = f"{ours[2]:.1f} / {theirs[2]:.1f} ({ours[2] / theirs[2]:.2f}x)"
        lines[(kind, label)] = (
            f"| {kind} | {label} | {ours[0]} | {theirs[0]} | {ours[1]} vs {theirs[1]} | {verdict} "
            f"| {speed} | {machine()}, {time.strftime('%Y-%m-%d')} |"
        )
        print(lines[(kind, label)], flush=True)
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("types", nargs="*", help=f"the types to measure (all: {' '.join(TYPES)})")
    parser.add_argument("--precision", choices=["f32", "bf16", "f16"], help="a row at this precision too")
    args = parser.parse_args(argv)
    if unknown := set(args.types) - set(TYPES):
        parser.error(f"unknown types: {' '.join(sorted(unknown))}")
    sets = {name: json.loads((PROMPTS / f"{name}.json").read_text()) for name in ("chosen", "heldout")}
    path = FIDELITY
    head, rest = path.read_text().split(BEGIN)
    kept, tail = rest.split(END, 1)
    # Rows not measured this time stay as they were (each row says where and when).
    rows = {(c[1].strip(), c[2].strip()): line for line in kept.splitlines() if len(c := line.split("|")) > 3}
    for kind in args.types or TYPES:
        rows.update(row(kind, sets, [None, args.precision] if args.precision else [None]))
    rows = {key: line for key, line in rows.items() if key[0] in TYPES}  # not the header rows
    table = "\n".join(
        [
            BEGIN,
            "| file | IR precision | ovchat, chosen / held-out | llama.cpp, chosen / held-out "
            "| of 50 | no more than llama.cpp | answer tokens/s, ovchat / llama.cpp | CPU, date |",
            "|---|---|---|---|---|---|---|---|",
            *(rows[key] for key in sorted(rows, key=lambda k: (TYPES.index(k[0]), k[1]))),
            END,
        ]
    )
    print(table)
    path.write_text(head + table + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
