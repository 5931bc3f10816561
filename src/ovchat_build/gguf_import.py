"""Turn a GGUF file (llama, qwen2, qwen3, phi3 or gemma3 architecture) into a Hugging Face checkpoint folder.

The weights go through transformers' own GGUF loader (dequantized to float32). The tokenizer
does not: transformers' GGUF tokenizer conversion gets SmolLM2 wrong (eos becomes
`<|im_start|>`, a BOS post-processor is added, and its decoder chain makes openvino-tokenizers
emit `Ġ` instead of spaces). We rebuild it from the GGUF metadata instead, the way llama.cpp
reads it, so that encode -> decode round-trips exactly.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from ovchat_build.gguf_archs import ArchitectureError, architecture, read_gguf

# llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) that split digits one by one before the
# GPT-2 byte-level regex: see LLAMA_VOCAB_PRE_TYPE_STARCODER / SMOLLM in llama-vocab.cpp.
SINGLE_DIGIT_PRE = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}
GPT2_PRE = {"gpt-2", "gpt2", "default"}

TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4


class GGUFImportError(Exception):
    """The GGUF file cannot be turned into a checkpoint; the message says why."""


@dataclass(frozen=True)
class GGUFTokenizer:
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    pre: str
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    unk_id: int | None
    chat_template: str | None
    add_bos: bool


def _field(reader: gguf.GGUFReader, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def read_metadata(path: Path) -> tuple[dict[str, Any], GGUFTokenizer]:
    """Read the architecture facts and the tokenizer of a GGUF file."""
    try:
        reader = read_gguf(path)
    except Exception as exc:  # gguf raises ValueError/struct errors on foreign files
        raise GGUFImportError(f"{path} is not a readable GGUF file ({exc})") from exc
    arch = _field(reader, "general.architecture")
    try:
        architecture(arch, str(path))
    except ArchitectureError as exc:
        raise GGUFImportError(str(exc)) from None
    model = _field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise GGUFImportError(
            f"{path}: tokenizer type '{model}' is not supported (only byte-level BPE, 'gpt2')"
        )
    pre = _field(reader, "tokenizer.ggml.pre", "default")
    if pre not in SINGLE_DIGIT_PRE | GPT2_PRE:
        raise GGUFImportError(f"{path}: pre-tokenizer '{pre}' is not supported")
    tokenizer = GGUFTokenizer(
        tokens=list(_field(reader, "tokenizer.ggml.tokens")),
        token_types=[int(t) for t in _field(reader, "tokenizer.ggml.token_type")],
        merges=list(_field(reader, "tokenizer.ggml.merges")),
        pre=pre,
        bos_id=_field(reader, "tokenizer.ggml.bos_token_id"),
        eos_id=_field(reader, "tokenizer.ggml.eos_token_id"),
        pad_id=_field(reader, "tokenizer.ggml.padding_token_id"),
        unk_id=_field(reader, "tokenizer.ggml.unknown_token_id"),
        chat_template=_field(reader, "tokenizer.chat_template"),
        add_bos=bool(_field(reader, "tokenizer.ggml.add_bos_token", False)),
    )
    facts = {
        "name": _field(reader, "general.name"),
        "architecture": arch,
        "context_length": _field(reader, f"{arch}.context_length"),
        # transformers' GGUF loader leaves Qwen3's head size at its default (128) instead of this
        "head_dim": _field(reader, f"{arch}.attention.key_length"),
        "file_type": _field(reader, "general.file_type"),
    }
    return facts, tokenizer


def _hf_tokenizer_json(tok: GGUFTokenizer) -> dict[str, Any]:
    """A tokenizers-library JSON equivalent to llama.cpp's reading of the GGUF vocab."""
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}
    pre_tokenizer: dict[str, Any] = {**byte_level, "use_regex": True}
    if tok.pre in SINGLE_DIGIT_PRE:
        pre_tokenizer = {
            "type": "Sequence",
            "pretokenizers": [{"type": "Digits", "individual_digits": True}, pre_tokenizer],
        }
    special_types = (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED)
    added = [
        {
            "id": i,
            "content": text,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": kind == TOKEN_TYPE_CONTROL,
        }
        for i, (text, kind) in enumerate(zip(tok.tokens, tok.token_types, strict=True))
        if kind in special_types
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        # No post-processor: the GGUF says add_bos_token is false, and the chat template
        # carries its own special tokens.
        "post_processor": None,
        "decoder": {**byte_level, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {text: i for i, text in enumerate(tok.tokens)},
            "merges": [m.split(" ", 1) for m in tok.merges],
        },
    }


def _token(tok: GGUFTokenizer, token_id: int | None) -> str | None:
    return None if token_id is None else tok.tokens[token_id]


def write_tokenizer(tok: GGUFTokenizer, out: Path) -> None:
    """Write tokenizer.json and tokenizer_config.json built from the GGUF metadata."""
    if tok.add_bos:
        raise GGUFImportError("GGUF tokenizers that add a BOS token are not supported yet")
    (out / "tokenizer.json").write_text(json.dumps(_hf_tokenizer_json(tok), ensure_ascii=False))
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": _token(tok, tok.bos_id),
        "eos_token": _token(tok, tok.eos_id),
        "pad_token": _token(tok, tok.pad_id),
        "unk_token": _token(tok, tok.unk_id),
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1_000_000,
    }
    if tok.chat_template:
        config["chat_template"] = tok.chat_template
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    special = {k: v for k, v in config.items() if k.endswith("_token") and v is not None}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2, ensure_ascii=False))


def _set_special_ids(path: Path, tok: GGUFTokenizer) -> None:
    data = json.loads(path.read_text())
    for key, value in (("bos", tok.bos_id), ("eos", tok.eos_id), ("pad", tok.pad_id)):
        if value is not None:
            data[f"{key}_token_id"] = value
    path.write_text(json.dumps(data, indent=2))


def gguf_to_hf(gguf_path: Path, out: Path) -> dict[str, Any]:
    """Write an HF checkpoint (float32 weights, rebuilt tokenizer) for `gguf_path` into `out`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    facts, tok = read_metadata(gguf_path)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _parsed_once():
            config = AutoConfig.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
            if facts["head_dim"]:
                config.head_dim = facts["head_dim"]
            model = AutoModelForCausalLM.from_pretrained(
                gguf_path.parent, gguf_file=gguf_path.name, config=config, dtype=torch.float32
            )
    except Exception as exc:
        raise GGUFImportError(f"transformers cannot load {gguf_path}: {exc}") from exc
    model.save_pretrained(out)
    write_tokenizer(tok, out)
    _set_special_ids(out / "config.json", tok)
    _set_special_ids(out / "generation_config.json", tok)
    return facts


@contextmanager
def _parsed_once() -> Iterator[None]:
    """transformers' GGUF loader parses the file's header anew for the config and again for the
    weights (~2.5 s each for SmolLM2's vocabulary), and builds gguf's tensor-name map once per
    tensor (397 times): lend it the build's one parsed reader and one map per architecture. Both
    are read-only; transformers imports them from `gguf` at call time."""
    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = lambda path, *args, **kwargs: read_gguf(Path(path))  # type: ignore[assignment,misc]
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=8)(name_map)  # type: ignore[assignment]
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map  # type: ignore[misc]
