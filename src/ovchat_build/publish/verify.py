"""Checks an exported model folder must pass before the build accepts it: the chat check opens it
through the runtime's own open_model, with the runtime properties its manifest records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openvino_genai as ov_genai

from ovchat import DeviceConfig, Model, open_model
from ovchat.errors import OvchatError

# Fixed texts the tokenizer/detokenizer pair must round-trip exactly.
ROUND_TRIP_TEXTS = {
    "ascii": "The quick brown fox jumps over the lazy dog. 0123456789 !@#$%^&*()",
    "accents": "Café, naïve, Ångström, señor, Łódź, déjà vu.",
    "cjk": "日本語のテキスト、中文文本，한국어 텍스트.",
    "emoji": "Ship it 🚀🤖 — done ✅ 👍🏽",
    "code": "def add(a, b):\n    return a + b\n\n\tif x:\n        pass  \n",
    "whitespace": "   leading spaces\n\n\ntrailing   ",
}
CHAT_QUESTION = "What is the capital of France? Answer in one sentence."
CHAT_MAX_NEW_TOKENS = 128


class VerifyError(Exception):
    """The exported folder failed a check; the message says which."""


def check_round_trip(tokenizer: ov_genai.Tokenizer) -> dict[str, bool]:
    """Encode then decode each fixed text; every one must come back unchanged."""
    results = {}
    for name, text in ROUND_TRIP_TEXTS.items():
        ids = tokenizer.encode(text, add_special_tokens=False).input_ids.data[0].tolist()
        back = tokenizer.decode(ids, skip_special_tokens=False)
        results[name] = back == text
    failed = [name for name, ok in results.items() if not ok]
    if failed:
        raise VerifyError(f"tokenizer round-trip changed the text for: {', '.join(failed)}")
    return results


def check_eos(model_dir: Path, tokenizer: ov_genai.Tokenizer) -> int:
    """generation_config.json's eos id must be the tokenizer's eos id (or include it)."""
    eos = tokenizer.get_eos_token_id()
    config = json.loads((model_dir / "generation_config.json").read_text())
    declared = config.get("eos_token_id")
    ids = declared if isinstance(declared, list) else [declared]
    if eos not in ids:
        raise VerifyError(f"eos mismatch: generation_config.json says {declared}, the tokenizer says {eos}")
    return int(eos)


def open_as_the_runtime_does(model_dir: Path) -> Model:
    """The folder opened by ovchat's own open_model, with the runtime properties its manifest records
    (f32 where the gate found bf16 drifting), so the check answers as users' runs will."""
    try:
        # No compiled-model cache: the work folder is renamed when it is published.
        return open_model(model_dir, DeviceConfig(cache_dir=""))
    except OvchatError as exc:
        raise VerifyError(str(exc)) from None


def check_chat(model: Model) -> dict[str, Any]:
    """A greedy chat answer must be non-empty and end at eos, not at the token limit."""
    history = ov_genai.ChatHistory()
    history.append({"role": "user", "content": CHAT_QUESTION})
    config = model.pipeline.get_generation_config()
    config.max_new_tokens = CHAT_MAX_NEW_TOKENS
    config.do_sample = False
    result = model.pipeline.generate(history, config)
    model.settle_memory()
    text = result.texts[0]
    generated = result.perf_metrics.get_num_generated_tokens()
    if not text.strip():
        raise VerifyError("the model answered a chat question with empty text")
    if generated >= CHAT_MAX_NEW_TOKENS:
        raise VerifyError(
            f"the chat answer ran to the {CHAT_MAX_NEW_TOKENS}-token limit instead of ending "
            "at eos: check the eos token and the chat template"
        )
    return {
        "question": CHAT_QUESTION,
        "answer": text,
        "generated_tokens": generated,
        "runtime": model.files.runtime,  # the manifest's properties the answer was made with
    }


def verify(model_dir: Path, chat: bool = True) -> dict[str, Any]:
    """Run every check on a folder whose manifest is written; raise VerifyError on the first failure."""
    tokenizer = ov_genai.Tokenizer(str(model_dir))
    report: dict[str, Any] = {
        "round_trip": check_round_trip(tokenizer),
        "eos_token_id": check_eos(model_dir, tokenizer),
        "chat_template": bool(tokenizer.chat_template),
    }
    report["chat"] = check_chat(open_as_the_runtime_does(model_dir)) if chat else "skipped"
    return report
