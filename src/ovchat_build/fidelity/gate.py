"""The fidelity gate: below its bar a build publishes nothing; it also picks the precision to run at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ovchat_build.checkout import portable
from ovchat_build.clock import CLOCK
from ovchat_build.errors import BuildError
from ovchat_build.fidelity.criteria import FidelityError, check
from ovchat_build.fidelity.report import FidelityReport, format_table
from ovchat_build.source.resolve import Source

# f32 is tried only when the default precision's agreement came this close to the bar (or it failed
# on looping answers): bf16 and f32 differ by about 0.01 (the embedded SmolLM2 with its own grid:
# 0.964 against 0.973), so an IR further below is refused at once and f32 is not spent on it.
F32_RESCUE_MARGIN = 0.05


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
    # Not at the top: measuring imports torch (1.0-1.2 s here), which a build that is up to date or
    # runs with --skip-fidelity never needs.
    from ovchat_build.fidelity.measure import measure

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
