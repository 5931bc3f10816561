"""Where the benchmarks find the repository, build/ and the files they rewrite."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BUILD = ROOT / "build"
BENCHMARKS = ROOT / "BENCHMARKS.md"
FIDELITY = ROOT / "FIDELITY.md"
# The default model as `make model` builds it (the Makefile's MODEL). Not read from ovchat's
# contract: the bench env (`build/venv-bench`) has no ovchat installed.
DEFAULT_MODEL = BUILD / "models" / "smollm2-135m-instruct-int4"
WORKERS = ROOT / "scripts" / "bench" / "bench_workers.py"  # the other engines, each in its own venv
