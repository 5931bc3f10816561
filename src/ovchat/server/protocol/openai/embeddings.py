"""OpenAI's embeddings API (POST /v1/embeddings): the request as the openai SDK, LangChain and
llama-index send it, and the list of vectors it answers (floats, or base64 of little-endian float32,
which the openai SDK asks for by default)."""

from __future__ import annotations

import base64
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from ovchat.server.protocol.http_errors import HttpRefusal
from ovchat.server.protocol.openai.requests import Strict

MAX_INPUTS = 2048  # OpenAI's own limit on one request's inputs


class EmbeddingRequest(Strict):
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="a text, texts, or token ids of this model's own vocabulary (one list, or a list each)"
    )
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(
        default=None, ge=1, description="only where the model was trained to be cut (Matryoshka)"
    )
    user: str | None = None
    truncate: bool = Field(
        default=False,
        description="ovchat extension: cut inputs past the model's max length instead of refusing them",
    )

    def parts(self) -> tuple[list[str], list[list[int]]]:
        """The texts, or the token-id lists (one of the two is empty)."""
        given = self.input
        if isinstance(given, str):
            return [given], []
        if not given:
            raise HttpRefusal("input must not be empty", param="input")
        if len(given) > MAX_INPUTS:
            raise HttpRefusal(
                f"input has {len(given)} items; at most {MAX_INPUTS} per request", param="input"
            )
        if all(isinstance(item, str) for item in given):
            return [str(item) for item in given], []
        numbers = [item for item in given if isinstance(item, int)]
        if len(numbers) == len(given):
            return [], [numbers]
        rows = [list(item) for item in given if isinstance(item, list)]
        if len(rows) != len(given) or any(not row for row in rows):
            raise HttpRefusal("input: give texts, or non-empty lists of token ids, not a mix", param="input")
        return [], [[int(i) for i in row] for row in rows]


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


def embedding_list(model: str, vectors: list[list[float]], tokens: int, encoding: str) -> EmbeddingList:
    def encode(vector: list[float]) -> list[float] | str:
        if encoding == "float":
            return vector
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")

    return EmbeddingList(
        data=[Embedding(index=i, embedding=encode(v)) for i, v in enumerate(vectors)],
        model=model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )
