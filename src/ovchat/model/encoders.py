"""Embedding models and rerankers: GenAI's TextEmbeddingPipeline and TextRerankPipeline, set up as
the model's build recorded (pooling, normalisation, max length) and run with the CPU properties its
gate verified.

An input longer than the model takes is refused with its length and the limit, unless the caller
asks for truncation: a silently cut text gives a vector of another text."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from typing import Any

import openvino_genai as ov_genai

from ovchat.errors import ContextError, ModelError, RequestRejected, plain_message
from ovchat.model.contract import DEFAULT_EMBEDDER_NAME, EMBEDDING, KIND_WORDS, RERANK
from ovchat.model.device import DeviceConfig, check_device
from ovchat.model.files import ModelFiles, find_model

POOLING = {
    "mean": ov_genai.TextEmbeddingPipeline.PoolingType.MEAN,
    "cls": ov_genai.TextEmbeddingPipeline.PoolingType.CLS,
    "last_token": ov_genai.TextEmbeddingPipeline.PoolingType.LAST_TOKEN,
}


def max_length(files: ModelFiles) -> int:
    """The most tokens one input may have (a reranker: the query and the text together)."""
    return int(files.encoder.get("max_length") or files.context_length or 512)


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    tokens: int  # the inputs' tokens, special tokens included (what the model ran)


@dataclass(frozen=True)
class Ranking:
    results: list[tuple[int, float]]  # (document index, relevance score), most relevant first
    tokens: int


class Encoder:
    """An opened embedding model or reranker: its pipeline, tokenizer and limits."""

    kind = ""

    def __init__(self, files: ModelFiles, pipeline: Any, device: DeviceConfig, load_seconds: float) -> None:
        self.files, self.pipeline, self.device, self.load_seconds = files, pipeline, device, load_seconds
        self.tokenizer = ov_genai.Tokenizer(str(files.path))
        self.max_length = max_length(files)

    @property
    def name(self) -> str:
        return self.files.name

    def lengths(self, texts: list[str]) -> list[int]:
        """Each text's tokens as the model reads it, special tokens included."""
        return self._lengths(texts, special=True)

    def _lengths(self, texts: list[str], special: bool) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer.encode(texts, add_special_tokens=special)
        return [int(row.sum()) for row in encoded.attention_mask.data]

    def counted(self, lengths: list[int], truncate: bool, field: str) -> int:
        """The tokens the model runs for inputs of `lengths`: refused past max_length unless `truncate`."""
        too_long = [(i, n) for i, n in enumerate(lengths) if n > self.max_length]
        if too_long and not truncate:
            index, n = too_long[0]
            where = f"{field}[{index}]" if len(lengths) > 1 else field
            raise ContextError(
                f"{where} has {n} tokens; {self.name} reads at most {self.max_length}: shorten it, "
                "or ask for truncation (truncate)"
            )
        return sum(min(n, self.max_length) for n in lengths)

    def ids_to_text(self, rows: list[list[int]]) -> list[str]:
        """Token-id inputs (this model's own vocabulary) as the texts they are: kept only when the text
        reads back as the same ids, so the vector is the one those ids would give."""
        texts = []
        for index, ids in enumerate(rows):
            outside = [i for i in ids if not 0 <= i < self.vocabulary_size]
            if outside:
                raise RequestRejected(f"input[{index}]: {outside[0]} is not a token of {self.name}", "input")
            text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
            back = self.tokenizer.encode(text, add_special_tokens=False).input_ids.data[0].tolist()
            if back != [i for i in ids if i not in self.special_ids]:
                raise RequestRejected(
                    f"input[{index}]: these token ids do not read back as the same ids with {self.name}'s "
                    "tokenizer (ids are the model's own vocabulary): send the text instead",
                    "input",
                )
            texts.append(text)
        return texts

    @functools.cached_property
    def vocabulary_size(self) -> int:
        return len(self.tokenizer.get_vocab_vector())

    @functools.cached_property
    def special_ids(self) -> list[int]:
        """The special tokens the tokenizer adds to one text ([CLS] and [SEP] for BERT)."""
        return [int(i) for i in self.tokenizer.encode("", add_special_tokens=True).input_ids.data[0]]


class Embedder(Encoder):
    """Text in, one vector per text out (`embed`)."""

    kind = EMBEDDING

    @property
    def dimension(self) -> int:
        return int(self.files.encoder.get("dimension") or 0)

    @property
    def normalized(self) -> bool:
        return bool(self.files.encoder.get("normalize"))

    def embed(self, texts: list[str], *, truncate: bool = False, field: str = "input") -> Embeddings:
        """One vector per text (an input past max_length refused unless `truncate`)."""
        tokens = self.counted(self.lengths(texts), truncate, field)
        return Embeddings(self.vectors(texts), tokens)

    def vectors(self, texts: list[str]) -> list[list[float]]:
        """The pipeline's vectors of `texts`, as they are (their lengths checked by the caller)."""
        if not texts:
            return []
        try:
            vectors = self.pipeline.embed_documents(texts)
        except RuntimeError as exc:
            raise ModelError(f"{self.name} could not embed the input: {plain_message(exc)}") from None
        return [list(map(float, v)) for v in vectors]


