"""Retrieval-augmented answers against one `ovchat serve`: embed a document set, retrieve the nearest
documents to a question, rerank them, and answer from the best one: three models, one endpoint.

    ovchat serve --model smollm2-135m-instruct-int4 --model all-minilm-l6-v2-fp16 \
                 --model reranker=path/to/a-reranker-folder
    python docs/examples/rag.py "How many strings does a violin have?"

The openai SDK speaks to /v1/embeddings and /v1/chat/completions; /v1/rerank takes Cohere's shape
(Cohere's own SDK works too: cohere.ClientV2(base_url=...)). Environment: OVCHAT_URL (default
http://127.0.0.1:8000), OVCHAT_API_KEY, and the three model names (CHAT_MODEL, EMBED_MODEL,
RERANK_MODEL; without a reranker, RERANK_MODEL="" skips the rerank step).
"""

import json
import os
import sys
import urllib.request

import numpy as np
from openai import OpenAI

URL = os.environ.get("OVCHAT_URL", "http://127.0.0.1:8000")
KEY = os.environ.get("OVCHAT_API_KEY") or "unused"
CHAT = os.environ.get("CHAT_MODEL", "smollm2-135m-instruct-int4")
EMBED = os.environ.get("EMBED_MODEL", "all-minilm-l6-v2-fp16")
RERANK = os.environ.get("RERANK_MODEL", "reranker")
DOCUMENTS = [
    "Paris is the capital and most populous city of France.",
    "The violin has four strings tuned in perfect fifths: G, D, A and E.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "Marathon runners cover 42.195 kilometres.",
    "Bees tell each other where flowers are with a waggle dance.",
    "A cello also has four strings, an octave below a viola's.",
]


def rerank(query: str, documents: list[str]) -> list[int]:
    """The documents' indexes, most relevant first (POST /v1/rerank)."""
    body = json.dumps({"model": RERANK, "query": query, "documents": documents}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    request = urllib.request.Request(f"{URL}/v1/rerank", body, headers)
    with urllib.request.urlopen(request) as response:
        return [result["index"] for result in json.load(response)["results"]]


def main(question: str) -> None:
    client = OpenAI(base_url=f"{URL}/v1", api_key=KEY)
    # 1. Embed the documents once (a real app keeps these vectors in its index) and the question.
    vectors = np.array([d.embedding for d in client.embeddings.create(model=EMBED, input=DOCUMENTS).data])
    query = np.array(client.embeddings.create(model=EMBED, input=question).data[0].embedding)
    # 2. Retrieve: the vectors are normalised, so the dot product is the cosine.
    nearest = [int(i) for i in np.argsort(-(vectors @ query))[:3]]
    # 3. Rerank the candidates with a cross-encoder, which reads the question and each text together.
    if RERANK:
        nearest = [nearest[i] for i in rerank(question, [DOCUMENTS[i] for i in nearest])]
    context = DOCUMENTS[nearest[0]]
    print(f"context: {context}")
    # 4. Answer from the context.
    reply = client.chat.completions.create(
        model=CHAT,
        messages=[
            {"role": "system", "content": f"Answer in one sentence from this text: {context}"},
            {"role": "user", "content": question},
        ],
        max_tokens=64,
        temperature=0,
    )
    print(f"answer: {reply.choices[0].message.content}")


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "How many strings does a violin have?")
