"""The GGUF tokenizer import's rules on given fields: what is refused, where llama.cpp's defaults
fill in, how SentencePiece scores become merges (llama.cpp's own vocab files are held to its
expected ids in tests/test_gguf_tokenizers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from ovchat_build.gguf.tokenizer import (
    TokenizerError,
    end_of_generation_ids,
    read_tokenizer,
    tokenizer_config,
    tokenizer_json,
)


def reader(name: str = "Test", **fields: Any) -> dict[str, Any]:
    """A file's fields as a reader passes them: `tokenizer.ggml.<key>` from keyword arguments."""
    base = {"model": "gpt2", "tokens": ["a", "b", "ab"], "token_type": [1, 1, 1], "merges": ["a b"]}
    named = {f"tokenizer.ggml.{k}": v for k, v in {**base, **fields}.items() if v is not None}
    return {**named, "general.name": name}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"model": "bert"}, "tokenizer type 'bert'"),
        ({"model": "t5"}, "tokenizer type 't5'"),
        ({"pre": "deepseek-llm"}, "pre-tokenizer 'deepseek-llm'"),
    ],
)
def test_other_tokenizers_are_refused_in_one_line(fields: dict[str, str], named: str) -> None:
    with pytest.raises(TokenizerError) as raised:
        read_tokenizer(reader(**fields), "x.gguf")
    message = str(raised.value)
    assert "\n" not in message and message.startswith("x.gguf: ") and named in message
    assert "not supported (only" in message
    assert ("'llama'" if "type" in named else "qwen2") in message


@pytest.mark.parametrize(
    ("model", "pre", "said", "adds"),
    [
        ("llama", None, None, True),  # SentencePiece: llama.cpp adds a BOS unless told not to
        ("gpt2", "llama-bpe", None, True),  # so does Llama 3's
        ("gpt2", "qwen2", None, False),
        ("gpt2", "smollm", False, False),
        ("llama", None, False, False),  # the file's own word wins
    ],
)
def test_a_bos_is_added_as_the_file_says_else_as_llama_cpp_does(
    model: str, pre: str | None, said: bool | None, adds: bool
) -> None:
    fields = {"model": model, "pre": pre, "add_bos_token": said, "scores": [0.0, 0.0, -1.0]}
    tok = read_tokenizer(reader(**fields, bos_token_id=0), "x.gguf")
    assert tok.add_bos is adds
    assert tokenizer_config(tok)["add_bos_token"] is adds
    processor = tokenizer_json(tok)["post_processor"]
    assert (processor is not None) is adds


def test_smollm_keeps_its_single_digit_split_and_no_post_processor() -> None:
    tok = read_tokenizer(reader(pre="smollm", add_bos_token=False), "x.gguf")
    data = tokenizer_json(tok)
    assert data["pre_tokenizer"]["pretokenizers"][0] == {"type": "Digits", "individual_digits": True}
    assert data["post_processor"] is None
    assert data["model"]["ignore_merges"] is False
    assert data["model"]["merges"] == [["a", "b"]]


def test_llama3_and_qwen2_split_with_llama_cpps_regex() -> None:
    for pre, digits in (("llama-bpe", r"\p{N}{1,3}"), ("qwen2", r"|\p{N}|")):
        split = tokenizer_json(read_tokenizer(reader(pre=pre), "x.gguf"))["pre_tokenizer"]["pretokenizers"][0]
        assert split["type"] == "Split" and split["behavior"] == "Isolated"
        assert digits in split["pattern"]["Regex"]


def test_sentencepiece_scores_become_merges_best_score_first() -> None:
    tokens = ["<unk>", "<s>", "</s>", "▁", "a", "b", "ab", "▁a", "▁ab", "ba"]
    types = [2, 3, 3, 1, 1, 1, 1, 1, 1, 1]
    scores = [0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -5.0, -7.0]
    fields = {"model": "llama", "tokens": tokens, "token_type": types, "scores": scores, "merges": None}
    data = tokenizer_json(read_tokenizer(reader(**fields, unknown_token_id=0, bos_token_id=1), "x.gguf"))
    # ▁ab (-5) splits two ways; ▁a (-6) and ba (-7) come after it; the control tokens merge nothing
    assert data["model"]["merges"] == [["a", "b"], ["▁", "ab"], ["▁a", "b"], ["▁", "a"], ["b", "a"]]
    assert data["model"]["unk_token"] == "<unk>" and data["model"]["byte_fallback"] is False
    assert data["normalizer"]["normalizers"][0] == {"type": "Prepend", "prepend": "▁"}
    assert [t["content"] for t in data["added_tokens"] if t["special"]] == ["<unk>", "<s>", "</s>"]


@pytest.mark.parametrize(("name", "strips"), [("Phi3", True), ("phi-3-mini", True), ("Phi 3 Mini", False)])
def test_phi3_special_tokens_swallow_the_whitespace_after_them_as_llama_cpp_has_it(
    name: str, strips: bool
) -> None:
    tokens = ["<unk>", "<s>", "</s>", "a", "<|endoftext|>", "<|user|>", "<|end|>"]
    fields = {"model": "llama", "tokens": tokens, "token_type": [2, 3, 3, 1, 3, 3, 3], "scores": [0.0] * 7}
    added = tokenizer_json(read_tokenizer(reader(name, **fields), "x.gguf"))["added_tokens"]
    stripping = [t["content"] for t in added if t["rstrip"]]
    # llama.cpp goes by general.name: a file named "Phi 3 Mini" gets no stripping there either
    assert stripping == (["</s>", "<|user|>", "<|end|>"] if strips else [])


def test_the_answer_ends_where_llama_cpp_ends_it_eos_first() -> None:
    # Phi-3's: eos <|endoftext|> (32000 there), its turns end with <|end|>; <|user|> is not an end.
    tokens = ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|user|>", "<|end|>", "end"]
    phi3 = read_tokenizer(reader(tokens=tokens, token_type=[3] * 6 + [1], eos_token_id=3), "x.gguf")
    assert end_of_generation_ids(phi3) == [3, 2, 5]  # </s> too, as llama.cpp has it
    smollm2 = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a"]
    chatml = read_tokenizer(reader(tokens=smollm2, token_type=[3, 3, 3, 1], eos_token_id=2), "x.gguf")
    assert end_of_generation_ids(chatml) == [2, 0]
    alone = read_tokenizer(reader(eos_token_id=None), "x.gguf")
    assert end_of_generation_ids(alone) == []


@pytest.mark.parametrize(
    ("template", "add_bos", "written"),
    [
        ("{% for m in messages %}<|user|>{{ m['content'] }}{% endfor %}", True, True),  # TinyLlama's kind
        ("{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }}{% endfor %}", True, False),
        ("<s>{% for m in messages %}[INST] {{ m['content'] }}{% endfor %}", True, False),
        ("{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}", False, False),  # ChatML
    ],
)
def test_every_chat_prompt_starts_with_the_bos_llama_cpp_gives_it(
    template: str, add_bos: bool, written: bool
) -> None:
    fields = reader(tokens=["<s>", "a", "ab"], add_bos_token=add_bos, bos_token_id=0)
    tok = read_tokenizer({**fields, "tokenizer.chat_template": template}, "x.gguf")
    got = tokenizer_config(tok)["chat_template"]
    assert got == ("{{ bos_token }}" + template if written else template)