class Reranker(Encoder):
    """A query and texts in, the texts' relevance scores out, most relevant first (`rerank`)."""

    kind = RERANK

    def pair_lengths(self, query: str, documents: list[str]) -> list[int]:
        """The tokens of the query and each document read together ([CLS] query [SEP] text [SEP]:
        the special tokens of one text, twice, less one). A query or document of no tokens of its own
        is refused: openvino-tokenizers 2026.4's pair joining corrupts the heap on empty segments
        (measured: "corrupted size vs. prev_size", the process gone), so it never reaches it."""
        own = self._lengths([query, *documents], special=False)
        if own[0] == 0:
            raise RequestRejected(f"query has no text {self.name} reads: give the text to rank by", "query")
        empty = [i for i, n in enumerate(own[1:]) if n == 0]
        if empty:
            where = f"documents[{empty[0]}]"
            raise RequestRejected(f"{where} has no text {self.name} reads: drop it", "documents")
        specials = 2 * len(self.special_ids) - 1
        return [own[0] + n + specials for n in own[1:]]

    def rerank(
        self, query: str, documents: list[str], *, top_n: int | None = None, truncate: bool = False
    ) -> Ranking:
        tokens = self.counted(self.pair_lengths(query, documents), truncate, "documents")
        if not documents:
            return Ranking([], 0)
        try:
            ranked = self.pipeline.rerank(query, documents)
        except RuntimeError as exc:
            raise ModelError(f"{self.name} could not rank the documents: {plain_message(exc)}") from None
        results = [(int(index), float(score)) for index, score in ranked]
        return Ranking(results[: top_n if top_n is not None else len(results)], tokens)


def shorten(files: ModelFiles, vectors: list[list[float]], dimensions: int) -> list[list[float]]:
    """Vectors cut to `dimensions`, where the model was trained for it (Matryoshka: the manifest's
    `matryoshka` lists the sizes); renormalised if the model normalises. Else the request's error."""
    native = int(files.encoder.get("dimension") or 0)
    if dimensions == native:
        return vectors
    allowed = [int(n) for n in files.encoder.get("matryoshka") or []]
    if dimensions not in allowed:
        offer = f"it was trained to be cut to {allowed}" if allowed else "it was not trained to be cut"
        raise RequestRejected(
            f"dimensions: {files.name} makes {native}-dimensional vectors and {offer}", "dimensions"
        )
    cut = [v[:dimensions] for v in vectors]
    if files.encoder.get("normalize"):
        cut = [[x / (sum(y * y for y in v) ** 0.5 or 1.0) for x in v] for v in cut]
    return cut


def open_encoder(
    spec: str | os.PathLike[str] | ModelFiles | None, device: DeviceConfig | None = None
) -> Embedder | Reranker:
    """Load an embedding model or a reranker (whichever the folder is) on a device."""
    device = device or DeviceConfig()
    files = spec if isinstance(spec, ModelFiles) else find_model(spec)
    if files.kind not in (EMBEDDING, RERANK):
        raise ModelError(f"{files.name} is {KIND_WORDS[files.kind]}, not an embedding model or a reranker")
    props = device.properties(files.runtime, paged=False)
    props.pop("ATTENTION_BACKEND", None)
    limit = max_length(files)
    started = time.perf_counter()
    try:
        if files.kind == EMBEDDING:
            config = ov_genai.TextEmbeddingPipeline.Config()
            config.pooling_type = POOLING[str(files.encoder.get("pooling", "mean"))]
            config.normalize = bool(files.encoder.get("normalize"))
            config.max_length = limit
            pipeline: Any = ov_genai.TextEmbeddingPipeline(str(files.path), device.device, config, **props)
        else:
            rerank_config = ov_genai.TextRerankPipeline.Config()
            rerank_config.top_n = 1 << 30  # every document, in order; callers cut
            rerank_config.max_length = limit
            pipeline = ov_genai.TextRerankPipeline(str(files.path), device.device, rerank_config, **props)
    except RuntimeError as exc:
        check_device(device)
        raise ModelError(f"cannot load the model at {files.path}: {plain_message(exc)}") from None
    seconds = time.perf_counter() - started
    kind = Embedder if files.kind == EMBEDDING else Reranker
    return kind(files, pipeline, device, seconds)


def open_embedder(
    spec: str | os.PathLike[str] | ModelFiles | None = None, device: DeviceConfig | None = None
) -> Embedder:
    """Load an embedding model (`spec` as find_model takes it; None: the default embedding model)."""
    encoder = open_encoder(DEFAULT_EMBEDDER_NAME if spec is None else spec, device)
    if not isinstance(encoder, Embedder):
        raise ModelError(f"{encoder.name} is a reranker, not an embedding model")
    return encoder


def open_reranker(spec: str | os.PathLike[str] | ModelFiles, device: DeviceConfig | None = None) -> Reranker:
    """Load a reranker (`spec` as find_model takes it)."""
    encoder = open_encoder(spec, device)
    if not isinstance(encoder, Reranker):
        raise ModelError(f"{encoder.name} is an embedding model, not a reranker")
    return encoder
