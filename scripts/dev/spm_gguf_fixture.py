"""A tiny random-weight llama GGUF with llama.cpp's Llama 2 (SentencePiece) vocabulary: the build's
SentencePiece import end to end, in seconds (no hub; answers are noise and never stop on their own).

The vocabulary is llama.cpp's own ggml-vocab-llama-spm.gguf (scores, byte fallback, BOS added), with
Llama 2's chat template added (the vocab file has none); the weights are random, Q8_0, 2 layers of
width 64 (4.2 M parameters, nearly all of them the 32,000-row embedding and output tables).
Runs in the build env. Usage: spm_gguf_fixture.py VOCAB_GGUF OUT.gguf (an existing OUT is kept)
"""

from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np

TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}"
)
HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 64, 2, 4, 2, 128


def copy_tokenizer(writer: gguf.GGUFWriter, vocab: Path) -> int:
    """Every tokenizer field of `vocab`, then the chat template; returns the vocabulary's size."""
    reader = gguf.GGUFReader(vocab)
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            kind = field.types[0]
            sub_type = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), kind, sub_type=sub_type)
    writer.add_chat_template(TEMPLATE)
    return len(reader.fields["tokenizer.ggml.tokens"].data)


def write(vocab: Path, out: Path) -> None:
    rng = np.random.default_rng(0)
    partial = out.with_suffix(".partial")
    writer = gguf.GGUFWriter(partial, "llama")
    writer.add_name("tiny-random-llama-spm")
    writer.add_context_length(2048)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    vocab_size = copy_tokenizer(writer, vocab)
    writer.add_vocab_size(vocab_size)
    q8 = gguf.GGMLQuantizationType.Q8_0
    kv = KV_HEADS * (HIDDEN // HEADS)

    def add(name: str, rows: int, cols: int) -> None:
        weights = rng.normal(0.0, 0.02, size=(rows, cols)).astype(np.float32)
        writer.add_tensor(name, gguf.quants.quantize(weights, q8), raw_dtype=q8)

    add("token_embd.weight", vocab_size, HIDDEN)
    for layer in range(LAYERS):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        for kind, rows, cols in (("attn_q", HIDDEN, HIDDEN), ("attn_k", kv, HIDDEN), ("attn_v", kv, HIDDEN)):
            add(f"{block}.{kind}.weight", rows, cols)
        add(f"{block}.attn_output.weight", HIDDEN, HIDDEN)
        add(f"{block}.ffn_gate.weight", FFN, HIDDEN)
        add(f"{block}.ffn_up.weight", FFN, HIDDEN)
        add(f"{block}.ffn_down.weight", HIDDEN, FFN)
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    add("output.weight", vocab_size, HIDDEN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: spm_gguf_fixture.py VOCAB_GGUF OUT.gguf")
    target = Path(sys.argv[2])
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        write(Path(sys.argv[1]), target)
    print(target)
