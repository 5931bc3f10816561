"""Where a one-shot `ovchat ask` spends its time before the first token, part by part, in fresh
processes (the compiled-model cache warm, as on every start after the first):

    build/venv/bin/python scripts/bench/startup_breakdown.py [--model DIR] [--rounds 5]

Parts: the interpreter with `import openvino_genai`; the tokenizer and detokenizer (GenAI compiles
them on every start, with no cache); the model (SDPA, from the compiled-model cache, the tokenizer
given); the first answer's prompt step (TTFT: the CPU plugin's kernel set-up and weight repacking);
and, for comparison, the TTFT of a second answer in the same process. Also the whole `ovchat ask`
process to its first streamed character.
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

ROOT = Path(__file__).resolve().parents[2]
PROBE = r"""
import time
began = time.perf_counter()
import json, sys
import openvino_genai as g
imported = time.perf_counter()
path, cache = sys.argv[1], sys.argv[2]
tokenizer = g.Tokenizer(path)
tokenized = time.perf_counter()
pipe = g.LLMPipeline(path, tokenizer, "CPU", {"ATTENTION_BACKEND": "SDPA", "CACHE_DIR": cache})
loaded = time.perf_counter()
config = pipe.get_generation_config()
config.max_new_tokens, config.do_sample = 1, False
chat = g.ChatHistory([{"role": "user", "content": "What is the capital of France?"}])
pipe.generate(chat, config)
first = time.perf_counter()
pipe.generate(g.ChatHistory([{"role": "user", "content": "Name a colour."}]), config)
second = time.perf_counter()
print(json.dumps({"import": imported - began, "tokenizer": tokenized - imported, "model": loaded - tokenized,
                  "first_ttft": first - loaded, "second_ttft": second - first}))
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
    parser.add_argument("--model", default=str(ROOT / "build" / "models" / "smollm2-135m-instruct-int4"))
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
