#!/usr/bin/env python3
"""sentence-transformers on torch (f32, CPU) as `make bench-embed` measures it: a worker process of
its own, so that its resident memory is its own and not the driver's.

    build/venv-build/bin/python scripts/bench/embed_torch.py FOLDER [--threads 2]

Runs in the build env (torch, sentence-transformers). In-process, no HTTP: it loads FOLDER, says
{"ready": true} on stdout, then answers one JSON line per JSON line on stdin:

    {"time": [[text, ...], ...]}  -> {"seconds": [s, ...]}  each request one encode() call, timed alone
    {"vectors": [text, ...]}      -> {"vectors": [[float, ...], ...]}  (the model's own Normalize applies)
    {"tokens": [text, ...]}       -> {"tokens": [n, ...]}  as its tokenizer counts, [CLS] and [SEP] in
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, TextIO

import torch
from sentence_transformers import SentenceTransformer


def protocol_out() -> TextIO:
    """The real stdout for the answers; what the libraries print goes to stderr instead."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return out


def encode(model: Any, texts: list[str]) -> Any:
    """One request: all its texts in one batch, as a caller of the library would pass them."""
    return model.encode(texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False)


def timed(model: Any, requests: list[list[str]]) -> list[float]:
    seconds = []
    for texts in requests:
        started = time.perf_counter()
        encode(model, texts)
        seconds.append(time.perf_counter() - started)
    return seconds


def answer(model: Any, request: dict[str, Any]) -> dict[str, Any]:
    if "time" in request:
        return {"seconds": timed(model, request["time"])}
    if "vectors" in request:
        return {"vectors": encode(model, request["vectors"]).tolist()}
    if "tokens" in request:
        ids = model.preprocess(request["tokens"])["attention_mask"]
        return {"tokens": [int(row.sum()) for row in ids]}
    raise ValueError(f"unknown request {sorted(request)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder")
    parser.add_argument("--threads", type=int, default=2)
    options = parser.parse_args()
    out = protocol_out()
    torch.set_num_threads(options.threads)
    model = SentenceTransformer(options.folder, device="cpu")
    print(json.dumps({"ready": True, "max_seq_length": model.max_seq_length}), file=out, flush=True)
    for line in sys.stdin:
        print(json.dumps(answer(model, json.loads(line))), file=out, flush=True)


if __name__ == "__main__":
    main()
