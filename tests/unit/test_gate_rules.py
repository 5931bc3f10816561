"""The fidelity gate's rules on given figures: what refuses a build, and when f32 is worth a second
measurement (the gate itself runs end to end in tests/test_fidelity.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from ovchat_build.fidelity.criteria import FidelityError, check
from ovchat_build.fidelity.gate import F32_RESCUE_MARGIN, _f32_may_rescue


def report(agreement: float, looping: int = 0, source_looping: int = 0) -> Any:
    tokens = SimpleNamespace(top1_agreement=agreement, mean_kl=0.1)
    generation = SimpleNamespace(degenerate_ir=looping, degenerate_source=source_looping, prompts=20)
    return SimpleNamespace(tokens=tokens, generation=generation)


def test_below_the_bar_or_looping_more_than_the_source_is_refused() -> None:
    check(report(0.9), 0.9)
    check(report(0.95, looping=2, source_looping=1), 0.9)
    with pytest.raises(FidelityError, match=r"below the required 0\.900"):
        check(report(0.899), 0.9)
    with pytest.raises(FidelityError, match="3 of 20 greedy answers loop"):
        check(report(0.95, looping=3, source_looping=1), 0.9)


def test_f32_is_measured_again_only_near_the_bar_or_for_looping() -> None:
    assert _f32_may_rescue(report(0.9 - F32_RESCUE_MARGIN), 0.9)
    assert _f32_may_rescue(report(0.95, looping=5), 0.9)  # passed on agreement, failed on looping
    assert not _f32_may_rescue(report(0.9 - F32_RESCUE_MARGIN - 0.001), 0.9)
    assert not _f32_may_rescue(report(0.0), 0.6)  # the hostile checkpoint: f32 cannot save it
