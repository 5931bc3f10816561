"""The rerank API (POST /v1/rerank, /v2/rerank, /rerank) in the shape Cohere defined and Jina,
llama-server and vLLM serve: a query and documents in; the documents' indexes and relevance scores
out, most relevant first, with the documents themselves if asked."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from ovchat.server.protocol.http_errors import HttpRefusal
from ovchat.server.protocol.openai.requests import Strict

MAX_DOCUMENTS = 1000  # Cohere's own limit


class DocumentText(BaseModel):
    text: str


class RerankRequest(Strict):
    model: str | None = None
    query: str
    documents: list[str | DocumentText] = Field(
        description="texts, or objects with a `text` (Cohere v1, Jina)"
    )
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False
    max_tokens_per_doc: int | None = Field(
        default=None,
        ge=1,
        description="Cohere v2: cut each document to this many tokens (asks for truncation)",
    )
    truncate: bool = Field(
        default=False,
        description="ovchat extension: cut query + document past the model's max length instead of refusing",
    )

    def texts(self) -> list[str]:
        if not self.documents:
            raise HttpRefusal("documents must not be empty", param="documents")
        if len(self.documents) > MAX_DOCUMENTS:
            raise HttpRefusal(
                f"documents has {len(self.documents)} items; at most {MAX_DOCUMENTS} per request",
                param="documents",
            )
        return [d if isinstance(d, str) else d.text for d in self.documents]

    @property
    def truncating(self) -> bool:
        return self.truncate or self.max_tokens_per_doc is not None


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: DocumentText | None = None


class RerankUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(BaseModel):
    id: str
    model: str
    results: list[RerankResult]
    usage: RerankUsage
    meta: dict[str, Any]


def rerank_response(
    model: str, results: list[tuple[int, float]], documents: list[str] | None, tokens: int
) -> RerankResponse:
    """`documents`: the request's texts when it asked for them back, else None."""
    return RerankResponse(
        id=str(uuid.uuid4()),
        model=model,
        results=[
            RerankResult(
                index=index,
                relevance_score=score,
                document=DocumentText(text=documents[index]) if documents is not None else None,
            )
            for index, score in results
        ],
        usage=RerankUsage(prompt_tokens=tokens, total_tokens=tokens),
        meta={"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    )
