"""The encoder gate: an embedding model's vectors, or a reranker's scores, from the exported IR
(opened by the runtime's own open_encoder) against the source model in sentence-transformers
(torch, f32) on the shipped texts (texts/retrieval.json). Below the bar the build publishes nothing.

Embeddings: cosine of each text's two vectors, mean >= 0.999 and min >= 0.99; each query's nearest
document the same, and >= 0.95 of each query's ten nearest. Rerankers: every score within 0.01 of
the source's, and the same order wherever the source's scores differ by more than that (closer
pairs are ties). The IR runs at the CPU's default precision first and, if that fails, at f32; the
runtime then uses what passed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ovchat import DeviceConfig, Embedder, ModelFiles, Reranker, open_encoder
from ovchat.model.contract import EMBEDDING

TEXTS = Path(__file__).parent / "texts" / "retrieval.json"
MIN_MEAN_COSINE, MIN_COSINE = 0.999, 0.99
MIN_TOP10_OVERLAP = 0.95
MAX_SCORE_ERROR = 0.01


def texts() -> dict[str, list[str]]:
    data: dict[str, list[str]] = json.loads(TEXTS.read_text())
    return data


def reference(hf_dir: Path, kind: str, shipped: dict[str, list[str]]) -> np.ndarray:
    """The source model's vectors (documents, long texts, then queries) or scores (query by query)."""
    import torch
    from sentence_transformers import CrossEncoder, SentenceTransformer

    torch.manual_seed(0)
    if kind == EMBEDDING:
        model = SentenceTransformer(str(hf_dir), device="cpu", local_files_only=True)
        everything = shipped["documents"] + shipped["long"] + shipped["queries"]
        return np.asarray(model.encode(everything, convert_to_numpy=True), dtype=np.float64)
    ranker = CrossEncoder(str(hf_dir), device="cpu", local_files_only=True)
    documents = shipped["documents"] + shipped["long"]
    scores = [ranker.predict([(q, d) for d in documents]) for q in shipped["queries"]]
    return np.asarray(scores, dtype=np.float64)


def ir_side(files: ModelFiles, shipped: dict[str, list[str]], precision: str | None) -> np.ndarray:
    """The same from the IR, through the runtime (truncating as sentence-transformers does)."""
    model = open_encoder(files, DeviceConfig(cache_dir="", inference_precision=precision))
    documents = shipped["documents"] + shipped["long"]
    if isinstance(model, Embedder):
        everything = documents + shipped["queries"]
        return np.asarray(model.embed(everything, truncate=True).vectors, dtype=np.float64)
    assert isinstance(model, Reranker)
    rows = []
    for query in shipped["queries"]:
        scores = dict(model.rerank(query, documents, truncate=True).results)
        rows.append([scores[i] for i in range(len(documents))])
    return np.asarray(rows, dtype=np.float64)


def embedding_figures(ref: np.ndarray, ir: np.ndarray, queries: int) -> tuple[dict[str, Any], str | None]:
    cosines = (ref * ir).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(ir, axis=1))
    top1, overlap = [], []
    for q in range(len(ref) - queries, len(ref)):
        ranks = [_nearest(vectors[: len(ref) - queries], vectors[q]) for vectors in (ref, ir)]
        top1.append(ranks[0][0] == ranks[1][0])
        overlap.append(len(set(ranks[0][:10]) & set(ranks[1][:10])) / 10)
    figures = {
        "texts": len(ref),
        "mean_cosine": round(float(cosines.mean()), 6),
        "min_cosine": round(float(cosines.min()), 6),
        "top1_same": f"{sum(top1)}/{len(top1)}",
        "top10_overlap": round(float(np.mean(overlap)), 4),
    }
    reasons = [
        f"mean cosine {figures['mean_cosine']} < {MIN_MEAN_COSINE}"
        if cosines.mean() < MIN_MEAN_COSINE
        else "",
        f"min cosine {figures['min_cosine']} < {MIN_COSINE}" if cosines.min() < MIN_COSINE else "",
        f"nearest document differs for {len(top1) - sum(top1)} queries" if not all(top1) else "",
        f"top-10 overlap {figures['top10_overlap']} < {MIN_TOP10_OVERLAP}"
        if np.mean(overlap) < MIN_TOP10_OVERLAP
        else "",
    ]
    return figures, "; ".join(r for r in reasons if r) or None


def _nearest(documents: np.ndarray, query: np.ndarray) -> list[int]:
    similarity = documents @ query / (np.linalg.norm(documents, axis=1) * np.linalg.norm(query))
    return [int(i) for i in np.argsort(-similarity, kind="stable")]


def rerank_figures(ref: np.ndarray, ir: np.ndarray) -> tuple[dict[str, Any], str | None]:
    error = np.abs(ref - ir)
    swapped = 0
    for ref_row, ir_row in zip(ref, ir, strict=True):
        apart = np.abs(ref_row[:, None] - ref_row[None, :]) > MAX_SCORE_ERROR
        flipped = np.sign(ref_row[:, None] - ref_row[None, :]) != np.sign(ir_row[:, None] - ir_row[None, :])
        swapped += int((apart & flipped).sum() // 2)
    figures = {
        "pairs": int(ref.size),
        "max_score_error": round(float(error.max()), 6),
        "mean_score_error": round(float(error.mean()), 6),
        "order_swaps": swapped,
        "score_spread": round(float(ref.std()), 4),
    }
    reasons = [
        f"a score is {figures['max_score_error']} off (> {MAX_SCORE_ERROR})"
        if error.max() > MAX_SCORE_ERROR
        else "",
        f"{swapped} pairs of documents change order" if swapped else "",
    ]
    return figures, "; ".join(r for r in reasons if r) or None


def encoder_gate(hf_dir: Path, files: ModelFiles) -> tuple[dict[str, Any], str | None, dict[str, str]]:
    """The figures, why the gate refuses the IR in `files` (or None), and the runtime properties they
    hold for."""
    shipped, kind = texts(), files.kind
    ref = reference(hf_dir, kind, shipped)
    rejected: str | None = None
    figures: dict[str, Any] = {}
    for precision in (None, "f32"):
        ir = ir_side(files, shipped, precision)
        if kind == EMBEDDING:
            figures, reason = embedding_figures(ref, ir, len(shipped["queries"]))
        else:
            figures, reason = rerank_figures(ref, ir)
        figures["precision"] = precision or "default"
        print(f"[gate] {kind} vs sentence-transformers (f32), {figures['precision']} precision: {figures}")
        if reason is None:
            if precision:
                figures["default_precision_rejected"] = rejected
            return figures, None, {"INFERENCE_PRECISION_HINT": precision} if precision else {}
        rejected = rejected or reason
    return figures, rejected, {}
