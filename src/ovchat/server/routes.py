"""The HTTP API's routes, declared once: the app mounts this router, and the gate reads its routes
(which paths metrics name, which ones need no API key: those that document no security)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ovchat.model.contract import CHAT, EMBEDDING, RERANK
from ovchat.model.encoders import shorten
from ovchat.server.metrics import CONTENT_TYPE, ServerMetrics
from ovchat.server.models import ServedModels
from ovchat.server.protocol.http_errors import ErrorBody
from ovchat.server.protocol.llama_server import (
    ApplyTemplateRequest,
    Detokenized,
    DetokenizeRequest,
    TemplatedPrompt,
    TokenizeRequest,
    Tokens,
    with_pieces,
)
from ovchat.server.protocol.openai.embeddings import EmbeddingList, EmbeddingRequest, embedding_list
from ovchat.server.protocol.openai.requests import ChatRequest, CompletionRequest
from ovchat.server.protocol.openai.responses import (
    ChatCompletion,
    Health,
    ModelCard,
    ModelList,
    ModelState,
    TextCompletion,
)
from ovchat.server.protocol.openai.writer import ChatWriter, CompletionWriter
from ovchat.server.protocol.rerank import RerankRequest, RerankResponse, rerank_response
from ovchat.server.respond import respond
from ovchat.server.settings import ServerSettings

# Each server-sent event carries one JSON chunk as its data, the last one the text [DONE].
SSE = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
        }
    }
}
# Every 503 says when to come back: clients and balancers that honour it retry instead of failing.
RETRY = {"Retry-After": "1"}
RETRY_DOC = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in (
        (400, "invalid request"),
        (401, "missing or wrong API key"),
        (404, "no such model: the message names the models served"),
        (409, "the model is busy (unload while requests use it)"),
        (413, "request body too large"),
        (503, "not ready, busy or shutting down: retry"),
    )
}
ERRORS[503]["headers"] = RETRY_DOC
# The Gate asks for the key on these routes when the server has one (and on every undeclared path).
PROTECTED: dict[str, Any] = {"security": [{"bearer": []}]}


@dataclass(frozen=True)
class Replica:
    """What the routes answer from: this server's models, settings and metrics."""

    models: ServedModels
    settings: ServerSettings
    metrics: ServerMetrics

    def ready(self) -> bool:
        return self.models.ready()


async def current_replica(request: Request) -> Replica:
    """The app's Replica (async: FastAPI would run a plain function on its thread pool)."""
    replica: Replica = request.app.state.replica
    return replica


ReplicaOf = Annotated[Replica, Depends(current_replica)]
API = APIRouter()


@API.post(
    "/v1/chat/completions",
    response_model=None,
    openapi_extra=PROTECTED,
    responses={200: {"model": ChatCompletion, "content": SSE}, **ERRORS},
)
async def chat_completions(body: ChatRequest, request: Request, replica: ReplicaOf) -> Any:
    """A chat answer (stream: server-sent events of chat.completion.chunk)."""
    return await generate(body, request, replica, chat=True)


@API.post(
    "/v1/completions",
    response_model=None,
    openapi_extra=PROTECTED,
    responses={200: {"model": TextCompletion, "content": SSE}, **ERRORS},
)
async def completions(body: CompletionRequest, request: Request, replica: ReplicaOf) -> Any:
    """A raw continuation of the prompt, without the chat template."""
    return await generate(body, request, replica, chat=False)


async def generate(
    body: ChatRequest | CompletionRequest, request: Request, replica: Replica, *, chat: bool
) -> Any:
    """Both generation routes: the request to its model's engine, the answer as JSON or SSE."""
    wanted = body.generation_request()
    lease = await replica.models.chat_lease(body.model)
    kind = ChatWriter if chat else CompletionWriter
    writer = kind(lease.name, body.include_usage, wanted.logprobs)
    receive = request.receive
    return await respond(lease.item, wanted, writer, receive, body.stream, body.refine, lease.release)


@API.post("/v1/embeddings", response_model=EmbeddingList, openapi_extra=PROTECTED, responses=ERRORS)
async def embeddings(body: EmbeddingRequest, replica: ReplicaOf) -> EmbeddingList:
    """OpenAI's embeddings: one vector per input (texts, or token ids of the model's vocabulary);
    concurrent requests run as one batch."""
    texts, id_rows = body.parts()
    lease = await replica.models.encoder_lease(body.model, EMBEDDING)
    with lease as runner:
        dimensions = body.dimensions or int(runner.model.encoder.get("dimension") or 0)
        shorten(runner.model, [], dimensions)  # refused before any work
        if id_rows:
            texts = await runner.on_model(lambda model: model.ids_to_text(id_rows))
        answer = await runner.embed(texts, body.truncate)
        vectors = shorten(runner.model, answer.vectors, dimensions)
        return embedding_list(lease.name, vectors, answer.tokens, body.encoding_format)


@API.post("/v1/rerank", response_model=RerankResponse, openapi_extra=PROTECTED, responses=ERRORS)
@API.post("/v2/rerank", response_model=RerankResponse, openapi_extra=PROTECTED, responses=ERRORS)
@API.post("/rerank", response_model=RerankResponse, openapi_extra=PROTECTED, responses=ERRORS)
async def rerank(body: RerankRequest, replica: ReplicaOf) -> RerankResponse:
    """Cohere's rerank (as Jina, llama-server and vLLM serve it): the documents' relevance to the
    query, most relevant first (`top_n` of them)."""
    texts = body.texts()
    lease = await replica.models.encoder_lease(body.model, RERANK)
    with lease as runner:
        ranked = await runner.rerank(body.query, texts, body.top_n, body.truncating)
        documents = texts if body.return_documents else None
        return rerank_response(lease.name, ranked.results, documents, ranked.tokens)


