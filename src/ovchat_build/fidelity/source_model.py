"""The unquantized source in torch, and the figures the gate needs of it, computed once and cached."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ovchat_build.fidelity.criteria import MAX_NEW_TOKENS
from ovchat_build.fidelity.eval_set import EvalSequence
from ovchat_build.fidelity.figures import SourceFigures

# KL(source || IR) is taken over the source's TOP_K most likely tokens plus one bucket for the
# rest (a lower bound of the full KL that keeps the cache small: 3,785 positions x 64 instead of
# x the vocabulary); agreement and perplexity stay exact.
TOP_K = 64
# The source runs in float32 up to this many bytes of weights, else in bfloat16.
FLOAT32_BUDGET_BYTES = 6e9


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
        # Every id the model's generation config stops at (Phi-3: <|endoftext|>, <|assistant|> and
        # <|end|>), as the runtime does: GenAI reads that list as its stop tokens.
        declared = self.model.generation_config.eos_token_id
        listed = declared if isinstance(declared, list) else [] if declared is None else [declared]
        self.eos_ids = {int(self.tokenizer.eos_token_id), *map(int, listed)}

    def log_probs(self, ids: list[int]) -> torch.Tensor:
        """Next-token log-probabilities (float32) at every position but the last."""
        with torch.inference_mode():
            logits = self.model(torch.tensor([ids])).logits[0, :-1].float()
            return torch.log_softmax(logits, dim=-1)

    def greedy(self, prompts: list[list[int]]) -> list[list[int]]:
        """Greedy answers to all prompts in one left-padded batch, each cut after its first eos."""
        # One batch: on CPU a 135M model's decode step costs about as much for 20 rows as for 1.
        width = max(len(p) for p in prompts)
        pad = int(self.tokenizer.eos_token_id)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        options = {"max_new_tokens": MAX_NEW_TOKENS, "do_sample": False, "pad_token_id": pad}
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=mask, eos_token_id=sorted(self.eos_ids), **options)
        return [_cut_after_eos(row, self.eos_ids) for row in out[:, width:].tolist()]


def _cut_after_eos(tokens: list[int], eos_ids: set[int]) -> list[int]:
    ends = [i for i, token in enumerate(tokens) if token in eos_ids]
    return tokens[: ends[0] + 1] if ends else tokens


def compute_source_figures(hf_dir: Path, sequences: list[EvalSequence]) -> SourceFigures:
    """Run the source once over the eval texts, then let it go (its greedy answers come later,
    from source_answers, and only for an IR whose agreement passes)."""
    source = SourceModel(hf_dir)
    columns: dict[str, list[np.ndarray]] = {"argmax": [], "target": [], "top_ids": [], "top_logprobs": []}
    for sequence in tqdm(sequences, desc="[fidelity] source, teacher-forced", disable=None):
        lp = source.log_probs(sequence.token_ids)
        top = lp.topk(TOP_K, dim=-1)
        columns["argmax"].append(lp.argmax(-1).numpy())
        columns["target"].append(lp.gather(1, torch.tensor(sequence.token_ids[1:])[:, None])[:, 0].numpy())
        columns["top_ids"].append(top.indices.numpy().astype(np.int32))
        columns["top_logprobs"].append(top.values.numpy())
    parameters = sum(p.numel() for p in source.model.parameters())
    figures = SourceFigures(str(source.dtype).removeprefix("torch."), parameters,
                            eos_ids=sorted(source.eos_ids), answers=None, **columns)  # fmt: skip
    del source
    gc.collect()
    return figures


def source_answers(hf_dir: Path, prompts: list[list[int]]) -> list[list[int]]:
    """The source's greedy answers to the prompts (the source loaded for them, then let go)."""
    source = SourceModel(hf_dir)
    print(f"[fidelity] source greedy answers to {len(prompts)} prompts", flush=True)
    answers = source.greedy(prompts)
    del source
    gc.collect()
    return answers
