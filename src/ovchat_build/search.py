"""--profile auto: publish the smallest IR that meets the fidelity target, and say what was tried.

The candidates are ordered by size: the GGUF's own grid when the source has one, then int4 with
data-aware compression at ratios 1.0 down to 0.2 (the rest of the weights int8), then int8. More
int8 weights never lowered fidelity in our measurements, so a binary search over that order
finds the smallest passing candidate in about log2(n) exports instead of n.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ovchat_build.export import DATA_AWARE, PROFILES, REFERENCE, ExportFlags

SEARCH_RATIOS = (1.0, 0.8, 0.6, 0.4, 0.2)


@dataclass(frozen=True)
class Candidate:
    profile: str  # gguf | balanced | quality
    flags: ExportFlags


@dataclass(frozen=True)
class Attempt:
    label: str
    size_mb: float
    top1_agreement: float
    degenerate_ir: int
    passed: bool
    reason: str  # why it failed the gate, or ""


def candidates(gguf_grid: bool, base: ExportFlags = REFERENCE) -> list[Candidate]:
    """Every candidate, smallest first."""
    found = [Candidate("gguf", PROFILES["gguf"])] if gguf_grid else []
    found += [Candidate("balanced", replace(base, ratio=r, **DATA_AWARE)) for r in SEARCH_RATIOS]
    return [*found, Candidate("quality", PROFILES["quality"])]


def search(
    options: list[Candidate],
    try_one: Callable[[Candidate, Path], Attempt],
    folder_for: Callable[[int], Path],
    work: Path,
) -> tuple[Candidate, list[Attempt]]:
    """Binary-search `options` for the first that passes; its folder ends up as `work`.

    `try_one(candidate, folder)` exports and measures one candidate into `folder_for(its index)`.
    Raises LookupError (with the attempts) when none passes."""
    attempts: list[Attempt] = []
    best: tuple[int, Path] | None = None
    low, high = 0, len(options) - 1
    while low <= high:
        middle = (low + high) // 2
        folder = folder_for(middle)
        attempt = try_one(options[middle], folder)
        attempts.append(attempt)
        print(
            f"[auto] {attempt.label}: {attempt.size_mb} MB, agreement {attempt.top1_agreement:.3f} -> "
            f"{'pass' if attempt.passed else 'fail: ' + attempt.reason}",
            flush=True,
        )
        if attempt.passed:
            if best is not None:
                shutil.rmtree(best[1], ignore_errors=True)
            best, high = (middle, folder), middle - 1
        else:
            shutil.rmtree(folder, ignore_errors=True)
            low = middle + 1
    if best is None:
        raise LookupError(attempts)
    shutil.rmtree(work, ignore_errors=True)
    best[1].rename(work)
    return options[best[0]], attempts


def attempts_record(attempts: list[Attempt]) -> list[dict[str, Any]]:
    return [asdict(a) for a in attempts]
