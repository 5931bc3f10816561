#!/usr/bin/env python3
"""Looping answers of a GGUF file's exact arithmetic: its dequantized checkpoint in torch float32.

The control beside gguf_answers.py's two engines: the build's own source checkpoint (the file's
weights dequantized exactly, cached under build/sources), greedy, one prompt at a time, at most
MAX_TOKENS, on answer_quality.py's two prompt sets, loops counted by the same rule. Prints one line.

usage (build env, which has torch): PYTHONPATH=scripts/bench build/venv-build/bin/python \
    scripts/bench/probes/exact_answers.py build/sources/smollm2-Q8_0-*/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from answer_quality import MAX_TOKENS, PROMPTS
from ovchat.prompt.endings import is_degenerate


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.exit(__doc__)
    checkpoint = Path(argv[0])
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    declared = model.generation_config.eos_token_id
    eos = sorted(
        {
            tokenizer.eos_token_id,
            *(declared if isinstance(declared, list) else [declared] if declared else []),
        }
    )
    cells = []
    for name in ("chosen", "heldout"):
        prompts = json.loads((PROMPTS / f"{name}.json").read_text())
        looping = 0
        for prompt in prompts:
            chat = [{"role": "user", "content": prompt}]
            ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")
            ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
            with torch.inference_mode():
                options = {"max_new_tokens": MAX_TOKENS, "do_sample": False}
                answer = model.generate(
                    ids, attention_mask=torch.ones_like(ids), eos_token_id=eos, pad_token_id=eos[0], **options
                )
            tokens = answer[0, ids.shape[1] :].tolist()
            hit_limit = len(tokens) >= MAX_TOKENS and tokens[-1] not in eos
            # Judged on the answer's text re-encoded, as answer_quality.py judges both engines.
            text = tokenizer.decode([t for t in tokens if t not in eos])
            looping += is_degenerate(tokenizer.encode(text, add_special_tokens=False), hit_limit)
        cells.append(f"{looping} of {len(prompts)}")
    print(f"{checkpoint.name} in torch float32: {' / '.join(cells)} looping answers", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
