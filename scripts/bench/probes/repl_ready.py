"""How soon each chat REPL is ready to type: `ovchat chat` against llama-cli, on the same model.

    PYTHONPATH=scripts/bench build/venv/bin/python scripts/bench/probes/repl_ready.py --gguf FILE \
        [--llama-cli PATH] [--rounds 5]

Each round starts both in a fresh pseudo-terminal (order alternating) and times process start →
its prompt on the screen (ovchat's ">>> ", llama-cli's "> "), then quits with Ctrl-D. ovchat runs
the default model's IR (the model loads behind its prompt: ovchat.cli.opening), llama-cli the GGUF the
IR was built from, both on 2 threads. Medians with min–max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pexpect

from lib.machine import machine
from lib.paths import BUILD


def ready_seconds(command: list[str], prompt: str) -> float:
    started = time.perf_counter()
    child = pexpect.spawn(command[0], command[1:], encoding="utf-8", timeout=120)
    child.expect_exact(prompt)
    seconds = time.perf_counter() - started
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", required=True, help="the GGUF llama-cli runs")
    parser.add_argument("--llama-cli", default=str(BUILD / "llama.cpp/build/bin/llama-cli"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ovchat = [str(Path(sys.executable).with_name("ovchat")), "chat", "--threads", "2"]
    engines = {
        "ovchat chat": (ovchat, ">>> "),
        "llama-cli": ([args.llama_cli, "-m", args.gguf, "-t", "2"], "\n> "),
    }
    times: dict[str, list[float]] = {name: [] for name in engines}
    for round_ in range(args.rounds):
        for name in list(engines) if round_ % 2 == 0 else reversed(engines):
            times[name].append(ready_seconds(*engines[name]))
    print(f"{machine()}; {args.rounds} rounds, medians (min–max)\n")
    print("| REPL | start → ready to type (s) |\n|---|---:|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f}) |")
    ratio = statistics.median(times["ovchat chat"]) / statistics.median(times["llama-cli"])
    print(f"\novchat chat ÷ llama-cli: {ratio:.2f}×")


if __name__ == "__main__":
    main()
