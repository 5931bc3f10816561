"""A GGUF file's tokenizer as a Hugging Face tokenizer.json, rebuilt the way llama.cpp reads it.

transformers' own GGUF tokenizer conversion is not used: for SmolLM2's byte-level BPE it makes eos
`<|im_start|>`, adds a BOS post-processor and a decoder chain that makes openvino-tokenizers emit `Ġ`
for spaces; for SentencePiece vocabularies it makes eos `<s>` and takes 36 s to build Llama 2's
merges (0.15 s here, the same 61,249). Taken: `gpt2` (byte-level BPE) with the pre-tokenizers below,
and `llama` (SentencePiece BPE with byte fallback). tests/test_gguf_tokenizers.py holds each to
llama.cpp's own expected token ids.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) that split digits one by one before the
# GPT-2 byte-level regex: see LLAMA_VOCAB_PRE_TYPE_STARCODER / SMOLLM in llama-vocab.cpp.
SINGLE_DIGIT_PRE = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}
GPT2_PRE = {"gpt-2", "gpt2", "default"}
# The regexes llama-vocab.cpp splits with for LLAMA_VOCAB_PRE_TYPE_LLAMA3 and _QWEN2: the models'
# own tokenizer.json regex with `(?i:'s|...)` spelled out case by case, as llama.cpp adapted it.
_CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_REST = r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}" + _REST
QWEN2_REGEX = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}" + _REST
# Llama 3, 3.1, 3.2 and Qwen 2, 2.5, 3 as llama-vocab.cpp names them.
LLAMA3_PRE = {"llama-bpe", "llama3", "llama-v3"}
QWEN2_PRE = {"qwen2", "deepseek-r1-qwen"}
SPLIT_PRE = {**dict.fromkeys(LLAMA3_PRE, LLAMA3_REGEX), **dict.fromkeys(QWEN2_PRE, QWEN2_REGEX)}
BYTE_LEVEL_PRE = SINGLE_DIGIT_PRE | GPT2_PRE | set(SPLIT_PRE)

TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_UNKNOWN = 2
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4
TOKEN_TYPE_BYTE = 6
# The types llama.cpp matches whole in text (its cache_special_tokens).
SPECIAL_TYPES = (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED, TOKEN_TYPE_UNKNOWN)
SPM_SPACE = "\u2581"  # SentencePiece's visible space, "▁"
# The tokens llama.cpp also ends an answer on, besides the file's eos (llama-vocab.cpp's
# special_eog_ids, matched by text as it does): Phi-3 ends its turns with <|end|> while its eos is
# <|endoftext|>, Llama 3 with <|eot_id|>, Gemma with <end_of_turn>. With the eos alone, a Phi-3 GGUF
# would run past the end of its turn. "</s>" too, as llama.cpp has it, even where it is a plain token
# (Qwen 2's 128247). Not mirrored: llama.cpp's fill-in-the-middle stops (<fim_pad>, <reponame>).
EOG_TEXTS = (
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>", "<eos>",
)  # fmt: skip


# The metadata keys read_tokenizer reads (a reader passes the values of those the file has).
_GGML_KEYS = ("model", "pre", "tokens", "token_type", "merges", "scores", "bos_token_id", "eos_token_id")
_GGML_FLAGS = ("padding_token_id", "unknown_token_id", "add_bos_token", "add_eos_token", "add_space_prefix")
FIELDS = (
    "general.name",
    "tokenizer.chat_template",
    *(f"tokenizer.ggml.{key}" for key in (*_GGML_KEYS, *_GGML_FLAGS, "remove_extra_whitespaces")),
)


class TokenizerError(Exception):
    """The GGUF file's tokenizer is not one the build takes; the message says which are."""


@dataclass(frozen=True)
class GGUFTokenizer:
    """The tokenizer fields of a GGUF file, with llama.cpp's defaults for those it leaves out."""

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
    model: str = "gpt2"
    scores: list[float] | None = None
    add_space_prefix: bool = False
    rstrip_ids: frozenset[int] = frozenset()


def _check_supported(model: object, pre: object, where: str) -> None:
    """TokenizerError in one line naming the file and what it has, unless the build takes it."""
    if model == "llama":
        return
    if model != "gpt2":
        raise TokenizerError(
            f"{where}: tokenizer type '{model}' is not supported (only 'gpt2', byte-level BPE, "
            "and 'llama', SentencePiece)"
        )
    if pre not in BYTE_LEVEL_PRE:
        raise TokenizerError(
            f"{where}: pre-tokenizer '{pre}' is not supported (only {', '.join(sorted(BYTE_LEVEL_PRE))})"
        )


