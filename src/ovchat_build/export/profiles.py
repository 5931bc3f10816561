"""The build profiles and the export flags each comes to (optimum-cli's own flags).

Profiles (measured on the embedded SmolLM2, FIDELITY.md has the table):
- gguf: the GGUF file's own grid carried over (gguf/grid.py), whatever its type: an all-Q4_1 file as
  int4 asymmetric in groups of 32 (top-1 agreement 0.96 at 98 MB), any other carriable type or mix
  tensor by tensor over an fp32 export (gguf/blocks.py). The default for GGUF sources.
- balanced: the reference flags plus data-aware AWQ and scale estimation on the calibration
  texts shipped in calibration/ (`--dataset ovchat`, optimum_launch.py; `--dataset auto`, text the
  model writes itself, stays available by name). The default for float checkpoints.
- reference: the reference flags (int4 sym g128 ratio 0.6), data-free: 0.70.
- speed: int4 on every layer but the embeddings, data-free: 0.65.
- quality: int8 weights: 0.95 at 138 MB.
- auto: search (search.py) for the smallest of these that reaches --min-agreement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ExportFlags:
    task: str = "text-generation-with-past"
    weight_format: str = "int4"
    group_size: int = 128
    ratio: float = 0.6
    sym: bool = True
    group_size_fallback: str = "adjust"
    trust_remote_code: bool = False
    library: str | None = None  # optimum's --library (encoders: transformers, so GenAI does the pooling)
    # Data-aware compression: calibration text, then the methods that use it.
    dataset: str | None = None
    awq: bool = False
    scale_estimation: bool = False
    gptq: bool = False
    lora_correction: bool = False
    sensitivity_metric: str | None = None
    num_samples: int | None = None

    @property
    def four_bit(self) -> bool:
        return self.weight_format in ("int4", "nf4", "mxfp4", "cb4")

    def cli_args(self) -> list[str]:
        args = ["--task", self.task, "--weight-format", self.weight_format]
        if self.four_bit:
            args += ["--group-size", str(self.group_size), "--ratio", str(self.ratio)]
            args += ["--group-size-fallback", self.group_size_fallback]
        if self.sym:
            args.append("--sym")
        if self.dataset:
            args += ["--dataset", self.dataset]
            for flag in ("awq", "scale_estimation", "gptq", "lora_correction"):
                if getattr(self, flag):
                    args.append("--" + flag.replace("_", "-"))
            if self.sensitivity_metric:
                args += ["--sensitivity-metric", self.sensitivity_metric]
            if self.num_samples:
                args += ["--num-samples", str(self.num_samples)]
        if self.trust_remote_code:
            args.append("--trust-remote-code")
        if self.library:
            args += ["--library", self.library]
        return args

    def describe(self) -> str:
        """A short label, e.g. "int4 sym g128 r0.6 +awq+se"."""
        if not self.four_bit:
            return f"{self.weight_format} {'sym' if self.sym else 'asym'}"
        label = f"{self.weight_format} {'sym' if self.sym else 'asym'} g{self.group_size} r{self.ratio}"
        methods = [
            m
            for m, on in (
                ("awq", self.awq),
                ("se", self.scale_estimation),
                ("gptq", self.gptq),
                ("lora", self.lora_correction),
            )
            if on
        ]
        return label + "".join(f" +{m}" for m in methods)


def data_aware(flags: ExportFlags) -> ExportFlags:
    """`flags` plus AWQ and scale estimation on the shipped calibration texts (the balanced profile)."""
    return replace(flags, dataset="ovchat", awq=True, scale_estimation=True)


REFERENCE = ExportFlags()
PROFILES: dict[str, ExportFlags] = {
    "gguf": replace(REFERENCE, group_size=32, ratio=1.0, sym=False, group_size_fallback="error"),
    "balanced": data_aware(REFERENCE),
    "reference": REFERENCE,
    "speed": replace(REFERENCE, ratio=1.0),
    "quality": replace(REFERENCE, weight_format="int8"),
}
# Embedding models and rerankers: 16-bit weights by default (all-MiniLM-L6-v2: mean cosine 0.99998
# to sentence-transformers' f32 vectors), int8 or fp32 on request, behind the encoder gate. optimum
# exports the bare transformer (--library transformers): GenAI's pipelines pool and score.
ENCODER_TASKS = {"embedding": "feature-extraction", "rerank": "text-classification"}
ENCODER_EXPORT = ExportFlags(weight_format="fp16", sym=False, library="transformers")
ENCODER_WEIGHT_FORMATS = ("fp16", "int8", "fp32")

# The export a GGUF's "blocks" grid is written into (gguf/grid.py): unquantized, so that every
# weight is a plain constant.
BLOCKS_EXPORT = ExportFlags(weight_format="fp32", sym=False)


def flags_summary(flags: ExportFlags) -> dict[str, Any]:
    """The flags that matter for a manifest, without the unset data-aware ones."""
    return {
        k: v for k, v in asdict(flags).items() if v not in (None, False) or k in ("sym", "trust_remote_code")
    }
