"""What a faithful IR is: the bars every build is held to, read alike by the source's side, the IR's
side, the measurement and the gate."""

from __future__ import annotations

from ovchat_build.errors import BuildError
from ovchat_build.fidelity.report import FidelityReport

# Below this top-1 agreement with the source, or with more looping greedy answers than the source
# has (give or take LOOP_TOLERANCE), a build publishes nothing. The same for every source.
DEFAULT_MIN_AGREEMENT = 0.85
# One looping answer more than the source is within the noise of 20 greedy answers: int8 weights,
# at 0.95 agreement, loop on 2 where the source loops on 1; the int4 grid in bf16 loops on 3.
LOOP_TOLERANCE = 1
# The greedy answers' limit, the source's and the IR's alike: an answer that reaches it in a loop
# counts as degenerate. The source's answers are cached cut at it (figures.py keys the cache on this
# module too).
MAX_NEW_TOKENS = 128


class FidelityError(BuildError):
    """The IR drifted too far from its source, or could not be measured; one line says which."""


def check(report: FidelityReport, min_agreement: float) -> None:
    """Raise FidelityError below the agreement gate, or when the IR loops where the source does not."""
    agreement = report.tokens.top1_agreement
    if agreement < min_agreement:
        raise FidelityError(
            f"top-1 agreement with the source is {agreement:.3f}, below the required {min_agreement:.3f} "
            f"(mean KL {report.tokens.mean_kl:.4f}); the IR drifted too far: use a gentler --profile "
            "(quality, or auto to search) or lower --min-agreement"
        )
    g = report.generation
    if g is not None and g.degenerate_ir > g.degenerate_source + LOOP_TOLERANCE:
        raise FidelityError(
            f"{g.degenerate_ir} of {g.prompts} greedy answers loop until the token limit (the source: "
            f"{g.degenerate_source}); the IR drifted too far: use a gentler --profile (quality, or auto)"
        )
