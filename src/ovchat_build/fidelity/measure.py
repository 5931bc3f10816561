"""Fidelity: how far an exported OpenVINO IR drifts from the unquantized source it came from.

The source is the Hugging Face checkpoint run by torch in float32, or in bfloat16 when float32
would not fit the memory budget (a 3.8 B model is 15 GB in float32; for a GGUF source the
checkpoint is the GGUF dequantized to float, itself already quantized). Both models see the same
token ids: the texts in texts/ tokenized by the source's tokenizer, chats through its
chat template. Teacher-forced: top-1 next-token agreement, KL(source || IR) mean and p95, both
perplexities. Generation: greedy answers of both to fixed chat prompts, compared token by token,
and counted as degenerate when they run to the token limit in a loop (a phrase repeating to the
end); the IR's answers stop after GREEDY_SECONDS, so a large model's gate is bounded in time.

The source and the IR are never in memory together: the source's figures (per position its
argmax, the target's log-probability and its TOP_K log-probabilities) are computed once, cached
under build/gate-cache keyed by the source's files and this gate's code (figures.py), then the IR
is loaded and compared against them. Greedy answers come second, and only for an IR whose
agreement passes: an IR already below the bar is refused without them, the source's included (at
3.8 B those are minutes of torch). The source's answers join the cache once computed. A second
precision, or a rebuild of the same source, reads the cache.

Usage (build env): python -m ovchat_build.fidelity HF_DIR IR_DIR [--min-agreement 0.9]
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ovchat.prompt.endings import is_degenerate
from ovchat_build.checkout import GATE_CACHE
from ovchat_build.fidelity.criteria import MAX_NEW_TOKENS, FidelityError
from ovchat_build.fidelity.eval_set import EvalSequence, load_prompts, load_sequences
from ovchat_build.fidelity.figures import SourceFigures, figures_folder
from ovchat_build.fidelity.ir_model import IRModel
from ovchat_build.fidelity.report import FidelityReport, GenerationFidelity, TokenFidelity
from ovchat_build.fidelity.source_model import compute_source_figures, source_answers

# The IR's greedy answers stop being checked after this long (at least MIN_PROMPTS are): a 3.8 B
# IR decodes ~5 tokens/s on 2 cores, and 20 answers of up to 128 tokens would take ~9 minutes.
GREEDY_SECONDS = 240.0
MIN_PROMPTS = 8


@dataclass(frozen=True)
class PositionFigures:
    """Per predicted token: do the argmaxes agree, KL(source || IR), and both NLLs."""

    agree: np.ndarray
    kl: np.ndarray
    nll_source: np.ndarray
    nll_ir: np.ndarray


def compare(source: SourceFigures, index: int, ir_logits: np.ndarray, ids: list[int]) -> PositionFigures:
    """Compare next-token distributions at each position that has a following token."""
    ir = torch.log_softmax(torch.from_numpy(ir_logits[:-1]).float(), dim=-1)
    targets = torch.tensor(ids[1:])[:, None]
    src_top = torch.from_numpy(source.top_logprobs[index])
    ir_top = ir.gather(1, torch.from_numpy(source.top_ids[index]).long())
    # The rest of the vocabulary as one bucket on both sides.
    src_rest = (1 - src_top.exp().sum(-1)).clamp_min(0.0)
    ir_rest = (1 - ir_top.exp().sum(-1)).clamp_min(1e-12)
    rest = torch.where(src_rest > 0, src_rest * (src_rest.clamp_min(1e-12).log() - ir_rest.log()), 0.0)
    kl = ((src_top.exp() * (src_top - ir_top)).sum(-1) + rest).clamp_min(0.0)
    return PositionFigures(
        agree=source.argmax[index] == ir.argmax(-1).numpy(),
        kl=kl.numpy(),
        nll_source=-source.target[index],
        nll_ir=-ir.gather(1, targets)[:, 0].numpy(),
    )


def token_fidelity(source: SourceFigures, ir: IRModel, sequences: list[EvalSequence]) -> TokenFidelity:
    parts = [
        compare(source, i, ir.logits(s.token_ids), s.token_ids)
        for i, s in enumerate(tqdm(sequences, desc="[fidelity] IR, teacher-forced", disable=None))
    ]

    def joined(field: str) -> np.ndarray:
        return np.concatenate([getattr(p, field) for p in parts])

    kl = joined("kl")
    return TokenFidelity(
        sequences=len(sequences),
        tokens=int(kl.size),
        top1_agreement=round(float(joined("agree").mean()), 4),
        mean_kl=round(float(kl.mean()), 5),
        p95_kl=round(float(np.percentile(kl, 95)), 5),
        perplexity_source=round(float(np.exp(joined("nll_source").mean())), 3),
        perplexity_ir=round(float(np.exp(joined("nll_ir").mean())), 3),
    )


def generation_fidelity(
    source: SourceFigures, ir: IRModel, prompts: list[list[int]], seconds: float = GREEDY_SECONDS
) -> GenerationFidelity:
    """The IR's greedy answers beside the source's, for as many prompts as fit in `seconds`."""
    assert source.answers is not None, "the source's answers are computed before the IR's"
    started = time.monotonic()
    pairs: list[tuple[list[int], list[int]]] = []
    for answer, prompt in zip(tqdm(source.answers, desc="[fidelity] IR greedy answers", disable=None),
                              prompts, strict=True):  # fmt: skip
        if len(pairs) >= MIN_PROMPTS and time.monotonic() - started > seconds:
            break
        pairs.append((answer, ir.greedy(prompt, set(source.eos_ids))))
    prefixes = [_common_prefix(a, b) for a, b in pairs]
    return GenerationFidelity(
        prompts=len(pairs),
        max_new_tokens=MAX_NEW_TOKENS,
        identical_share=round(sum(a == b for a, b in pairs) / len(pairs), 3),
        mean_common_prefix=round(sum(prefixes) / len(pairs), 2),
        mean_source_length=round(sum(len(a) for a, _ in pairs) / len(pairs), 2),
        degenerate_source=sum(is_degenerate(a, len(a) >= MAX_NEW_TOKENS) for a, _ in pairs),
        degenerate_ir=sum(is_degenerate(b, len(b) >= MAX_NEW_TOKENS) for _, b in pairs),
    )


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def measure(
    hf_dir: Path,
    ir_dir: Path,
    source_label: str = "",
    precision: str | None = None,
    source_key: str | None = None,
    min_agreement: float | None = None,
) -> FidelityReport:
    """Run the whole evaluation of `ir_dir` against its source checkpoint `hf_dir`; the IR runs at the
    CPU's default inference precision, or at `precision` (e.g. "f32"). With `source_key` (what
    identifies the source's files) the source's figures are cached under GATE_CACHE. With
    `min_agreement`, an IR whose top-1 agreement is already below it gets no greedy answers (nor
    does the source): the gate refuses it whatever they say, so a refused build stops sooner."""
    from transformers import AutoTokenizer

    started = time.monotonic()
    cache = figures_folder(source_key or "")
    with _loading():
        tokenizer = AutoTokenizer.from_pretrained(hf_dir)
        sequences, prompts = load_sequences(tokenizer), load_prompts(tokenizer)
        figures = SourceFigures.load(cache) if source_key else None
        if figures is None:
            figures = compute_source_figures(hf_dir, sequences)
            if source_key:
                figures.save(cache)
        else:
            print(f"[fidelity] the source's figures from {cache.relative_to(GATE_CACHE.parent)}", flush=True)
        ir = IRModel(ir_dir, precision)
    tokens = token_fidelity(figures, ir, sequences)
    generation = None
    if min_agreement is None or tokens.top1_agreement >= min_agreement:
        if figures.answers is None:
            del ir  # the source and the IR are never in memory together
            gc.collect()
            with _loading():
                figures.answers = source_answers(hf_dir, prompts)
                if source_key:
                    figures.save(cache)
                ir = IRModel(ir_dir, precision)
        generation = generation_fidelity(figures, ir, prompts)
    return FidelityReport(
        source=source_label or f"{hf_dir} (torch {figures.dtype})",
        source_parameters=figures.parameters,
        source_dtype=figures.dtype,
        ir_inference_precision=ir.precision,
        tokens=tokens,
        generation=generation,
        seconds=round(time.monotonic() - started, 1),
    )


@contextmanager
def _loading() -> Iterator[None]:
    """A model or its files that cannot be loaded: one FidelityError naming why."""
    try:
        yield
    except (OSError, RuntimeError, ValueError) as exc:
        raise FidelityError(f"cannot load the models to compare: {str(exc).splitlines()[0]}") from exc
