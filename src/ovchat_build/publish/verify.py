"""Checks an exported model folder must pass before the build accepts it: the chat check opens it
through the runtime's own open_model, with the runtime properties its manifest records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openvino_genai as ov_genai

from ovchat import DeviceConfig, Embedder, Model, find_model, open_encoder, open_model
from ovchat.errors import OvchatError
from ovchat.model.contract import CHAT, Manifest

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


def verify_encoder(model_dir: Path) -> dict[str, Any]:
    """An embedding model or reranker opened as users will: one vector of the recorded dimension (of
    unit length if it is normalised), or one score per document in [0, 1]."""
    try:
        model = open_encoder(find_model(model_dir), DeviceConfig(cache_dir=""))
        if isinstance(model, Embedder):
            (vector,) = model.embed([CHAT_QUESTION]).vectors
            length = sum(x * x for x in vector) ** 0.5
            if len(vector) != model.dimension:
                raise VerifyError(
                    f"the vector has {len(vector)} dimensions, the manifest says {model.dimension}"
                )
            if model.normalized and abs(length - 1.0) > 1e-3:
                raise VerifyError(f"the model normalises, but a vector's length is {length:.4f}")
            return {"embedding": {"dimension": len(vector), "length": round(length, 6)}}
        ranked = model.rerank(CHAT_QUESTION, ["Paris.", "Bananas are yellow."]).results
    except OvchatError as exc:
        raise VerifyError(str(exc)) from None
    if len(ranked) != 2 or not all(0.0 <= score <= 1.0 for _, score in ranked):
        raise VerifyError(f"the reranker's scores are not one in [0, 1] per document: {ranked}")
    return {"rerank": {"scores": [round(score, 6) for _, score in ranked]}}


def verify(model_dir: Path, chat: bool = True) -> dict[str, Any]:
    """Run every check on a folder whose manifest is written; raise VerifyError on the first failure."""
    manifest = Manifest.read(model_dir)
    if manifest is not None and manifest.kind != CHAT:
        return verify_encoder(model_dir)
    tokenizer = ov_genai.Tokenizer(str(model_dir))
    report: dict[str, Any] = {
        "round_trip": check_round_trip(tokenizer),
        "eos_token_id": check_eos(model_dir, tokenizer),
        "chat_template": bool(tokenizer.chat_template),
    }
    report["chat"] = check_chat(open_as_the_runtime_does(model_dir)) if chat else "skipped"
    return report
