"""The fidelity gate: below its bar a build publishes nothing; it also picks the precision to run at."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovchat_build.checkout import portable
from ovchat_build.clock import CLOCK
from ovchat_build.errors import BuildError
from ovchat_build.source.resolve import Source

if TYPE_CHECKING:
    from ovchat_build.fidelity.measure import FidelityReport

# Below this top-1 agreement with the source, or with more looping greedy answers than the source
# has (give or take LOOP_TOLERANCE), a build publishes nothing. The same for every source.
DEFAULT_MIN_AGREEMENT = 0.85
# One looping answer more than the source is within the noise of 20 greedy answers: int8 weights,
# at 0.95 agreement, loop on 2 where the source loops on 1; the int4 grid in bf16 loops on 3.
LOOP_TOLERANCE = 1
# f32 is tried only when the default precision's agreement came this close to the bar (or it failed
# on looping answers): bf16 and f32 differ by about 0.01 (the embedded SmolLM2 with its own grid:
# 0.964 against 0.973), so an IR further below is refused at once and f32 is not spent on it.
F32_RESCUE_MARGIN = 0.05


class FidelityError(Exception):
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


def gate(
    hf_dir: Path, work: Path, source: Source, min_agreement: float
) -> tuple[dict[str, Any], str | None, dict[str, str]]:
    """Measure the IR against its unquantized source: the figures, why the gate refuses it (or None), and
    the runtime settings they hold for.

    The IR runs at the CPU's default inference precision (bf16 where the CPU has it) and, if that
    fails the gate by less than F32_RESCUE_MARGIN (or on looping answers), again at f32: small
    models drift under bf16 (measured on the embedded SmolLM2 with its own grid: agreement 0.964
    and 3 looping answers in bf16, 0.973 and the source's 1 in f32, with decode no slower), and the
    runtime then uses what the build verified."""
    from ovchat_build.fidelity.measure import format_table, measure

    dequantized = " (dequantized GGUF)" if source.kind in ("embedded", "gguf") else ""
    label = f"{portable(source.ref)}{dequantized}"
    rejected: str | None = None
    for precision in (None, "f32"):
        what = f"measuring fidelity against the unquantized source ({precision or 'default precision'})"
        try:
            # The checkpoint's folder name carries the GGUF importer's version for a converted file.
            with CLOCK.step("fidelity", what):
                key = f"{source.digest}:{hf_dir.name}"
                report = measure(hf_dir, work, label, precision, source_key=key, min_agreement=min_agreement)
        except FidelityError as exc:
            raise BuildError(f"fidelity could not be measured: {exc}") from None
        print(format_table(report), flush=True)
        figures = {**report.to_dict(), "min_agreement": min_agreement}
        try:
            check(report, min_agreement)
        except FidelityError as exc:
            rejected = rejected or str(exc)  # the default precision's reason is the one to report
            if report.ir_inference_precision == "f32" or not _f32_may_rescue(report, min_agreement):
                break
            continue
        runtime = {"INFERENCE_PRECISION_HINT": "f32"} if precision else {}
        if precision:
            figures["default_precision_rejected"] = rejected
        return figures, None, runtime
    return figures, rejected, {}


def _f32_may_rescue(report: FidelityReport, min_agreement: float) -> bool:
    """Whether an IR the gate refused at its default precision is worth measuring again at f32."""
    return report.tokens.top1_agreement >= min_agreement - F32_RESCUE_MARGIN