@API.post("/tokenize", response_model=Tokens, openapi_extra=PROTECTED, responses=ERRORS)
async def tokenize(body: TokenizeRequest, replica: ReplicaOf) -> Tokens:
    """llama-server's /tokenize: the ids of `content` as the model counts them (with_pieces: each
    id's text, or its bytes when it holds part of a character)."""
    body.check()
    with await replica.models.chat_lease(body.model) as engine:
        ids = await engine.tokenize(body.content, body.add_special)
        return with_pieces(ids, await engine.pieces(ids)) if body.with_pieces else Tokens(tokens=ids)


@API.post("/detokenize", response_model=Detokenized, openapi_extra=PROTECTED, responses=ERRORS)
async def detokenize(body: DetokenizeRequest, replica: ReplicaOf) -> Detokenized:
    """llama-server's /detokenize: the text of `tokens`."""
    with await replica.models.chat_lease(body.model) as engine:
        return Detokenized(content=await engine.detokenize(body.tokens))


@API.post("/apply-template", response_model=TemplatedPrompt, openapi_extra=PROTECTED, responses=ERRORS)
async def apply_template(body: ApplyTemplateRequest, replica: ReplicaOf) -> TemplatedPrompt:
    """llama-server's /apply-template: the prompt the chat template makes of `messages` (and `tools`)."""
    with await replica.models.chat_lease(body.model) as engine:
        return TemplatedPrompt(prompt=await engine.render(*body.arguments()))


@API.get("/v1/models", response_model=ModelList, openapi_extra=PROTECTED, responses={401: ERRORS[401]})
async def models(replica: ReplicaOf) -> ModelList:
    """Every model served, with its state (loaded, loading, unloaded, failed) and what it can do."""
    return ModelList(
        object="list", data=[card(replica.models, view.name) for view in replica.models.models()]
    )


def card(served: ServedModels, name: str) -> ModelCard:
    view = next(view for view in served.models() if view.name == name)
    engine = served.engine(name)
    facts = served.loader.facts.get(name)
    files = served.files[name]
    limits = [n for n in (files.context_length, served.loader.config.kv_cache_tokens) if n]
    tool_format = facts.tool_format if facts else None
    if files.kind != CHAT:
        limits = [files.context_length] if files.context_length else []
    return ModelCard(
        id=name,
        object="model",
        created=0,
        owned_by="ovchat",
        kind=files.kind,  # type: ignore[arg-type]
        state=ModelState(served.health()[2][name]),
        error=view.error,
        context_length=engine.context_length if engine else (min(limits) if limits else None),
        tool_calls=tool_format.value if tool_format else None,  # type: ignore[arg-type]
        reasoning=facts.thinks if facts else None,
    )


@API.post(
    "/v1/models/{name}/load",
    response_model=ModelCard,
    openapi_extra=PROTECTED,
    responses={k: v for k, v in ERRORS.items() if k in (401, 404, 503)},
)
async def load_model(name: str, replica: ReplicaOf) -> ModelCard:
    """Load a model now (unloading idle ones to make room), or try again after a failed load."""
    served = replica.models
    await served.load(served.resolve(name, exact=True))
    return card(served, name)


@API.post(
    "/v1/models/{name}/unload",
    response_model=ModelCard,
    openapi_extra=PROTECTED,
    responses={k: v for k, v in ERRORS.items() if k in (401, 404, 409)},
)
async def unload_model(name: str, replica: ReplicaOf) -> ModelCard:
    """Unload an idle model now; 409 while requests use it (it is not unloaded behind them)."""
    served = replica.models
    await served.unload(served.resolve(name, exact=True))
    return card(served, name)


@API.get("/health", response_model=Health, responses={503: {"model": Health, "headers": RETRY_DOC}})
async def health(replica: ReplicaOf) -> JSONResponse:
    """Readiness: 200 while the server takes requests (its preloaded models loaded); 503 while
    loading, recovering or draining. `models` gives each model's state."""
    served = replica.models
    ready, status, states = served.health()
    model = served.default if served.single else None
    by_model = {name: ModelState(state) for name, state in states.items()}
    answer = Health(status=status, model=model, models=by_model).model_dump(mode="json", exclude_none=True)
    return JSONResponse(answer, status_code=200 if ready else 503, headers=None if ready else RETRY)


@API.get("/live", response_model=Health, responses={503: {"model": Health, "headers": RETRY_DOC}})
async def live(replica: ReplicaOf) -> JSONResponse:
    """Liveness: 200 unless the engine gave up (then the process is on its way out)."""
    if replica.models.alive():
        return JSONResponse(Health(status="alive").model_dump(exclude_none=True))
    return JSONResponse(Health(status="failed").model_dump(exclude_none=True), status_code=503, headers=RETRY)


@API.get(
    "/metrics",
    response_class=Response,
    openapi_extra=PROTECTED,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, 401: ERRORS[401]},
)
async def prometheus(replica: ReplicaOf) -> Response:
    return Response(replica.metrics.render(), media_type=CONTENT_TYPE)
