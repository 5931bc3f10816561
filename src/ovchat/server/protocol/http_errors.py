"""The one place where errors become HTTP: OpenAI's {"error": {message, type, param, code}} body,
which every route answers with (an API with an error shape of its own renders its errors in its
module, from the same ErrorReply).

`error_reply` renders every failure once; a JSON response and an event inside a stream that has
already started (its 200 sent) carry that same body, as vLLM's `create_error_response` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ovchat.errors import OptionsError, OvchatError, RequestRejected, Unavailable
from ovchat.server.protocol.stream import sse


class HttpRefusal(OvchatError):
    """A request the HTTP layer itself refuses (an unsupported field, a body too large, no key), with
    its status and the field to blame; what the engine or the options refuse is RequestRejected or
    OptionsError."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.http_status = status
        self.param = param
        self.code = code
        self.error_type = error_type


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


@dataclass(frozen=True)
class ErrorReply:
    """One failure as the server answers it: status, headers and OpenAI's error body."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)

    def event(self) -> bytes:
        """The body as a server-sent event: a stream's status and headers are sent before it fails."""
        return sse(self.body)


def error_reply(exc: Exception) -> ErrorReply:
    """Every error the server returns; nothing but an OvchatError's own message reaches the client."""
    if isinstance(exc, OvchatError):
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Unavailable) else {}
        return ErrorReply(exc.http_status, _body(str(exc), exc.error_type, _param(exc), exc.code), headers)
    if isinstance(exc, RequestValidationError):
        param, message = _validation_problem(exc)
        return ErrorReply(400, _body(message, "invalid_request_error", param))
    if isinstance(exc, HTTPException):
        return ErrorReply(exc.status_code, _body(str(exc.detail), "invalid_request_error"))
    return ErrorReply(500, _body("internal server error", "server_error"))


def _body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return ErrorBody(error=ErrorDetail(message=message, type=kind, param=param, code=code)).model_dump()


def _param(exc: OvchatError) -> str | None:
    """The request field to blame, when the error names one."""
    if isinstance(exc, HttpRefusal | RequestRejected):
        return exc.param
    if isinstance(exc, OptionsError):
        return exc.option
    return None


def _is_field_name(part: str) -> bool:
    return part not in {"str", "list", "int", "float", "bool"} and not any(c in part for c in "[]-")


def _validation_problem(exc: RequestValidationError) -> tuple[str | None, str]:
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        return None, "the request body is not valid JSON"
    loc = [part for part in first.get("loc", ()) if part != "body"]
    # pydantic names union members ("str", "list[...]") and wrappers in the location: skip them.
    names = [p for p in loc if isinstance(p, int) or _is_field_name(p)]
    param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in names).lstrip(".") or None
    if first.get("type") == "missing" and not names:
        return None, "the request body is missing"
    return param, f"{param or 'body'}: {first.get('msg', 'invalid value')}"
