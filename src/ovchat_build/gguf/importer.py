"""Turn a GGUF file (llama, qwen2, qwen3, phi3 or gemma3 architecture) into a Hugging Face checkpoint folder.

The weights go through transformers' own GGUF loader (dequantized to float32). The tokenizer does
not: tokenizer.py rebuilds it from the GGUF metadata the way llama.cpp reads it (transformers'
GGUF tokenizer conversion gets SmolLM2's eos and decoder wrong).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gguf

from ovchat_build.gguf.archs import ArchitectureError, architecture, read_gguf
from ovchat_build.gguf.tokenizer import FIELDS as TOKENIZER_FIELDS
from ovchat_build.gguf.tokenizer import (
    GGUFTokenizer,
    TokenizerError,
    end_of_generation_ids,
    read_tokenizer,
    write_tokenizer,
)


class GGUFImportError(Exception):
    """The GGUF file cannot be turned into a checkpoint; the message says why."""


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
    try:
        fields = {key: _field(reader, key) for key in TOKENIZER_FIELDS if key in reader.fields}
        tokenizer = read_tokenizer(fields, str(path))
    except TokenizerError as exc:
        raise GGUFImportError(str(exc)) from None
    facts = {
        "name": _field(reader, "general.name"),
        "architecture": arch,
        "context_length": _field(reader, f"{arch}.context_length"),
        # transformers' GGUF loader leaves Qwen3's head size at its default (128) instead of this
        "head_dim": _field(reader, f"{arch}.attention.key_length"),
        "file_type": _field(reader, "general.file_type"),
    }
    return facts, tokenizer


def _set_special_ids(path: Path, tok: GGUFTokenizer, stops: list[int] | None = None) -> None:
    """The file's bos/eos/pad ids into an HF config; `stops` (eos first) as generation_config's eos
    list, which GenAI reads as its stop_token_ids."""
    data = json.loads(path.read_text())
    for key, value in (("bos", tok.bos_id), ("eos", tok.eos_id), ("pad", tok.pad_id)):
        if value is not None:
            data[f"{key}_token_id"] = value
    if stops and len(stops) > 1:
        data["eos_token_id"] = stops
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
    _set_special_ids(out / "generation_config.json", tok, end_of_generation_ids(tok))
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