def _phi3_rstrip(fields: Mapping[str, Any], tokens: list[str], types: list[int]) -> frozenset[int]:
    """The special tokens that swallow the whitespace after them: as llama.cpp has it, every one but
    <unk>, <s>, <|endoftext|> when general.name says phi-3 or phi3, none otherwise."""
    # Without it the IR made `<|user|>\nhi` 32010 29871 13 2918 where llama.cpp has 32010 7251.
    name = str(fields.get("general.name", "")).lower()
    if "phi-3" not in name and "phi3" not in name:
        return frozenset()
    kept = {"<unk>", "<s>", "<|endoftext|>"}
    return frozenset(
        i
        for i, (text, kind) in enumerate(zip(tokens, types, strict=True))
        if kind in SPECIAL_TYPES and text not in kept
    )


def read_tokenizer(fields: Mapping[str, Any], where: str) -> GGUFTokenizer:
    """The tokenizer of a GGUF file from its FIELDS' values (`where`: the file in messages)."""
    model = fields.get("tokenizer.ggml.model")
    pre = fields.get("tokenizer.ggml.pre", "default")
    _check_supported(model, pre, where)
    spm = model == "llama"
    scores = fields.get("tokenizer.ggml.scores")
    if spm and (scores is None or fields.get("tokenizer.ggml.remove_extra_whitespaces", False)):
        raise TokenizerError(
            f"{where}: SentencePiece without scores, or with remove_extra_whitespaces, is not supported"
        )
    if fields.get("tokenizer.ggml.add_eos_token", False):
        raise TokenizerError(f"{where}: tokenizers that add an EOS token are not supported")
    # llama.cpp's defaults where the file is silent: a BOS for SentencePiece and Llama 3, none else.
    add_bos = fields.get("tokenizer.ggml.add_bos_token", spm or pre in LLAMA3_PRE)
    if "tokenizer.ggml.tokens" not in fields or "tokenizer.ggml.token_type" not in fields:
        raise TokenizerError(f"{where}: the file has no vocabulary (tokenizer.ggml.tokens, token_type)")
    tokens = list(fields["tokenizer.ggml.tokens"])
    types = [int(t) for t in fields["tokenizer.ggml.token_type"]]
    return GGUFTokenizer(
        tokens=tokens,
        token_types=types,
        merges=list(fields.get("tokenizer.ggml.merges", [])),
        pre=pre,
        bos_id=fields.get("tokenizer.ggml.bos_token_id"),
        eos_id=fields.get("tokenizer.ggml.eos_token_id"),
        pad_id=fields.get("tokenizer.ggml.padding_token_id"),
        unk_id=fields.get("tokenizer.ggml.unknown_token_id"),
        chat_template=fields.get("tokenizer.chat_template"),
        add_bos=bool(add_bos),
        model=str(model),
        scores=None if scores is None else [float(s) for s in scores],
        add_space_prefix=bool(fields.get("tokenizer.ggml.add_space_prefix", spm)),
        rstrip_ids=_phi3_rstrip(fields, tokens, types),
    )


def _added_tokens(tok: GGUFTokenizer) -> list[dict[str, Any]]:
    """Control, user-defined and unknown-type tokens: the ones llama.cpp matches whole in text."""
    return [
        {
            "id": i,
            "content": text,
            "single_word": False,
            "lstrip": False,
            "rstrip": i in tok.rstrip_ids,
            "normalized": False,
            "special": kind != TOKEN_TYPE_USER_DEFINED,
        }
        for i, (text, kind) in enumerate(zip(tok.tokens, tok.token_types, strict=True))
        if kind in SPECIAL_TYPES
    ]


def _bos_processor(tok: GGUFTokenizer) -> dict[str, Any] | None:
    """The post-processor that puts the BOS in front when the file asks for one (else none)."""
    if not tok.add_bos or tok.bos_id is None:
        return None
    bos = tok.tokens[tok.bos_id]
    return {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": bos, "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {bos: {"id": bos, "ids": [tok.bos_id], "tokens": [bos]}},
    }


def _byte_level_pre_tokenizer(pre: str) -> dict[str, Any]:
    """The split before the byte-level BPE: GPT-2's own regex, single digits first, or a regex."""
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}
    if pre in SPLIT_PRE:
        regex = {"Regex": SPLIT_PRE[pre]}
        split = {"type": "Split", "pattern": regex, "behavior": "Isolated", "invert": False}
        return {"type": "Sequence", "pretokenizers": [split, {**byte_level, "use_regex": False}]}
    pre_tokenizer: dict[str, Any] = {**byte_level, "use_regex": True}
    if pre in SINGLE_DIGIT_PRE:
        pre_tokenizer = {
            "type": "Sequence",
            "pretokenizers": [{"type": "Digits", "individual_digits": True}, pre_tokenizer],
        }
    return pre_tokenizer


def _byte_level_json(tok: GGUFTokenizer) -> dict[str, Any]:
    """tokenizer.json for a `gpt2` vocabulary: byte-level BPE over the file's own merges."""
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added_tokens(tok),
        "normalizer": None,
        "pre_tokenizer": _byte_level_pre_tokenizer(tok.pre),
        # None unless the file asks for a BOS (SmolLM2's does not: its chat template carries its
        # own special tokens).
        "post_processor": _bos_processor(tok),
        "decoder": {**byte_level, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            # llama.cpp takes a Llama 3 word that is a whole token as it is, merges or not: 588 of
            # its 128,000 tokens are reachable only so. openvino-tokenizers has no such switch and
            # splits them (' Việt' -> ' Vi', 'ệ', 't'), the test's one strict xfail.
            "ignore_merges": tok.pre in LLAMA3_PRE,
            "vocab": {text: i for i, text in enumerate(tok.tokens)},
            "merges": [m.split(" ", 1) for m in tok.merges],
        },
    }


