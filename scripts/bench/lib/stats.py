"""The figures a report shows: medians with their spread, and percentiles."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def median_spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def cell(values: list[float]) -> str:
    """Median (min–max), with as many decimals as the size of the figure deserves."""
    m, lo, hi = median_spread(values)
    if m >= 100:
        return f"{m:.0f} ({lo:.0f}–{hi:.0f})"
    return f"{m:.2f} ({lo:.2f}–{hi:.2f})"


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank `q` quantile (0 ≤ q ≤ 1) of `values`: one of the values, never interpolated."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
