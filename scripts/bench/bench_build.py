#!/usr/bin/env python3
"""What a model build costs: each step's wall time and the peak memory of the whole process tree.

Runs ovchat-build (in the build env) on SOURCE as a user would, samples the resident memory of
the build and every process it starts (optimum-cli's export runs in a child) every 0.25 s, and
attributes each sample to the step running then, from the build's own `[build] step: N s` lines.
Memory is given twice, from /proc/PID/status (smaps_rollup's PSS would be better, but reading it
walks every page: at 16 GB resident it took half a core at this rate): the sum of RSS, and the
sum of anonymous RSS, the part no page cache can give back (RSS also holds the source's
safetensors, which the export maps from the page cache).

usage: bench_build.py [SOURCE] --label NAME [ovchat-build options...]   (no SOURCE: the default model)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from lib.machine import machine
from lib.paths import BUILD
from lib.processes import tree_memory_mb
from lib.sections import replace_section

BUILD_COMMAND = BUILD / "venv-build" / "bin" / "ovchat-build"
STEP_DONE = re.compile(r"^\[build\] (\w+): ([\d.]+) s \(build ([\d.]+) s\)")


@dataclass
class Run:
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # time, rss, anon
    steps: list[tuple[str, float, float]] = field(default_factory=list)  # name, seconds, ended at
    lines: list[str] = field(default_factory=list)
    exit_code: int = 0
    seconds: float = 0.0


def run_build(command: list[str]) -> Run:
    run, started = Run(), time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")  # fmt: skip
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            run.samples.append((time.monotonic() - started, *tree_memory_mb(proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        run.lines.append(line)
        if match := STEP_DONE.match(line):
            run.steps.append((match[1], float(match[2]), time.monotonic() - started))
    run.exit_code = proc.wait()
    done.set()
    sampler.join()
    run.seconds = time.monotonic() - started
    return run


class StepRow(TypedDict):
    step: str
    seconds: float
    peak_rss_mb: float
    peak_anon_mb: float


def step_table(run: Run) -> list[StepRow]:
    """Per step: its seconds and the peak RSS and anonymous RSS sampled while it ran."""
    rows: list[StepRow] = []
    for name, seconds, ended in run.steps:
        inside = [s for s in run.samples if ended - seconds - 0.3 <= s[0] <= ended]
        rows.append({
            "step": name,
            "seconds": seconds,
            "peak_rss_mb": max((s[1] for s in inside), default=0.0),
            "peak_anon_mb": max((s[2] for s in inside), default=0.0),
        })  # fmt: skip
    return rows


def report_text(label: str, source: str, extra: list[str], run: Run, rows: list[StepRow]) -> str:
    peak_rss = max((s[1] for s in run.samples), default=0.0)
    peak_anon = max((s[2] for s in run.samples), default=0.0)
    outcome = "published" if run.exit_code == 0 else f"exit {run.exit_code}: {_last_error(run)}"
    lines = [
        f"### Build: {label}",
        "",
        f"`ovchat-build {source} {' '.join(extra)}` on {machine()}, "
        f"{time.strftime('%Y-%m-%d')} (`scripts/bench/bench_build.py`): **{run.seconds / 60:.1f} min**, "
        f"peak of the process tree **{peak_rss / 1024:.1f} GB** RSS "
        f"({peak_anon / 1024:.1f} GB of it anonymous); "
        f"{outcome}.",
        "",
        "| step | wall time | peak RSS of the tree | of it anonymous |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['step']} | {row['seconds']:.0f} s | {row['peak_rss_mb'] / 1024:.1f} GB | "
                     f"{row['peak_anon_mb'] / 1024:.1f} GB |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _last_error(run: Run) -> str:
    errors = [line.strip() for line in run.lines if "error:" in line]
    return errors[-1].split("error:", 1)[1].strip()[:200] if errors else "see the log"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", nargs="?", help="what ovchat-build builds (default: the embedded model)")
    parser.add_argument("--label", required=True, help="the BENCHMARKS.md section, e.g. 3.8b")
    args, extra = parser.parse_known_args()
    out_dir = BUILD / "bench-build" / args.label
    sources = [args.source] if args.source else []  # none: the default model
    command = [
        str(BUILD_COMMAND),
        *sources,
        "--out-dir",
        str(out_dir),
        "--force",
        *extra,
    ]
    run = run_build(command)
    rows = step_table(run)
    (BUILD / "bench-build" / f"{args.label}.json").write_text(json.dumps(
        {"command": command, "seconds": run.seconds, "exit_code": run.exit_code, "steps": rows,
         "samples": run.samples}))  # fmt: skip
    shown = Path(args.source).name if args.source else "(the default model)"
    text = report_text(args.label, shown, extra, run, rows)
    replace_section(f"build-{args.label}", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
