"""Where a decoded token's time goes, and which pipeline settings change it: one process per variant,
variants interleaved over rounds, greedy 128 tokens with eos ignored from one chat prompt.

    PYTHONPATH=scripts/bench build/venv/bin/python scripts/bench/probes/decode_levers.py \
        [--model DIR] [--rounds 3]

Per variant: TPOT (what the user sees between tokens), the model's own inference time per token
(perf_metrics' token_infer_durations), and the difference: sampling, detokenizing, the streamer and
GenAI's own bookkeeping.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from lib.paths import DEFAULT_MODEL

VARIANTS = {
    "SDPA (ask)": {"ATTENTION_BACKEND": "SDPA"},
    "SDPA, no streamer": {"ATTENTION_BACKEND": "SDPA", "_streamer": False},
    "SDPA, 1 thread": {"ATTENTION_BACKEND": "SDPA", "INFERENCE_NUM_THREADS": 1},
    "SDPA, KV cache f16": {"ATTENTION_BACKEND": "SDPA", "KV_CACHE_PRECISION": "f16"},
    "SDPA, TBB partitioner static": {"ATTENTION_BACKEND": "SDPA", "TBB_PARTITIONER": "STATIC"},
    "SDPA, TBB partitioner auto": {"ATTENTION_BACKEND": "SDPA", "TBB_PARTITIONER": "AUTO"},
    "PA (chat)": {"ATTENTION_BACKEND": "PA"},
    "PA, KV cache f16": {"ATTENTION_BACKEND": "PA", "KV_CACHE_PRECISION": "f16"},
    "PA, keys u8 by token": {"ATTENTION_BACKEND": "PA", "KEY_CACHE_QUANT_MODE": "BY_TOKEN"},
    "PA + prompt lookup, 2 tokens": {"ATTENTION_BACKEND": "PA", "prompt_lookup": True, "_lookup": 2},
    "PA + prompt lookup, 5 tokens": {"ATTENTION_BACKEND": "PA", "prompt_lookup": True, "_lookup": 5},
}
PROBE = r"""
import json, sys, time
import openvino_genai as g
path, props = sys.argv[1], json.loads(sys.argv[2])
streamer, lookup = props.pop("_streamer", True), props.pop("_lookup", 0)
pipe = g.LLMPipeline(path, "CPU", **props)
config = pipe.get_generation_config()
config.do_sample, config.max_new_tokens, config.ignore_eos = False, 128, True
if lookup:
    config.num_assistant_tokens, config.max_ngram_size = lookup, 3
chat = g.ChatHistory([{"role": "user", "content": "Write a long story about a lighthouse keeper."}])
pipe.generate(chat, config, (lambda piece: g.StreamingStatus.RUNNING) if streamer else None)  # warm
result = pipe.generate(chat, config, (lambda piece: g.StreamingStatus.RUNNING) if streamer else None)
m = result.perf_metrics
infer = list(m.raw_metrics.token_infer_durations)
# Prompt lookup's steps record no inference time (zeros): shown as n/a.
per_step = sum(infer[1:]) / 1000 / (len(infer) - 1) if sum(infer[1:]) > 0 else float("nan")
print(json.dumps({"tpot": m.get_tpot().mean, "infer": per_step,
                  "tokens": m.get_num_generated_tokens(), "steps": len(infer)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="variants whose names start with these")
    args = parser.parse_args()
    if args.only:
        for name in [n for n in VARIANTS if not any(n.startswith(o) for o in args.only)]:
            del VARIANTS[name]
    seen: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for round_ in range(args.rounds):
        names = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
        for name in names:
            done = subprocess.run(
                [sys.executable, "-c", PROBE, args.model, json.dumps(VARIANTS[name])],
                capture_output=True,
                text=True,
                check=True,
            )
            seen[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {round_ + 1} {name}: {seen[name][-1]}", file=sys.stderr, flush=True)
    base = statistics.median(r["tpot"] for r in seen["SDPA (ask)"])
    print(f"{args.rounds} rounds, medians; 128 greedy tokens, eos ignored")
    print("| variant | TPOT ms | inference ms/step | other ms/token | steps | TPOT vs SDPA |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, runs in seen.items():
        tpot = statistics.median(r["tpot"] for r in runs)
        infer = statistics.median(r["infer"] for r in runs)
        steps = statistics.median(r["steps"] for r in runs)
        other = tpot - infer * steps / 128
        print(f"| {name} | {tpot:.2f} | {infer:.2f} | {other:.2f} | {steps:.0f} | {tpot / base:.2f}× |")


if __name__ == "__main__":
    main()
