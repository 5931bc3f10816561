"""Where a one-shot `ovchat ask` spends its time before the first token, part by part, in fresh
processes (the compiled-model cache warm, as on every start after the first):

    PYTHONPATH=scripts/bench build/venv/bin/python scripts/bench/probes/startup_breakdown.py \
        [--model DIR] [--rounds 5]

Parts: the interpreter with `import openvino_genai`; the tokenizer and detokenizer (GenAI compiles
them on every start, with no cache); the model (SDPA, from the compiled-model cache, the tokenizer
given, at the CPU properties its build verified, as ovchat opens it); the first answer's prompt
step (TTFT) and its first decode step (the streamer's first text needs the second token), each
paying the CPU plugin's one-time kernel set-up and weight repacking for its shape; the same two
steps of a second answer, for comparison. Also the whole `ovchat ask` process to its first
streamed character.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lib.paths import DEFAULT_MODEL

PROBE = r"""
import time
began = time.perf_counter()
import json, sys
import openvino_genai as g
imported = time.perf_counter()
path, cache = sys.argv[1], sys.argv[2]
tokenizer = g.Tokenizer(path)
tokenized = time.perf_counter()
# The CPU properties the model's build verified (ovchat applies them: f32 where bf16 drifted).
runtime = json.load(open(path + "/manifest.json")).get("runtime", {})
pipe = g.LLMPipeline(path, tokenizer, "CPU", {"ATTENTION_BACKEND": "SDPA", "CACHE_DIR": cache, **runtime})
loaded = time.perf_counter()
config = pipe.get_generation_config()
config.max_new_tokens, config.do_sample = 3, False


def answer(text):
    asked, first = time.perf_counter(), []
    def streamer(piece):
        first.append(first or time.perf_counter())
        return g.StreamingStatus.RUNNING
    result = pipe.generate(g.ChatHistory([{"role": "user", "content": text}]), config, streamer)
    return result.perf_metrics.get_ttft().mean / 1000, first[0] - asked


prompt_step, first_piece = answer("What is the capital of France?")
again_step, again_piece = answer("Name a colour.")
print(json.dumps({"import": imported - began, "tokenizer": tokenized - imported, "model": loaded - tokenized,
                  "first_prompt_step": prompt_step, "first_decode_step": first_piece - prompt_step,
                  "second_prompt_step": again_step, "second_decode_step": again_piece - again_step}))
"""


def ask_to_first_character(model: str, env: dict[str, str]) -> float:
    """Seconds from starting `ovchat ask` to the first character it prints."""
    ovchat = str(Path(sys.executable).with_name("ovchat"))
    started = time.perf_counter()
    process = subprocess.Popen(
        [ovchat, "ask", "--model", model, "-n", "8", "What is the capital of France?"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert process.stdout is not None
    process.stdout.read(1)
    seconds = time.perf_counter() - started
    process.wait()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    parts: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "XDG_CACHE_HOME": home}
        cache = str(Path(home) / "ovchat" / "compiled")
        for _ in range(2):  # fill the compiled-model cache, as the first start does
            subprocess.run([sys.executable, "-c", PROBE, args.model, cache], check=True, capture_output=True)
            ask_to_first_character(args.model, env)
        for _ in range(args.rounds):
            done = subprocess.run(
                [sys.executable, "-c", PROBE, args.model, cache], check=True, capture_output=True, text=True
            )
            for name, value in json.loads(done.stdout.strip().splitlines()[-1]).items():
                parts.setdefault(name, []).append(value)
            whole = ask_to_first_character(args.model, env)
            parts.setdefault("ovchat ask → first character", []).append(whole)
    print(f"{args.rounds} rounds, fresh processes, medians (min–max), seconds")
    print("| part | s |")
    print("|---|---:|")
    for name, values in parts.items():
        print(f"| {name} | {statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f}) |")


if __name__ == "__main__":
    main()
