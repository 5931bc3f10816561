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

from ovchat_build.errors import BuildError
from ovchat_build.export.attempt import Outcome, export_and_measure
from ovchat_build.export.plan import Plan
from ovchat_build.export.profiles import PROFILES, REFERENCE, ExportFlags, data_aware
from ovchat_build.source.resolve import Source

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
    degenerate_ir: int | None  # None: refused on agreement before any greedy answer
    passed: bool
    reason: str  # why it failed the gate, or ""


def candidates(gguf_grid: bool, base: ExportFlags = REFERENCE) -> list[Candidate]:
    """Every candidate, smallest first."""
    found = [Candidate("gguf", PROFILES["gguf"])] if gguf_grid else []
    found += [Candidate("balanced", data_aware(replace(base, ratio=r))) for r in SEARCH_RATIOS]
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


def search_smallest(hf_dir: Path, work: Path, source: Source, plan: Plan, min_agreement: float) -> Outcome:
    """--profile auto: the smallest candidate that passes the gate, its folder as `work`."""
    outcomes: dict[str, Outcome] = {}

    def try_one(candidate: Candidate, folder: Path) -> Attempt:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        flags = candidate.flags
        outcome = export_and_measure(hf_dir, folder, source, candidate.profile, flags, min_agreement)
        label = f"{candidate.profile}: {flags.describe()}"
        outcomes[label] = outcome
        assert isinstance(outcome.fidelity, dict)
        tokens, generation = outcome.fidelity["tokens"], outcome.fidelity["generation"]
        size = sum(p.stat().st_size for p in folder.glob("openvino_model.*")) / 1e6
        passed, reason = outcome.rejected is None, outcome.rejected or ""
        return Attempt(
            label,
            round(size, 1),
            tokens["top1_agreement"],
            (generation or {}).get("degenerate_ir"),
            passed,
            reason,
        )

    base = replace(plan.flags, dataset=None, awq=False, scale_estimation=False)
    try:
        # Named like the work folder, pid last, so a killed build's tries are swept up too.
        prefix, pid = work.name.rsplit("-", 1)
        chosen, attempts = search(
            candidates(plan.gguf_grid, base),
            try_one,
            lambda i: work.with_name(f"{prefix}-try{i}-{pid}"),
            work,
        )
    except LookupError as exc:
        tried = "; ".join(f"{a.label} {a.top1_agreement:.3f}" for a in exc.args[0])
        raise BuildError(
            f"no candidate reached the fidelity target {min_agreement} (tried {tried})"
        ) from None
    outcome = outcomes[f"{chosen.profile}: {chosen.flags.describe()}"]
    outcome.search = attempts_record(attempts)
    return outcome
