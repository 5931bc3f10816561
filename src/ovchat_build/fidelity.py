"""Fidelity: how far an exported OpenVINO IR drifts from the unquantized source it came from.

The source is the Hugging Face checkpoint run by torch in float32, or in bfloat16 when float32
would not fit the memory budget (a 3.8 B model is 15 GB in float32; for a GGUF source the
checkpoint is the GGUF dequantized to float, itself already quantized). Both models see the same
token ids: the texts in fidelity_texts/ tokenized by the source's tokenizer, chats through its
chat template. Teacher-forced: top-1 next-token agreement, KL(source || IR) mean and p95, both
perplexities. Generation: greedy answers of both to fixed chat prompts, compared token by token,
and counted as degenerate when they run to the token limit in a loop (a phrase repeating to the
end); the IR's answers stop after GREEDY_SECONDS, so a large model's gate is bounded in time.

Two phases, so the source and the IR are never in memory together: the source's figures (per
position its argmax, the target's log-probability and its TOP_K log-probabilities; its greedy
answers) are computed once, cached under build/gate-cache keyed by the source's files and this
gate's code, then the IR is loaded and compared against them. A second precision, or a rebuild of
the same source, reads the cache.

Usage (build env): python -m ovchat_build.fidelity HF_DIR IR_DIR [--min-agreement 0.9]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import sys
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import torch
from tqdm import tqdm

from ovchat.endings import is_degenerate

TEXTS_DIR = Path(__file__).resolve().with_name("fidelity_texts")
PROMPTS_FILE = "prompts.json"
CHATS_FILE = "chats.json"
MAX_SEQUENCE_TOKENS = 512
MAX_NEW_TOKENS = 128
# KL(source || IR) is taken over the source's TOP_K most likely tokens plus one bucket for the
# rest (a lower bound of the full KL that keeps the cache small: 3,785 positions x 64 instead of
# x the vocabulary); agreement and perplexity stay exact.
TOP_K = 64
# The source runs in float32 up to this many bytes of weights, else in bfloat16.
FLOAT32_BUDGET_BYTES = 6e9
# The IR's greedy answers stop being checked after this long (at least MIN_PROMPTS are): a 3.8 B
# IR decodes ~5 tokens/s on 2 cores, and 20 answers of up to 128 tokens would take ~9 minutes.
GREEDY_SECONDS = 240.0
MIN_PROMPTS = 8
CACHE_DIR = Path(__file__).resolve().parents[2] / "build" / "gate-cache"
# The gate: below this top-1 agreement with the source, or with more looping greedy answers than the
# source has (give or take LOOP_TOLERANCE), a build publishes nothing. The same for every source.
DEFAULT_MIN_AGREEMENT = 0.85
# One looping answer more than the source is within the noise of 20 greedy answers: int8 weights,
# at 0.95 agreement, loop on 2 where the source loops on 1; the int4 grid in bf16 loops on 3.
LOOP_TOLERANCE = 1


class FidelityError(Exception):
    """The IR drifted too far from its source, or could not be measured; one line says which."""


@dataclass(frozen=True)
class EvalSequence:
    name: str
    token_ids: list[int]


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
    generation: GenerationFidelity
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_sequences(tokenizer: Any, texts_dir: Path = TEXTS_DIR) -> list[EvalSequence]:
    """Tokenize the eval texts (.txt raw, chats through the template), cut to MAX_SEQUENCE_TOKENS."""
    sequences = []
    for path in sorted(texts_dir.glob("*.txt")):
        ids = tokenizer(path.read_text(), add_special_tokens=False).input_ids
        sequences += _windows(path.stem, ids)
    chats = json.loads((texts_dir / CHATS_FILE).read_text())
    for number, messages in enumerate(chats):
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        sequences += _windows(f"chat{number}", tokenizer(text, add_special_tokens=False).input_ids)
    return sequences


def _windows(name: str, ids: list[int]) -> list[EvalSequence]:
    step = MAX_SEQUENCE_TOKENS
    return [
        EvalSequence(f"{name}:{i}", ids[i : i + step]) for i in range(0, len(ids), step) if len(ids) > i + 1
    ]


def load_prompts(tokenizer: Any, texts_dir: Path = TEXTS_DIR) -> list[list[int]]:
    """The fixed generation prompts as chat-templated token ids."""
    prompts = json.loads((texts_dir / PROMPTS_FILE).read_text())
    return [
        tokenizer(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
            ),
            add_special_tokens=False,
        ).input_ids
        for p in prompts
    ]


class IRModel:
    """The exported stateful IR run directly with OpenVINO on CPU, as ovchat's runtime would."""

    def __init__(self, ir_dir: Path, precision: str | None = None) -> None:
        core = ov.Core()
        model = core.read_model(ir_dir / "openvino_model.xml")
        names = {name for port in model.inputs for name in port.get_names()}
        missing = {"input_ids", "attention_mask", "position_ids", "beam_idx"} - names
        if missing:
            raise FidelityError(
                f"{ir_dir} is not a stateful text-generation IR (no {', '.join(sorted(missing))})"
            )
        config = {"INFERENCE_PRECISION_HINT": precision} if precision else {}
        compiled = core.compile_model(model, "CPU", config)
        self.precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.request = compiled.create_infer_request()

    def _step(self, ids: list[int], past: int) -> np.ndarray:
        n = len(ids)
        self.request.infer({
            "input_ids": np.array([ids], dtype=np.int64),
            "attention_mask": np.ones((1, past + n), dtype=np.int64),
            "position_ids": np.arange(past, past + n, dtype=np.int64)[None, :],
            "beam_idx": np.zeros(1, dtype=np.int32),
        })  # fmt: skip
        return self.request.get_tensor("logits").data[0].copy()

    def logits(self, ids: list[int]) -> np.ndarray:
        """Logits for every position of one sequence, from an empty KV cache."""
        self.request.reset_state()
        return self._step(ids, 0)

    def greedy(self, prompt: list[int], eos_ids: set[int]) -> list[int]:
        out = [int(self.logits(prompt)[-1].argmax())]
        while out[-1] not in eos_ids and len(out) < MAX_NEW_TOKENS:
            out.append(int(self._step(out[-1:], len(prompt) + len(out) - 1)[-1].argmax()))
        return out


