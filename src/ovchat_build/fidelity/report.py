"""The figures a fidelity measurement gives, and the table the build prints of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TokenFidelity:
    """Teacher-forced figures over every predicted token of the eval set."""

    sequences: int
    tokens: int
    top1_agreement: float
    mean_kl: float
    p95_kl: float
    perplexity_source: float
    perplexity_ir: float


@dataclass(frozen=True)
class GenerationFidelity:
    """Greedy answers of both models to the fixed prompts, compared token by token."""

    prompts: int
    max_new_tokens: int
    identical_share: float
    mean_common_prefix: float
    mean_source_length: float
    degenerate_source: int = 0
    degenerate_ir: int = 0


@dataclass(frozen=True)
class FidelityReport:
    source: str
    source_parameters: int
    source_dtype: str
    ir_inference_precision: str
    tokens: TokenFidelity
    generation: GenerationFidelity | None  # None: refused on agreement, no answers run
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_table(report: FidelityReport) -> str:
    """A short human-readable table of the figures."""
    t, g = report.tokens, report.generation
    rows = [
        ("top-1 agreement", f"{t.top1_agreement:.4f}  ({t.tokens} tokens, {t.sequences} sequences)"),
        ("KL mean / p95", f"{t.mean_kl:.5f} / {t.p95_kl:.5f}"),
        ("perplexity source / IR", f"{t.perplexity_source:.3f} / {t.perplexity_ir:.3f}"),
    ]
    if g is None:
        rows.append(("greedy answers", "not run: the agreement is below the bar"))
    else:
        rows += [
            ("greedy answers identical", f"{g.identical_share:.0%} of {g.prompts} prompts"),
            ("mean common prefix", f"{g.mean_common_prefix:.1f} of {g.mean_source_length:.1f} tokens"),
            ("degenerate answers", f"{g.degenerate_ir} (source: {g.degenerate_source})"),
        ]
    lines = [f"  {label:<26} {value}" for label, value in rows]
    heading = f"[fidelity] vs {report.source} in torch {report.source_dtype}"
    heading += f", IR at {report.ir_inference_precision}"
    return "\n".join([f"{heading}, {report.seconds} s", *lines])
