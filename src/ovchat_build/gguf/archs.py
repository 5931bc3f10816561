"""The GGUF architectures the build takes, and how each one's tensors meet the HF checkpoint's.

llama.cpp names a layer's tensors alike in every architecture (blk.N.attn_q, blk.N.ffn_up, ...), but
the HF modules they become differ: Phi-3 keeps q/k/v fused in one qkv_proj (GGUF attn_qkv) and
gate/up in one gate_up_proj (GGUF ffn_up, twice the rows). Only llama.cpp's llama converter reorders
the q/k rows for its rotary embedding (convert_hf_to_gguf.py's LlamaModel.permute), and transformers
undoes it for llama files only. Mistral checkpoints are written as `llama` files by that converter.
transformers' GGUF loader (integrations/ggml.py) reads each of these; openvino-genai's own reader
takes only llama, qwen2 and qwen3 (the runtime says so for `--model x.gguf`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import gguf


def read_gguf(path: Path) -> gguf.GGUFReader:
    """`path`'s reader, parsed once per build: its header holds the whole vocabulary as fields
    (SmolLM2's 49,152 tokens and 48,900 merges take gguf's reader ~2.5 s to parse), and the check,
    the plan, the import and the grid each need it. A file changed since is read again."""
    stat = path.stat()
    return _read(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _read(path: Path, size: int, mtime_ns: int) -> gguf.GGUFReader:
    return gguf.GGUFReader(path)


# GGUF tensor kind inside a layer -> the HF module it is the weight of.
SEPARATE = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
FUSED = {
    "attn_qkv": "self_attn.qkv_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_up": "mlp.gate_up_proj",
    "ffn_down": "mlp.down_proj",
}


@dataclass(frozen=True)
class Architecture:
    """One `general.architecture`: its layers' linear weights and whether q/k rows are reordered."""

    name: str
    linear: dict[str, str]
    reordered: bool = False


ARCHITECTURES = {
    arch.name: arch
    for arch in (
        Architecture("llama", SEPARATE, reordered=True),
        Architecture("qwen2", SEPARATE),
        Architecture("qwen3", SEPARATE),
        Architecture("phi3", FUSED),
        Architecture("gemma3", SEPARATE),
    )
}


class ArchitectureError(Exception):
    """The file's architecture is not one the build takes; the message names the ones it does."""


def architecture(name: object, where: str) -> Architecture:
    """The architecture `name`, or ArchitectureError in one line naming `where` (the file)."""
    found = ARCHITECTURES.get(str(name))
    if found is None:
        raise ArchitectureError(
            f"{where}: GGUF architecture '{name}' is not supported (only {', '.join(ARCHITECTURES)}; "
            "Mistral files are 'llama'): convert the original Hugging Face checkpoint instead"
        )
    return found


def file_architecture(reader: gguf.GGUFReader, where: str) -> Architecture:
    field = reader.fields.get("general.architecture")
    return architecture(None if field is None else field.contents(), where)
