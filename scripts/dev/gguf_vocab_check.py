"""Tokenize llama.cpp's own test texts with the tokenizer the build makes of a vocab-only GGUF.

For each `ggml-vocab-NAME.gguf` named (llama.cpp's models/ folder, with its `.inp` texts): read the
tokenizer as the build's GGUF import does, write its tokenizer.json, convert that with
openvino-tokenizers as optimum-cli's export does, and run each text through openvino-genai's
Tokenizer over the IR, as the runtime does. The fields are read by the runtime's own GGUF head
reader (ovchat.model.gguf_head: 0.35 s for Llama 3's vocabulary, where gguf's reader, the build's, takes
9 s); the names given as "compare" are read by both, which must agree.

Prints one JSON object: per name, either {"refused": message} or {"add_bos", "bos_id", "plain",
"special", "decoded", "chat"}: plain the ids without special tokens (llama.cpp's test-tokenizer-0
passes add_special=false), special the ids with them as the IR adds them, decoded the text back
from llama.cpp's ids (the `.out` file's), chat the ids of the texts given on stdin, special tokens
in them parsed. Runs in the build env.
Usage: gguf_vocab_check.py MODELS_DIR NAME... [< {"chat": {"NAME": ["text", ...]}, "compare": [NAME]}]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

SEPARATOR = "\n__ggml_vocab_test__\n"


def cases(vocab: Path) -> list[tuple[str, list[int]]]:
    """The `.inp` file's texts (each one ends with the separator line, the last one too), each with
    its line of the `.out` file: llama.cpp's token ids."""
    texts = Path(f"{vocab}.inp").read_text(encoding="utf-8").split(SEPARATOR)[:-1]
    lines = Path(f"{vocab}.out").read_text(encoding="utf-8").split("\n")[: len(texts)]
    return [(text, [int(i) for i in line.split()]) for text, line in zip(texts, lines, strict=True)]


def fields(vocab: Path, compare: bool) -> dict[str, Any]:
    """The tokenizer fields of `vocab` (checked against gguf's reader if `compare`)."""
    from ovchat.model.gguf_head import read_gguf_metadata
    from ovchat_build.gguf.tokenizer import FIELDS

    found = read_gguf_metadata(vocab, set(FIELDS))
    if compare:
        import gguf

        reader = gguf.GGUFReader(vocab)
        theirs = {key: reader.fields[key].contents() for key in FIELDS if key in reader.fields}
        assert theirs == found, f"{vocab}: the readers disagree on {set(theirs) ^ set(found)}"
    return found


def check(vocab: Path, chat: list[str], compare: bool) -> dict[str, Any]:
    """Tokenize and detokenize each text of `vocab` through the IR the build would make."""
    import openvino as ov
    import openvino_genai as ov_genai
    from openvino_tokenizers import convert_tokenizer
    from transformers import AutoTokenizer

    from ovchat_build.gguf.tokenizer import (
        TokenizerError,
        end_of_generation_ids,
        read_tokenizer,
        write_tokenizer,
    )

    try:
        tok = read_tokenizer(fields(vocab, compare), str(vocab))
    except TokenizerError as exc:
        return {"refused": str(exc)}
    with tempfile.TemporaryDirectory(prefix="gguf-vocab-") as folder:
        write_tokenizer(tok, Path(folder))
        irs = convert_tokenizer(AutoTokenizer.from_pretrained(folder), with_detokenizer=True)
        ov.save_model(irs[0], Path(folder) / "openvino_tokenizer.xml")
        ov.save_model(irs[1], Path(folder) / "openvino_detokenizer.xml")
        runtime = ov_genai.Tokenizer(folder)
        texts = cases(vocab)
        plain = [_ids(runtime.encode(text, add_special_tokens=False)) for text, _ in texts]
        special = [_ids(runtime.encode(text, add_special_tokens=True)) for text, _ in texts]
        decoded = [runtime.decode(ids) if ids else "" for _, ids in texts]
        chats = [_ids(runtime.encode(text, add_special_tokens=False)) for text in chat]
    found = {"plain": plain, "special": special, "decoded": decoded, "chat": chats}
    return {"add_bos": tok.add_bos, "bos_id": tok.bos_id, "stops": end_of_generation_ids(tok), **found}


def _ids(encoded: Any) -> list[int]:
    return [int(i) for i in encoded.input_ids.data[0]]


def main(models: str, names: list[str]) -> None:
    asked = json.loads(sys.stdin.read() or "{}")
    chat, compare = asked.get("chat", {}), asked.get("compare", [])
    results = {
        name: check(Path(models) / f"ggml-vocab-{name}.gguf", chat.get(name, []), name in compare)
        for name in names
    }
    print(json.dumps(results, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
