"""The encoder build's pure rules: what a checkpoint folder is (and what GenAI's embedding pipeline
cannot run, refused by name), the plan an encoder gets, and the gate's criteria on made-up figures:
drift in a vector or a score, a changed nearest neighbour, a swapped pair, each refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ovchat_build.errors import BuildError
from ovchat_build.export.plan import BuildRequest, encoder_plan
from ovchat_build.fidelity.encoders import embedding_figures, rerank_figures
from ovchat_build.source.kind import model_kind


def folder(tmp_path: Path, files: dict[str, object]) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    return tmp_path


BERT = {"architectures": ["BertModel"], "hidden_size": 384, "max_position_embeddings": 512}
MODULES = [
    {"path": "", "type": "sentence_transformers.models.Transformer"},
    {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]
MEAN = {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True}


def test_a_sentence_transformers_folder_is_an_embedding_model_with_its_pooling(tmp_path: Path) -> None:
    source = folder(
        tmp_path,
        {
            "config.json": BERT,
            "modules.json": MODULES,
            "1_Pooling/config.json": MEAN,
            "sentence_bert_config.json": {"max_seq_length": 256},
        },
    )
    assert model_kind(source) == (
        "embedding",
        {"pooling": "mean", "normalize": True, "max_length": 256, "dimension": 384},
    )


def test_a_cls_pooled_model_without_normalize_keeps_the_position_limit(tmp_path: Path) -> None:
    modules = MODULES[:2]
    cls = {"word_embedding_dimension": 384, "pooling_mode_cls_token": True}
    source = folder(
        tmp_path,
        {
            "config.json": BERT,
            "modules.json": modules,
            "1_Pooling/config.json": cls,
            "tokenizer_config.json": {"model_max_length": 10**30},
        },
    )
    assert model_kind(source)[1] == {
        "pooling": "cls",
        "normalize": False,
        "max_length": 512,
        "dimension": 384,
    }


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"modules.json": [*MODULES, {"path": "3_Dense", "type": "sentence_transformers.models.Dense"}]},
            "has a Dense module",
        ),
        ({"1_Pooling/config.json": {"pooling_mode_max_tokens": True}}, "pools by max_tokens"),
        (
            {"1_Pooling/config.json": {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True}},
            "a combination of poolings",
        ),
        ({"modules.json": MODULES[:1]}, "has no Pooling module"),
        (
            {
                "config.json": {
                    "architectures": ["BertForSequenceClassification"],
                    "id2label": {"0": "a", "1": "b", "2": "c"},
                },
                "modules.json": None,
            },
            "a classifier with 3 labels, not a reranker",
        ),
    ],
)
def test_what_genai_s_pipelines_cannot_run_is_refused_by_name(
    tmp_path: Path, files: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {"config.json": BERT, "modules.json": MODULES, "1_Pooling/config.json": MEAN}
    merged = {name: content for name, content in {**base, **files}.items() if content is not None}
    with pytest.raises(BuildError, match=message):
        model_kind(folder(tmp_path, merged))


def test_a_one_label_classifier_is_a_reranker_and_a_chat_model_is_chat(tmp_path: Path) -> None:
    ranker = {
        "architectures": ["BertForSequenceClassification"],
        "id2label": {"0": "LABEL_0"},
        "max_position_embeddings": 512,
    }
    assert model_kind(folder(tmp_path / "r", {"config.json": ranker})) == (
        "rerank",
        {"max_length": 512, "score": "sigmoid"},
    )
    assert model_kind(folder(tmp_path / "c", {"config.json": {"architectures": ["LlamaForCausalLM"]}})) == (
        "chat",
        {},
    )


def test_an_encoder_is_built_at_fp16_and_refuses_the_chat_profiles(tmp_path: Path) -> None:
    settings = {"max_length": 256}
    plan = encoder_plan(BuildRequest(None, tmp_path), "embedding", settings)
    assert plan.flags.cli_args() == [
        "--task",
        "feature-extraction",
        "--weight-format",
        "fp16",
        "--library",
        "transformers",
    ]
    assert plan.record()["kind"] == "embedding"
    int8 = encoder_plan(BuildRequest(None, tmp_path, overrides={"weight_format": "int8"}), "rerank", settings)
    assert int8.flags.task == "text-classification" and int8.flags.weight_format == "int8"
    with pytest.raises(BuildError, match="--profile is for chat models; this is an embedding model"):
        encoder_plan(BuildRequest(None, tmp_path, profile="speed"), "embedding", settings)
    with pytest.raises(BuildError, match="--group-size does not apply to rerank models"):
        encoder_plan(BuildRequest(None, tmp_path, overrides={"group_size": 64}), "rerank", settings)
    with pytest.raises(BuildError, match="one of fp16, int8, fp32"):
        encoder_plan(BuildRequest(None, tmp_path, overrides={"weight_format": "int4"}), "embedding", settings)


def vectors(seed: int, count: int = 30, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, size))


def test_the_embedding_gate_passes_a_faithful_ir_and_names_each_kind_of_drift() -> None:
    ref = vectors(0)
    figures, reason = embedding_figures(ref, ref * 1.01 + 1e-4, queries=5)  # scale does not matter
    assert reason is None and figures["top1_same"] == "5/5" and figures["top10_overlap"] == 1.0

    noisy = ref + np.random.default_rng(1).normal(scale=0.08, size=ref.shape)
    reason = embedding_figures(ref, noisy, queries=5)[1]
    assert reason is not None and "mean cosine" in reason

    one_off = ref.copy()
    one_off[3] = -one_off[3]  # one document's vector is wrong: its cosine, and the rankings
    reason = embedding_figures(ref, one_off, queries=5)[1]
    assert reason is not None and "min cosine" in reason


def test_the_rerank_gate_allows_ties_but_not_swaps_or_drift() -> None:
    ref = np.array([[0.9, 0.5, 0.1, 0.105]])
    assert rerank_figures(ref, ref + 0.004)[1] is None
    tie_swapped = np.array([[0.9, 0.5, 0.104, 0.101]])  # closer than the tolerance in the source
    assert rerank_figures(ref, tie_swapped)[1] is None
    figures, reason = rerank_figures(ref, np.array([[0.9, 0.1, 0.5, 0.105]]))
    assert reason is not None and "a score is 0.4 off" in reason and figures["order_swaps"] == 2
