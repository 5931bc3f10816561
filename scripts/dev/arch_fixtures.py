#!/usr/bin/env python3
"""The embedded SmolLM2 dressed as each architecture the build takes, as an HF folder and as a Q8_0
GGUF written by llama.cpp's own convert_hf_to_gguf.py (no hub). Runs in the build env.

Real weights wherever the math allows, so that a dressed model computes exactly what SmolLM2 does:
- qwen2: the same tensors plus zero q/k/v biases (Qwen2ForCausalLM);
- mistral: the same tensors (MistralForCausalLM; llama.cpp writes it as a `llama` GGUF, as it does
  every Mistral checkpoint);
- phi3: q/k/v fused into qkv_proj and gate/up into gate_up_proj, an untied lm_head (Phi-3's layout).
Where it does not, random weights at a small shape (hidden 256, 2 layers), seeded:
- qwen3: Qwen3ForCausalLM (per-head q/k norms);
- gemma3: Gemma3ForCausalLM (normalized embeddings, pre/post norms, q/k norms, GELU).
Every folder keeps SmolLM2's byte-level BPE (so ordinary text encodes to the same ids everywhere) and
gets its family's chat template and special tokens. Those are SmolLM2's own control tokens renamed,
ids unchanged: the end of an answer is id 2 in every family (`<|im_end|>`, `</s>`, `<|end|>`,
`<end_of_turn>`), the token SmolLM2 learned to stop on.

Cached under build/fixtures/archs/<digest>/ (the digest: this file, llama.cpp's version and the
checkpoint's files); a fixture already there is kept.
Usage: arch_fixtures.py CHECKPOINT [ARCH...]   (default: every one; prints the fixtures' folder)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
LLAMA_CPP = ROOT / "build" / "llama.cpp" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
HOME = ROOT / "build" / "fixtures" / "archs"
GGUF_TYPE = "Q8_0"  # convert_hf_to_gguf.py writes it itself: no llama-quantize needed

QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QWEN3_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set system = message['content'] + '\n\n' %}"
    "{% elif message['role'] == 'user' %}"
    "{{ '[INST] ' + (system if system is defined and loop.index0 == 1 else '')"
    " + message['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}"
)
PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Dress:
    """One architecture: its HF class and config, chat template, renamed tokens and weights."""

    name: str
    architecture: str
    model_type: str
    template: str
    tokens: dict[int, str] = field(default_factory=dict)  # SmolLM2 control token id -> this family's
    bos: int = 1
    eos: int = 2
    real: bool = True  # SmolLM2's weights (else random ones at RANDOM_SHAPE)
    tokenizer_class: str = "PreTrainedTokenizerFast"


DRESSES = {
    "qwen2": Dress("qwen2", "Qwen2ForCausalLM", "qwen2", QWEN2_TEMPLATE, {0: "<|endoftext|>"}),
    "mistral": Dress(
        "mistral",
        "MistralForCausalLM",
        "mistral",
        MISTRAL_TEMPLATE,
        {0: "<unk>", 1: "<s>", 2: "</s>", 3: "[INST]", 4: "[/INST]"},
    ),
    # GPT2Tokenizer: convert_hf_to_gguf.py's Phi-3 reads a byte-level BPE only under that name
    # (Phi-4's); without it, it looks for a SentencePiece tokenizer.model.
    "phi3": Dress(
        "phi3",
        "Phi3ForCausalLM",
        "phi3",
        PHI3_TEMPLATE,
        {1: "<s>", 2: "<|end|>", 3: "<|user|>", 4: "<|assistant|>", 5: "<|system|>"},
        tokenizer_class="GPT2Tokenizer",
    ),
    "qwen3": Dress("qwen3", "Qwen3ForCausalLM", "qwen3", QWEN3_TEMPLATE, {0: "<|endoftext|>"}, real=False),
    "gemma3": Dress(
        "gemma3",
        "Gemma3ForCausalLM",
        "gemma3_text",
        GEMMA_TEMPLATE,
        {0: "<pad>", 1: "<bos>", 2: "<end_of_turn>", 3: "<start_of_turn>", 4: "<eos>"},
        real=False,
    ),
}
# hidden, intermediate, layers, heads, key/value heads, head dim: small, so that a build costs little
RANDOM_SHAPE = (256, 512, 2, 4, 2, 64)


def digest(checkpoint: Path) -> str:
    """This file, llama.cpp's version and the checkpoint's content (not its folder's name, which
    changes with the GGUF importer's code)."""
    blob = hashlib.sha256(Path(__file__).read_bytes() + LLAMA_CPP.parent.name.encode())
    for path in sorted(checkpoint.iterdir()):
        with path.open("rb") as handle:
            blob.update(path.name.encode() + hashlib.file_digest(handle, "sha256").digest())
    return blob.hexdigest()[:12]


def write_tokenizer(checkpoint: Path, out: Path, dress: Dress) -> None:
    """SmolLM2's tokenizer with the family's names for its control tokens and the family's template."""
    data = json.loads((checkpoint / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    for token in data["added_tokens"]:
        renamed = dress.tokens.get(token["id"])
        if renamed is not None:
            del vocab[token["content"]]
            vocab[renamed] = token["id"]
            token["content"] = renamed
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    names = {t["id"]: t["content"] for t in data["added_tokens"]}
    config = {
        "tokenizer_class": dress.tokenizer_class,
        "bos_token": names[dress.bos],
        "eos_token": names[dress.eos],
        "pad_token": names[dress.eos],
        "unk_token": names[0],
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 8192,
        "chat_template": dress.template,
        "added_tokens_decoder": {
            str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in data["added_tokens"]
        },
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    special = {k: v for k, v in config.items() if k.endswith("_token")}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2, ensure_ascii=False))


def model_config(base: dict[str, Any], dress: Dress) -> dict[str, Any]:
    """The family's config.json: SmolLM2's shape for real weights, RANDOM_SHAPE otherwise."""
    keys: tuple[str, ...] = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    keys += ("num_key_value_heads", "head_dim")
    shape = tuple(base[key] for key in keys) if dress.real else RANDOM_SHAPE
    hidden, intermediate, layers, heads, kv_heads, head_dim = shape
    theta = base["rope_parameters"]["rope_theta"]
    config: dict[str, Any] = {
        "architectures": [dress.architecture],
        "model_type": dress.model_type,
        "vocab_size": base["vocab_size"],
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": base["max_position_embeddings"],
        "rms_norm_eps": base["rms_norm_eps"],
        "rope_theta": theta,
        "rope_parameters": {"rope_theta": theta, "rope_type": "default"},
        "tie_word_embeddings": dress.name != "phi3",  # Phi-3 has its own output layer
        "bos_token_id": dress.bos,
        "eos_token_id": dress.eos,
        "pad_token_id": dress.eos,
        "torch_dtype": "float32",
        "use_cache": True,
    }
    if dress.name in ("qwen2", "qwen3"):
        config |= {"use_sliding_window": False, "sliding_window": None, "max_window_layers": layers}
    if dress.name == "qwen3":
        config["attention_bias"] = False
    if dress.name == "mistral":
        config["sliding_window"] = None
    if dress.name == "phi3":
        context = base["max_position_embeddings"]
        config |= {"original_max_position_embeddings": context, "resid_pdrop": 0.0, "embd_pdrop": 0.0}
        config["rope_parameters"]["original_max_position_embeddings"] = context
    if dress.name == "gemma3":
        config |= {
            "hidden_activation": "gelu_pytorch_tanh",
            "query_pre_attn_scalar": head_dim,
            "sliding_window": 512,
            "sliding_window_pattern": 2,
            "layer_types": ["sliding_attention", "full_attention"],
            "rope_local_base_freq": 10000.0,
            "final_logit_softcapping": None,
            "attn_logit_softcapping": None,
        }
        config["rope_parameters"] = {
            "full_attention": {"rope_theta": theta, "rope_type": "default"},
            "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"},
        }
    return config


def real_weights(checkpoint: Path, dress: Dress, out: Path) -> None:
    """SmolLM2's own tensors in the family's layout."""
    if dress.name == "mistral":  # the same names: share the file (a hard link, else a copy)
        try:
            os.link(checkpoint / "model.safetensors", out / "model.safetensors")
        except OSError:
            shutil.copyfile(checkpoint / "model.safetensors", out / "model.safetensors")
        return
    tensors = load_file(checkpoint / "model.safetensors")
    if dress.name == "qwen2":
        for name in [n for n in tensors if n.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight"))]:
            tensors[name.replace(".weight", ".bias")] = torch.zeros(tensors[name].shape[0])
    if dress.name == "phi3":
        fused: dict[str, torch.Tensor] = {}
        for name, tensor in tensors.items():
            prefix = name.rsplit(".", 2)[0]
            if name.endswith("self_attn.q_proj.weight"):
                parts = [tensors[f"{prefix}.{p}_proj.weight"] for p in "qkv"]
                fused[f"{prefix}.qkv_proj.weight"] = torch.cat(parts)
            elif name.endswith("mlp.gate_proj.weight"):
                parts = [tensors[f"{prefix}.{p}_proj.weight"] for p in ("gate", "up")]
                fused[f"{prefix}.gate_up_proj.weight"] = torch.cat(parts)
            elif not name.endswith(("k_proj.weight", "v_proj.weight", "up_proj.weight")):
                fused[name] = tensor
        fused["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
        tensors = fused
    save_file({k: v.contiguous() for k, v in tensors.items()}, out / "model.safetensors", {"format": "pt"})


def random_weights(config: dict[str, Any], out: Path) -> None:
    """Seeded random weights, larger than transformers' init so that the logits have clear winners."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    hf_config = AutoConfig.for_model(**{k: v for k, v in config.items() if k != "architectures"})
    hf_config.architectures = config["architectures"]
    hf_config.initializer_range = 0.1
    model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
    model.save_pretrained(out)


def write_folder(checkpoint: Path, dress: Dress, out: Path) -> None:
    base = json.loads((checkpoint / "config.json").read_text())
    config = model_config(base, dress)
    out.mkdir(parents=True)
    if dress.real:
        real_weights(checkpoint, dress, out)
        (out / "config.json").write_text(json.dumps(config, indent=2))
    else:
        random_weights(config, out)
        written = json.loads((out / "config.json").read_text())
        written.update(bos_token_id=dress.bos, eos_token_id=dress.eos, pad_token_id=dress.eos)
        (out / "config.json").write_text(json.dumps(written, indent=2))
    generation = {"bos_token_id": dress.bos, "eos_token_id": dress.eos, "pad_token_id": dress.eos}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2))
    write_tokenizer(checkpoint, out, dress)


def convert(folder: Path, gguf: Path) -> None:
    """llama.cpp's own converter, as a user would run it."""
    env = {**os.environ, "PYTHONPATH": str(LLAMA_CPP / "gguf-py")}
    command = [sys.executable, str(LLAMA_CPP / "convert_hf_to_gguf.py"), str(folder)]
    command += ["--outtype", GGUF_TYPE.lower(), "--outfile", str(gguf)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(
            f"arch_fixtures: convert_hf_to_gguf.py failed on {folder.name}:\n{done.stderr[-3000:]}"
        )


def made_once(target: Path, make: Callable[[Path], None]) -> None:
    """Make `target` under a partial name, then rename it: a killed run leaves no half fixture."""
    if target.exists():
        return
    partial = target.with_name(f".partial-{target.name}-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    make(partial)
    partial.rename(target)


def main(checkpoint: Path, names: list[str]) -> Path:
    home = HOME / digest(checkpoint)
    home.mkdir(parents=True, exist_ok=True)
    for name in names or list(DRESSES):
        dress = DRESSES[name]
        folder = home / f"smollm2-{name}"
        made_once(folder, partial(write_folder, checkpoint, dress))
        made_once(home / f"smollm2-{name}-{GGUF_TYPE}.gguf", partial(convert, folder))
    return home


if __name__ == "__main__":
    if len(sys.argv) < 2 or any(a not in DRESSES for a in sys.argv[2:]):
        raise SystemExit(f"usage: arch_fixtures.py CHECKPOINT [{' '.join(DRESSES)}]")
    print(main(Path(sys.argv[1]), sys.argv[2:]))
