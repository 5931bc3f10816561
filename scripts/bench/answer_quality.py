#!/usr/bin/env python3
"""Greedy answers of ovchat's models and of llama.cpp on the same GGUF, side by side: how many loop.

Two prompt sets: prompts/chosen.json (the probes used while choosing the build) and
prompts/heldout.json (written before any measurement and never used to choose anything).
Every answer is greedy, at most MAX_TOKENS tokens; it counts as degenerate when it runs to the
limit repeating itself (ovchat.prompt.endings.is_degenerate, the build gate's own rule).

usage (runtime env): build/venv/bin/python scripts/bench/answer_quality.py --gguf FILE \\
        [--model NAME_OR_DIR ...] [--write FIDELITY.md]
llama.cpp runs in build/venv-llamacpp (the xllamacpp wheel, `make bench` installs it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import openvino_genai as ov_genai

from lib.paths import ROOT
from ovchat.model.device import DeviceConfig
from ovchat.model.pipeline import open_model
from ovchat.prompt.endings import is_degenerate

PROMPTS = Path(__file__).resolve().with_name("prompts")
LLAMA_PYTHON = ROOT / "build" / "venv-llamacpp" / "bin" / "python"
MAX_TOKENS = 256
THREADS = 2
SECTION = "## Answers compared with llama.cpp"
LLAMA_WORKER = """
import json, sys, time
import xllamacpp as xlc
params = xlc.CommonParams()
params.model.path = sys.argv[1]
params.n_ctx = 2048
params.cpuparams.n_threads = params.cpuparams_batch.n_threads = int(sys.argv[2])
params.sampling.temp = 0.0
server = xlc.Server(params)
for line in sys.stdin:
    request = {"messages": [{"role": "user", "content": json.loads(line)}], "max_tokens": int(sys.argv[3]),
               "temperature": 0.0}
    began = time.perf_counter()
    reply = server.handle_chat_completions(request)
    seconds = time.perf_counter() - began
    choice = reply["choices"][0]
    print(json.dumps({"text": choice["message"]["content"], "limit": choice["finish_reason"] == "length",
                      "tokens": reply["usage"]["completion_tokens"], "seconds": seconds}), flush=True)
"""


@dataclass(frozen=True)
class Answer:
    prompt: str
    text: str
    hit_limit: bool
    tokens: int = 0  # generated, and the wall time of the whole request (its prompt's prefill included)
    seconds: float = 0.0


def ovchat_answers(model: str | None, prompts: list[str], precision: str | None = None) -> list[Answer]:
    """Greedy chat answers with the model's verified runtime settings (what `ovchat ask -t 0` does),
    or at `precision` (what `--precision` asks for)."""
    opened = open_model(model, DeviceConfig(inference_precision=precision) if precision else None)
    config = opened.pipeline.get_generation_config()
    config.max_new_tokens, config.do_sample = MAX_TOKENS, False
    answers = []
    for prompt in prompts:
        began = time.perf_counter()
        result = opened.pipeline.generate(ov_genai.ChatHistory([{"role": "user", "content": prompt}]), config)
        seconds = time.perf_counter() - began
        limit = result.finish_reasons[0] == ov_genai.GenerationFinishReason.LENGTH
        tokens = result.perf_metrics.get_num_generated_tokens()
        answers.append(Answer(prompt, result.texts[0], limit, tokens, seconds))
    return answers


def llamacpp_answers(gguf: Path, prompts: list[str]) -> list[Answer]:
    lines = "".join(json.dumps(p) + "\n" for p in prompts)
    result = subprocess.run(
        [str(LLAMA_PYTHON), "-c", LLAMA_WORKER, str(gguf), str(THREADS), str(MAX_TOKENS)],
        input=lines,
        capture_output=True,
        text=True,
        check=True,
    )
    replies = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return [
        Answer(p, r["text"], r["limit"], r["tokens"], r["seconds"])
        for p, r in zip(prompts, replies, strict=True)
    ]


def count_degenerate(answers: list[Answer], tokenizer: ov_genai.Tokenizer) -> int:
    """Loops, judged on the token ids of the answer's text (the same vocabulary for every engine)."""

    def ids(text: str) -> list[int]:
        return [int(i) for i in tokenizer.encode(text, add_special_tokens=False).input_ids.data[0]]

    return sum(is_degenerate(ids(a.text), a.hit_limit) for a in answers)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gguf", type=Path, required=True, help="the GGUF llama.cpp runs")
    parser.add_argument(
        "--model", action="append", help="ovchat model (default: the default model); repeatable"
    )
    parser.add_argument(
        "--write", type=Path, help="put the table into this Markdown file (replacing its section)"
    )
    args = parser.parse_args()
    sets = {name: json.loads((PROMPTS / f"{name}.json").read_text()) for name in ("chosen", "heldout")}
    tokenizer = open_model(args.model[0] if args.model else None).tokenizer
    engines: dict[str, Callable[[list[str]], list[Answer]]] = {
        f"llama.cpp ({args.gguf.name})": partial(llamacpp_answers, args.gguf)
    }
    for model in args.model or [None]:
        label = f"ovchat {open_model(model).files.name}" if model else "ovchat (default model)"
        engines[label] = partial(ovchat_answers, model)
    rows: list[str] = []
    samples: dict[str, str] = {}
    for label, answer in engines.items():
        counts = []
        for prompts in sets.values():
            answers = answer(prompts)
            counts.append(f"{count_degenerate(answers, tokenizer)} of {len(prompts)}")
            samples.setdefault(label, answers[0].text)  # the first chosen prompt: the Lisbon question
        rows.append(f"| {label} | {' | '.join(counts)} |")
        print(rows[-1], flush=True)
    table = "\n".join(
        [
            SECTION,
            "",
            f"Greedy answers (at most {MAX_TOKENS} tokens, {THREADS} threads) that run to the limit in a "
            "loop, written by `scripts/bench/answer_quality.py`: `prompts/chosen.json` were the probes used "
            "while choosing the build; `prompts/heldout.json` were written before any measurement and never "
            "used to choose anything.",
            "",
            "| engine | degenerate, chosen prompts | degenerate, held-out prompts |",
            "|---|---|---|",
            *rows,
            "",
            f"The first chosen prompt, {sets['chosen'][0]!r}:",
            "",
            *[f"- {label}: {text[:300]!r}" for label, text in samples.items()],
            "",
        ]
    )
    print(table)
    if args.write:
        text = args.write.read_text() if args.write.is_file() else ""
        head = text.split(SECTION)[0].rstrip()
        args.write.write_text((head + "\n\n" if head else "") + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