def source_dtype(hf_dir: Path) -> torch.dtype:
    """float32 when the weights fit FLOAT32_BUDGET_BYTES in it, else bfloat16 (the source's own
    dtype for Phi-3 and most checkpoints published since 2024)."""
    config = json.loads((hf_dir / "config.json").read_text())
    stored = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    stored_bytes = sum(f.stat().st_size for f in hf_dir.glob("*.safetensors")) or sum(
        f.stat().st_size for f in hf_dir.glob("*.bin")
    )
    as_float32 = stored_bytes * (2 if stored in ("bfloat16", "float16") else 1)
    return torch.float32 if as_float32 <= FLOAT32_BUDGET_BYTES else torch.bfloat16


class SourceModel:
    """The unquantized Hugging Face checkpoint in torch (float32, or bfloat16 when large)."""

    def __init__(self, hf_dir: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(hf_dir)
        self.dtype = source_dtype(hf_dir)
        self.model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=self.dtype).eval()
        self.eos_ids = {int(self.tokenizer.eos_token_id)}

    @torch.inference_mode()
    def log_probs(self, ids: list[int]) -> torch.Tensor:
        """Next-token log-probabilities (float32) at every position but the last."""
        logits = self.model(torch.tensor([ids])).logits[0, :-1].float()
        return torch.log_softmax(logits, dim=-1)

    @torch.inference_mode()
    def greedy(self, prompts: list[list[int]]) -> list[list[int]]:
        """Greedy answers to all prompts in one left-padded batch, each cut after its first eos."""
        # One batch: on CPU a 135M model's decode step costs about as much for 20 rows as for 1.
        width = max(len(p) for p in prompts)
        pad = min(self.eos_ids)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        out = self.model.generate(ids, attention_mask=mask, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                  eos_token_id=sorted(self.eos_ids), pad_token_id=pad)  # fmt: skip
        return [_cut_after_eos(row, self.eos_ids) for row in out[:, width:].tolist()]


def _cut_after_eos(tokens: list[int], eos_ids: set[int]) -> list[int]:
    ends = [i for i, token in enumerate(tokens) if token in eos_ids]
    return tokens[: ends[0] + 1] if ends else tokens


