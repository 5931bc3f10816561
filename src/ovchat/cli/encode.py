"""`ovchat embed` and `ovchat rerank`: vectors of texts, or texts ranked by relevance to a query,
from an embedding model or reranker loaded here or from a running `ovchat serve`.

Texts come as arguments, else one per line on stdin. Plain output is for pipes: `embed` prints one
JSON array per text, a line each; `rerank` one line per document, `score<TAB>index<TAB>text`. With
--json, one object with the model, the token count and the results."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ovchat.errors import OvchatError


def _texts(given: tuple[str, ...], what: str) -> list[str]:
    if given:
        return list(given)
    if sys.stdin.isatty():
        raise OvchatError(f"no {what}: give them as arguments or one per line on stdin")
    lines = [line.rstrip("\n") for line in sys.stdin]
    texts = [line for line in lines if line.strip()]
    if not texts:
        raise OvchatError(f"no {what} on stdin")
    return texts


def encoder_options(command: Any) -> Any:
    options = [
        click.option(
            "--model", "-m", metavar="PATH", help="Model folder or name (or the server's model name)."
        ),
        click.option("--device", "-d", envvar="OVCHAT_DEVICE", default="CPU", show_default=True),
        click.option("--threads", type=click.IntRange(min=1), envvar="OVCHAT_THREADS", help="CPU threads."),
        click.option("--precision", type=click.Choice(["f32", "bf16", "f16"]), help="Inference precision."),
        click.option(
            "--truncate", is_flag=True, help="Cut texts past the model's max length instead of failing."
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="One JSON object with model, tokens and results."
        ),
        click.option("--server", envvar="OVCHAT_SERVER", metavar="URL", help="Use a running `ovchat serve`."),
        click.option("--api-key", envvar="OVCHAT_API_KEY", metavar="KEY", help="The server's key."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _open(kind: str, options: dict[str, Any]) -> Any:
    from ovchat import DeviceConfig, open_embedder, open_reranker

    device = DeviceConfig(
        device=options["device"], threads=options["threads"], inference_precision=options["precision"]
    )
    if kind == "embedding":
        return open_embedder(options["model"], device)
    if options["model"] is None:
        raise OvchatError("rerank needs --model: a reranker's folder or name")
    return open_reranker(options["model"], device)


def _remote_only(options: dict[str, Any]) -> None:
    context = click.get_current_context()
    given = [
        f"--{name}"
        for name in ("device", "threads", "precision")
        if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        raise OvchatError(f"{', '.join(given)}: not with --server (the server's own device answers)")


@click.command()
@click.argument("texts", nargs=-1)
@encoder_options
def embed(texts: tuple[str, ...], **options: Any) -> None:
    """Print the vectors of TEXTS (or of each line on stdin)."""
    inputs = _texts(texts, "texts")
    if options["server"]:
        _remote_only(options)
        from ovchat.cli.remote import encode_server

        body: dict[str, Any] = {"input": inputs, "truncate": options["truncate"]}
        if options["model"]:
            body["model"] = options["model"]
        answer = encode_server(options["server"], "/v1/embeddings", body, options["api_key"])
        name, tokens = answer["model"], answer["usage"]["prompt_tokens"]
        vectors = [item["embedding"] for item in sorted(answer["data"], key=lambda item: item["index"])]
    else:
        model = _open("embedding", options)
        result = model.embed(inputs, truncate=options["truncate"], field="text")
        name, tokens, vectors = model.name, result.tokens, result.vectors
    if options["as_json"]:
        click.echo(json.dumps({"model": name, "tokens": tokens, "vectors": vectors}))
        return
    for vector in vectors:
        click.echo(json.dumps(vector))


@click.command()
@click.argument("query")
@click.argument("documents", nargs=-1)
@click.option("--top-n", type=click.IntRange(min=1), help="Only the N most relevant documents.")
@encoder_options
def rerank(query: str, documents: tuple[str, ...], top_n: int | None, **options: Any) -> None:
    """Rank DOCUMENTS (or each line on stdin) by their relevance to QUERY, most relevant first."""
    texts = _texts(documents, "documents")
    if options["server"]:
        _remote_only(options)
        from ovchat.cli.remote import encode_server

        body: dict[str, Any] = {"query": query, "documents": texts, "truncate": options["truncate"]}
        body |= {"model": options["model"]} if options["model"] else {}
        body |= {"top_n": top_n} if top_n else {}
        answer = encode_server(options["server"], "/v1/rerank", body, options["api_key"])
        name, tokens = answer["model"], answer["usage"]["prompt_tokens"]
        results = [(item["index"], item["relevance_score"]) for item in answer["results"]]
    else:
        model = _open("rerank", options)
        ranking = model.rerank(query, texts, top_n=top_n, truncate=options["truncate"])
        name, tokens, results = model.name, ranking.tokens, ranking.results
    if options["as_json"]:
        ranked = [{"index": i, "score": s, "text": texts[i]} for i, s in results]
        click.echo(json.dumps({"model": name, "tokens": tokens, "results": ranked}, ensure_ascii=False))
        return
    for index, score in results:
        click.echo(f"{score:.4f}\t{index}\t{texts[index]}")
