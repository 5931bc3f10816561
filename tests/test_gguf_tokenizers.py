"""The tokenizers a GGUF import takes give llama.cpp's own token ids, through the IR the runtime uses.

llama.cpp's test-tokenizer-0 data (the vocab-only `ggml-vocab-NAME.gguf` files in its models/
folder, each with `.inp` texts and `.out` ids; here from the llama-cpp-python sdist that
scripts/dev/llama_cpp_tools.sh extracts, `make test-fixtures`): each vocabulary's tokenizer is
imported as the build does, converted by openvino-tokenizers as optimum-cli's export does, and run
by openvino-genai's Tokenizer (scripts/dev/gguf_vocab_check.py, one build-env process for them all).
Each text must give llama.cpp's ids (without special tokens, as test-tokenizer-0 asks; with them,
the BOS in front exactly when the file asks for one), and llama.cpp's ids must decode to the text.
Chat prompts with special tokens give the ids llama.cpp gives them. Other tokenizer types and
pre-tokenizers are refused in one line. A tiny random llama with Llama 2's vocabulary builds end to
end and chats (scripts/dev/spm_gguf_fixture.py; the build is cached under build/sources).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import BUILD_PYTHON, ROOT, build_env, run_build
from ovchat.cli.main import cli

MODELS = ROOT / "build" / "llama.cpp" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp" / "models"
CHECK = ROOT / "scripts" / "dev" / "gguf_vocab_check.py"
# The vocabularies also read with gguf's reader (the build's), which must agree with the runtime's
# fast one that reads them all: one SentencePiece and one byte-level file (1 s and 2 s with gguf's).
COMPARED = ["phi-3", "gpt-2"]
SPM_FIXTURE = ROOT / "build" / "fixtures" / "gguf-spm" / "tiny-llama-spm.gguf"
# SentencePiece (Llama 2, Mistral, TinyLlama; Phi-3), Llama 3, Qwen 2, GPT-2, single digits.
TAKEN = ("llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2", "starcoder", "refact")
# A tokenizer type (WordPiece) and a pre-tokenizer (MPT's) the import does not take.
REFUSED = {"bert-bge": "tokenizer type 'bert'", "mpt": "pre-tokenizer 'mpt'"}
# Llama 3 asks llama.cpp to take a word that is a whole token as it is (ignore_merges); the
# openvino-tokenizers BPE has no such switch and merges it in pieces.
KNOWN = {("llama-bpe", "Cửa Việt"): "openvino-tokenizers' BPE has no ignore_merges (Llama 3)"}
# Chat prompts with their special tokens, and llama.cpp's ids for them (llama-cpp-python 0.3.36, the
# same llama.cpp: Llama(vocab_only=True).tokenize(text, add_bos=False, special=True)). Phi-3's
# special tokens swallow the whitespace after them; after a special token SentencePiece text starts
# with "▁" again.
CHATS = {
    "phi-3": [
        ("<s><|user|>\nhi there<|end|>\n<|assistant|>\n", "1 32010 7251 727 32007 32001"),
        ("<|user|>\n  x\n<|end|>\n<|assistant|>\nok<|end|>\n", "32010 921 13 32007 32001 3431 32007"),
    ],
    "llama-spm": [
        (
            "<s>[INST] hi [/INST] ok</s><s>[INST] again [/INST]",
            "1 518 25580 29962 7251 518 29914 25580 29962 3431 2 1 518 25580 29962 1449 518 29914 "
            "25580 29962",
        )
    ],
    "llama-bpe": [
        (
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            "128000 128006 882 128007 271 6151 128009 128006 78191 128007 271",
        )
    ],
    "qwen2": [
        (
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nhi  there"
            "<|im_end|>\n<|im_start|>assistant\n",
            "151644 8948 198 2610 525 264 10950 17847 151645 198 151644 872 198 6023 220 1052 151645 198 "
            "151644 77091 198",
        )
    ],
}


@functools.cache
def _cases(name: str) -> list[tuple[str, list[int]]]:
    """(text, llama.cpp's ids) of vocabulary `name`, parsed by the helper's own reader."""
    spec = importlib.util.spec_from_file_location("gguf_vocab_check", CHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found: list[tuple[str, list[int]]] = module.cases(MODELS / f"ggml-vocab-{name}.gguf")
    return found


def _params(known: dict[tuple[str, str], str]) -> list[Any]:
    """One case per (vocabulary, text), read at collection from the tree `make test-fixtures` made;
    the `known` ones a strict xfail."""
    if not MODELS.is_dir():
        return [pytest.param("missing-vocab-files", 0, id="missing-vocab-files")]
    params = []
    for name in TAKEN:
        for index, (text, _) in enumerate(_cases(name)):
            reason = known.get((name, text))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(name, index, marks=marks, id=f"{name}-{index:02d}"))
    return params


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    """Every vocabulary's ids and decoded texts from the IR, in one build-env process."""
    if not MODELS.is_dir():
        pytest.fail(f"{MODELS} is missing: run `make test-fixtures` (scripts/dev/llama_cpp_tools.sh)")
    if not BUILD_PYTHON.exists():
        pytest.fail("the build env is missing: run `make build-env` (the README's `make test` does)")
    done = subprocess.run(
        [str(BUILD_PYTHON), str(CHECK), str(MODELS), *TAKEN, *REFUSED],
        capture_output=True,
        text=True,
        env=build_env(),
        timeout=600,
        cwd=ROOT,
        input=json.dumps(
            {
                "chat": {name: [text for text, _ in chats] for name, chats in CHATS.items()},
                "compare": COMPARED,
            }
        ),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(done.stdout)
    return found


@pytest.mark.parametrize(("name", "index"), _params(KNOWN))
def test_each_text_gives_llama_cpps_ids(results: dict[str, Any], name: str, index: int) -> None:
    got, expected = results[name], _cases(name)[index][1]
    assert got["plain"][index] == expected
    bos = [got["bos_id"]] if got["add_bos"] else []
    assert got["special"][index] == bos + expected


# llama.cpp's end-of-generation ids of each chat vocabulary (llama-cpp-python 0.3.36, the same
# llama.cpp: every id with llama_vocab_is_eog), the file's eos first.
STOPS = {
    "phi-3": [32000, 2, 32007],
    "llama-bpe": [128001, 128009],
    "qwen2": [151643, 128247, 151645],
    "llama-spm": [2],
    "gpt-2": [50256],
}


@pytest.mark.parametrize("name", sorted(STOPS))
def test_answers_end_where_llama_cpp_ends_them(results: dict[str, Any], name: str) -> None:
    assert results[name]["stops"] == STOPS[name]


@pytest.mark.parametrize(("name", "index"), _params({}))
def test_llama_cpps_ids_decode_to_the_text(results: dict[str, Any], name: str, index: int) -> None:
    assert results[name]["decoded"][index] == _cases(name)[index][0]


@pytest.mark.parametrize("name", CHATS)
def test_chat_prompts_give_llama_cpps_ids_with_their_special_tokens(
    results: dict[str, Any], name: str
) -> None:
    assert results[name]["chat"] == [[int(i) for i in ids.split()] for _, ids in CHATS[name]]


@pytest.mark.parametrize("name", REFUSED)
def test_an_unsupported_tokenizer_is_refused_in_one_line(results: dict[str, Any], name: str) -> None:
    message = results[name]["refused"]
    assert "\n" not in message
    assert f"ggml-vocab-{name}.gguf" in message
    assert REFUSED[name] in message
    assert "not supported (only" in message and "gpt2" in message


def test_a_sentencepiece_gguf_builds_and_chats(tmp_path: Path) -> None:
    """Imported, exported, gated against the dequantized file, verified; the runtime's chat prompt
    is llama.cpp's 1 518 25580 29962 7251 518 29914 25580 29962 (`<s>[INST] hi [/INST]`)."""
    if not MODELS.is_dir():
        pytest.fail(f"{MODELS} is missing: run `make test-fixtures` (scripts/dev/llama_cpp_tools.sh)")
    script, vocab = ROOT / "scripts" / "dev" / "spm_gguf_fixture.py", MODELS / "ggml-vocab-llama-spm.gguf"
    made = subprocess.run(
        [str(BUILD_PYTHON), str(script), str(vocab), str(SPM_FIXTURE)],
        capture_output=True,
        text=True,
        env=build_env(),
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    # random weights never end an answer on their own: no chat check in the build
    result = run_build(str(SPM_FIXTURE), "--out-dir", str(tmp_path), "--no-chat-check")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "tiny-llama-spm-gguf"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert all(manifest["verification"]["round_trip"].values())
    asked = CliRunner().invoke(cli, ["ask", "--model", str(folder), "--json", "-n", "8", "hi"])
    assert asked.exit_code == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["text"].strip() and answer["finish_reason"] == "length"
    assert answer["metrics"]["input_tokens"] == 9