def _spm_merges(tok: GGUFTokenizer) -> list[list[str]]:
    """BPE merges equivalent to SentencePiece's scores: each normal token is the merge of any two
    tokens it splits into, ranked by its score, highest first (llama.cpp's SPM bigram queue)."""
    assert tok.scores is not None
    ids = {text: i for i, text in enumerate(tok.tokens)}
    ranked = []
    for i, (text, kind) in enumerate(zip(tok.tokens, tok.token_types, strict=True)):
        if kind != TOKEN_TYPE_NORMAL:
            continue
        for cut in range(1, len(text)):
            left, right = text[:cut], text[cut:]
            if left in ids and right in ids:
                ranked.append((-tok.scores[i], i, cut, left, right))
    ranked.sort()
    return [[left, right] for *_, left, right in ranked]


def _spm_json(tok: GGUFTokenizer) -> dict[str, Any]:
    """tokenizer.json for a `llama` (SentencePiece) vocabulary, as Llama 2's own tokenizer.json:
    spaces become "▁" (one in front of the text too), unknown characters fall back to bytes."""
    space = {"type": "Replace", "pattern": {"String": " "}, "content": SPM_SPACE}
    unspace = {"type": "Replace", "pattern": {"String": SPM_SPACE}, "content": " "}
    normalizers: list[dict[str, Any]] = [space]
    decoders: list[dict[str, Any]] = [unspace, {"type": "ByteFallback"}, {"type": "Fuse"}]
    if tok.add_space_prefix:
        normalizers.insert(0, {"type": "Prepend", "prepend": SPM_SPACE})
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added_tokens(tok),
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": None,
        "post_processor": _bos_processor(tok),
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None if tok.unk_id is None else tok.tokens[tok.unk_id],
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            # openvino-tokenizers refuses byte fallback without all 256 <0xNN> pieces; llama.cpp
            # then gives unknown characters the unk token, as BPE without the fallback does
            "byte_fallback": tok.token_types.count(TOKEN_TYPE_BYTE) == 256,
            "ignore_merges": False,
            "vocab": {text: i for i, text in enumerate(tok.tokens)},
            "merges": _spm_merges(tok),
        },
    }


def tokenizer_json(tok: GGUFTokenizer) -> dict[str, Any]:
    """A tokenizers-library JSON equivalent to llama.cpp's reading of the GGUF vocabulary."""
    return _spm_json(tok) if tok.model == "llama" else _byte_level_json(tok)


def end_of_generation_ids(tok: GGUFTokenizer) -> list[int]:
    """The file's eos first, then each other token of EOG_TEXTS the vocabulary has."""
    first = [] if tok.eos_id is None else [tok.eos_id]
    return first + [i for i, text in enumerate(tok.tokens) if text in EOG_TEXTS and i not in first]


def _token(tok: GGUFTokenizer, token_id: int | None) -> str | None:
    return None if token_id is None else tok.tokens[token_id]


def tokenizer_config(tok: GGUFTokenizer) -> dict[str, Any]:
    """tokenizer_config.json: the special tokens, whether a BOS is added, the chat template."""
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": _token(tok, tok.bos_id),
        "eos_token": _token(tok, tok.eos_id),
        "pad_token": _token(tok, tok.pad_id),
        "unk_token": _token(tok, tok.unk_id),
        "add_bos_token": tok.add_bos,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1_000_000,
    }
    template = chat_template(tok)
    if template:
        config["chat_template"] = template
    return config


def chat_template(tok: GGUFTokenizer) -> str | None:
    """The file's chat template, made to write the BOS llama.cpp gives every chat prompt.

    llama.cpp renders the template, strips a BOS it wrote, then tokenizes with the file's add_bos
    (common/chat.cpp): a prompt starts with exactly one BOS whatever the template says. The runtime
    encodes the rendered prompt as it is, so a template that writes no BOS (TinyLlama's, Zephyr's)
    is given one where llama.cpp would add it."""
    template = tok.chat_template
    if not template or not tok.add_bos or tok.bos_id is None:
        return template
    if "bos_token" in template or tok.tokens[tok.bos_id] in template:
        return template
    return "{{ bos_token }}" + template


def write_tokenizer(tok: GGUFTokenizer, out: Path) -> None:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json into `out`."""
    (out / "tokenizer.json").write_text(json.dumps(tokenizer_json(tok), ensure_ascii=False))
    config = tokenizer_config(tok)
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    special = {k: v for k, v in config.items() if k.endswith("_token") and v is not None}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2, ensure_ascii=False))