@dataclass
class SourceFigures:
    """What the gate needs of the source, per eval sequence and prompt; cached between runs."""

    dtype: str
    parameters: int
    argmax: list[np.ndarray]  # per position: the source's most likely next token
    target: list[np.ndarray]  # the log-probability of the token that does come next
    top_ids: list[np.ndarray]  # [positions, TOP_K] the most likely tokens and their log-probs
    top_logprobs: list[np.ndarray]
    answers: list[list[int]]
    eos_ids: list[int]

    def save(self, path: Path) -> None:
        """Written aside and renamed into place: a build killed meanwhile leaves no half a cache."""
        work = path.with_name(f".{path.name}-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        arrays = {f"{name}{i}": a for name in ("argmax", "target", "top_ids", "top_logprobs")
                  for i, a in enumerate(getattr(self, name))}  # fmt: skip
        np.savez(work / "figures.npz", **arrays)  # type: ignore[arg-type]
        meta = {
            "dtype": self.dtype,
            "parameters": self.parameters,
            "answers": self.answers,
            "eos_ids": self.eos_ids,
            "count": len(self.argmax),
        }
        (work / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(path, ignore_errors=True)
        work.rename(path)

    @classmethod
    def load(cls, path: Path) -> SourceFigures | None:
        try:
            meta = json.loads((path / "meta.json").read_text())
            with np.load(path / "figures.npz") as data:
                columns = {name: [data[f"{name}{i}"] for i in range(meta["count"])]
                           for name in ("argmax", "target", "top_ids", "top_logprobs")}  # fmt: skip
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None
        return cls(
            meta["dtype"], meta["parameters"], answers=meta["answers"], eos_ids=meta["eos_ids"], **columns
        )


def compute_source_figures(
    hf_dir: Path, sequences: list[EvalSequence], prompts: list[list[int]]
) -> SourceFigures:
    """Run the source once over the eval texts and prompts, then let it go."""
    source = SourceModel(hf_dir)
    columns: dict[str, list[np.ndarray]] = {"argmax": [], "target": [], "top_ids": [], "top_logprobs": []}
    for sequence in tqdm(sequences, desc="[fidelity] source, teacher-forced", disable=None):
        lp = source.log_probs(sequence.token_ids)
        top = lp.topk(TOP_K, dim=-1)
        columns["argmax"].append(lp.argmax(-1).numpy())
        columns["target"].append(lp.gather(1, torch.tensor(sequence.token_ids[1:])[:, None])[:, 0].numpy())
        columns["top_ids"].append(top.indices.numpy().astype(np.int32))
        columns["top_logprobs"].append(top.values.numpy())
    print(f"[fidelity] source greedy answers to {len(prompts)} prompts", flush=True)
    answers = source.greedy(prompts)
    parameters = sum(p.numel() for p in source.model.parameters())
    figures = SourceFigures(str(source.dtype).removeprefix("torch."), parameters, answers=answers,
                            eos_ids=sorted(source.eos_ids), **columns)  # fmt: skip
    del source
    gc.collect()
    return figures


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
    started, pairs = time.monotonic(), []
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


def gate_digest() -> str:
    """This gate's code and texts: a change to either recomputes the cached source figures."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(TEXTS_DIR.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def measure(
    hf_dir: Path,
    ir_dir: Path,
    source_label: str = "",
    precision: str | None = None,
    source_key: str | None = None,
) -> FidelityReport:
    """Run the whole evaluation of `ir_dir` against its source checkpoint `hf_dir`; the IR runs at the
    CPU's default inference precision, or at `precision` (e.g. "f32"). With `source_key` (what
    identifies the source's files) the source's figures are cached under CACHE_DIR."""
    from transformers import AutoTokenizer

    started = time.monotonic()
    cache = CACHE_DIR / hashlib.sha256(f"{source_key}:{gate_digest()}".encode()).hexdigest()[:24]
    try:
        tokenizer = AutoTokenizer.from_pretrained(hf_dir)
        sequences, prompts = load_sequences(tokenizer), load_prompts(tokenizer)
        figures = SourceFigures.load(cache) if source_key else None
        if figures is None:
            figures = compute_source_figures(hf_dir, sequences, prompts)
            if source_key:
                figures.save(cache)
        else:
            print(f"[fidelity] the source's figures from {cache.relative_to(CACHE_DIR.parent)}", flush=True)
        ir = IRModel(ir_dir, precision)
    except (OSError, RuntimeError, ValueError) as exc:
        raise FidelityError(f"cannot load the models to compare: {str(exc).splitlines()[0]}") from exc
    tokens = token_fidelity(figures, ir, sequences)
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
    if g.degenerate_ir > g.degenerate_source + LOOP_TOLERANCE:
        raise FidelityError(
            f"{g.degenerate_ir} of {g.prompts} greedy answers loop until the token limit (the source: "
            f"{g.degenerate_source}); the IR drifted too far: use a gentler --profile (quality, or auto)"
        )


def format_table(report: FidelityReport) -> str:
    """A short human-readable table of the figures."""
    t, g = report.tokens, report.generation
    rows = [
        ("top-1 agreement", f"{t.top1_agreement:.4f}  ({t.tokens} tokens, {t.sequences} sequences)"),
        ("KL mean / p95", f"{t.mean_kl:.5f} / {t.p95_kl:.5f}"),
        ("perplexity source / IR", f"{t.perplexity_source:.3f} / {t.perplexity_ir:.3f}"),
        ("greedy answers identical", f"{g.identical_share:.0%} of {g.prompts} prompts"),
        ("mean common prefix", f"{g.mean_common_prefix:.1f} of {g.mean_source_length:.1f} tokens"),
        ("degenerate answers", f"{g.degenerate_ir} (source: {g.degenerate_source})"),
    ]
    lines = [f"  {label:<26} {value}" for label, value in rows]
    heading = f"[fidelity] vs {report.source} in torch {report.source_dtype}"
    heading += f", IR at {report.ir_inference_precision}"
    return "\n".join([f"{heading}, {report.seconds} s", *lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("hf_dir", type=Path, help="the source Hugging Face checkpoint folder")
    parser.add_argument("ir_dir", type=Path, help="the exported model folder (openvino_model.xml)")
    parser.add_argument("--min-agreement", type=float, default=DEFAULT_MIN_AGREEMENT)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = measure(args.hf_dir, args.ir_dir)
        print(json.dumps(report.to_dict(), indent=2) if args.json else format_table(report))
        check(report, args.min_agreement)
    except FidelityError as exc:
        print(f"fidelity: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
