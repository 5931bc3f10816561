"""The HTTP API's routes, declared once: the app mounts this router, and the gate reads its routes
(which paths metrics name, which ones need no API key: those that document no security)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ovchat.server.engine.engine import Engine
from ovchat.server.metrics import CONTENT_TYPE, ServerMetrics
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
from ovchat.server.protocol.openai.requests import ChatRequest, CompletionRequest
from ovchat.server.protocol.openai.responses import (
    ChatCompletion,
    Health,
    ModelCard,
    ModelList,
    TextCompletion,
)
from ovchat.server.protocol.openai.writer import ChatWriter, CompletionWriter
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
        (413, "request body too large"),
        (503, "not ready, busy or shutting down: retry"),
    )
}
ERRORS[503]["headers"] = RETRY_DOC
# The Gate asks for the key on these routes when the server has one (and on every undeclared path).
PROTECTED: dict[str, Any] = {"security": [{"bearer": []}]}


@dataclass(frozen=True)
class Replica:
    """What the routes answer from: this server's engine, settings and metrics."""

    engine: Engine
    settings: ServerSettings
    metrics: ServerMetrics

    def ready(self) -> bool:
        return self.engine.lifecycle.health().ready


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
    """Both generation routes: the request to the engine, the answer as JSON or SSE."""
    wanted = body.generation_request()
    kind = ChatWriter if chat else CompletionWriter
    writer = kind(replica.settings.model_name, body.include_usage, wanted.logprobs)
    return await respond(replica.engine, wanted, writer, request.receive, body.stream, body.refine)


@API.post("/tokenize", response_model=Tokens, openapi_extra=PROTECTED, responses=ERRORS)
async def tokenize(body: TokenizeRequest, replica: ReplicaOf) -> Tokens:
    """llama-server's /tokenize: the ids of `content` as the model counts them (with_pieces: each
    id's text, or its bytes when it holds part of a character)."""
    body.check()
    ids = await replica.engine.tokenize(body.content, body.add_special)
    return with_pieces(ids, await replica.engine.pieces(ids)) if body.with_pieces else Tokens(tokens=ids)


@API.post("/detokenize", response_model=Detokenized, openapi_extra=PROTECTED, responses=ERRORS)
async def detokenize(body: DetokenizeRequest, replica: ReplicaOf) -> Detokenized:
    """llama-server's /detokenize: the text of `tokens`."""
    return Detokenized(content=await replica.engine.detokenize(body.tokens))


@API.post("/apply-template", response_model=TemplatedPrompt, openapi_extra=PROTECTED, responses=ERRORS)
async def apply_template(body: ApplyTemplateRequest, replica: ReplicaOf) -> TemplatedPrompt:
    """llama-server's /apply-template: the prompt the chat template makes of `messages` (and `tools`)."""
    return TemplatedPrompt(prompt=await replica.engine.render(*body.arguments()))


@API.get("/v1/models", response_model=ModelList, openapi_extra=PROTECTED, responses={401: ERRORS[401]})
async def models(replica: ReplicaOf) -> ModelList:
    engine = replica.engine
    card = ModelCard(
        id=replica.settings.model_name,
        object="model",
        created=0,
        owned_by="ovchat",
        context_length=engine.context_length,
        tool_calls=engine.tool_format.value if engine.tool_format else None,  # type: ignore[arg-type]
        reasoning=engine.thinks,
    )
    return ModelList(object="list", data=[card])


@API.get("/health", response_model=Health, responses={503: {"model": Health, "headers": RETRY_DOC}})
async def health(replica: ReplicaOf) -> JSONResponse:
    """Readiness: 200 while the server takes requests; 503 while loading, recovering or draining."""
    state = replica.engine.lifecycle.health()
    answer = Health(status=state.status, model=replica.settings.model_name).model_dump()
    return JSONResponse(
        answer, status_code=200 if state.ready else 503, headers=None if state.ready else RETRY
    )


@API.get("/live", response_model=Health, responses={503: {"model": Health, "headers": RETRY_DOC}})
async def live(replica: ReplicaOf) -> JSONResponse:
    """Liveness: 200 unless the engine gave up (then the process is on its way out)."""
    if replica.engine.lifecycle.alive:
        return JSONResponse(Health(status="alive").model_dump(exclude_unset=True))
    return JSONResponse(
        Health(status="failed").model_dump(exclude_unset=True), status_code=503, headers=RETRY
    )


@API.get(
    "/metrics",
    response_class=Response,
    openapi_extra=PROTECTED,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, 401: ERRORS[401]},
)
async def prometheus(replica: ReplicaOf) -> Response:
    return Response(replica.metrics.render(), media_type=CONTENT_TYPE)
