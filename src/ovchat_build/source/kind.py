"""What a checkpoint folder is: a chat model, a sentence-transformers embedding model, or a reranker
(a cross-encoder: sequence classification with one score), and an encoder's settings as its own
files say them. GenAI's pipelines apply pooling and normalisation themselves, so the build records
them in the manifest and refuses what those pipelines cannot do, rather than serve other vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ovchat.model.contract import CHAT, EMBEDDING, RERANK
from ovchat_build.errors import BuildError

# sentence-transformers' Pooling config key -> GenAI's PoolingType name.
POOLING = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "last_token",
}
UNSUPPORTED_POOLING = (
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
)
ST = "sentence_transformers.models."


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BuildError(f"{path.name} is unreadable ({exc}): download the checkpoint again") from None


def model_kind(folder: Path) -> tuple[str, dict[str, Any]]:
    """The folder's kind and, for an encoder, its settings (ovchat.model.contract.Manifest.encoder)."""
    config = _json(folder / "config.json") or {}
    if (folder / "modules.json").is_file():
        return EMBEDDING, embedding_settings(folder, config)
    architectures = config.get("architectures") or []
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
        if labels != 1:
            raise BuildError(
                f"{folder.name} is a classifier with {labels} labels, not a reranker (one relevance "
                "score per query and text): ovchat builds chat, embedding and reranker models"
            )
        return RERANK, {"max_length": _max_length(folder, config), "score": "sigmoid"}
    return CHAT, {}


def embedding_settings(folder: Path, config: dict[str, Any]) -> dict[str, Any]:
    """A sentence-transformers folder's pipeline (modules.json) as GenAI's embedding pipeline runs it:
    the transformer, its pooling, and an optional Normalize; anything else is refused by name."""
    modules = _json(folder / "modules.json") or []
    types = [str(module.get("type", "")).removeprefix(ST) for module in modules]
    extra = [name for name in types if name not in ("Transformer", "Pooling", "Normalize")]
    if extra:
        raise BuildError(
            f"{folder.name}'s sentence-transformers pipeline has a {extra[0]} module, which OpenVINO "
            "GenAI's embedding pipeline cannot run (it pools and normalises only)"
        )
    pooling_module = next((m for m in modules if str(m.get("type", "")).endswith("Pooling")), None)
    if pooling_module is None:
        raise BuildError(f"{folder.name}'s modules.json has no Pooling module: not an embedding model")
    pooling_config = _json(folder / pooling_module.get("path", "") / "config.json") or {}
    chosen = [POOLING[key] for key in POOLING if pooling_config.get(key)]
    refused = [key for key in UNSUPPORTED_POOLING if pooling_config.get(key)]
    if refused or len(chosen) != 1:
        what = refused[0].removeprefix("pooling_mode_") if refused else "a combination of poolings"
        raise BuildError(
            f"{folder.name} pools by {what}, which OpenVINO GenAI's embedding pipeline cannot do"
        )
    return {
        "pooling": chosen[0],
        "normalize": "Normalize" in types,
        "max_length": _max_length(folder, config),
        "dimension": int(pooling_config.get("word_embedding_dimension") or config["hidden_size"]),
    }


def _max_length(folder: Path, config: dict[str, Any]) -> int:
    """The most tokens one input may have: sentence-transformers' max_seq_length, else the
    tokenizer's model_max_length, never past the position embeddings."""
    limits = [
        (_json(folder / "sentence_bert_config.json") or {}).get("max_seq_length"),
        (_json(folder / "tokenizer_config.json") or {}).get("model_max_length"),
    ]
    positions = int(config.get("max_position_embeddings") or 512)
    given = next((int(n) for n in limits if isinstance(n, int) and 0 < n < 10**9), positions)
    return min(given, positions)
