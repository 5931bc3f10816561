"""The one place where errors become HTTP: OpenAI's {"error": {message, type, param, code}} body."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ovchat.errors import (
    ContextError,
    GenerationError,
    OptionsError,
    OvchatError,
    RequestRejected,
    Unavailable,
)
from ovchat.server.schemas import RequestError


def error_response(exc: Exception) -> JSONResponse:
    """Every error the server returns, as OpenAI's {"error": {message, type, param, code}} body."""
    status, kind, param, code, headers = 500, "server_error", None, None, {}
    message = str(exc.detail) if isinstance(exc, HTTPException) else str(exc)
    if isinstance(exc, RequestError):
        status, kind, param, code = exc.status, exc.kind, exc.param, exc.code
    elif isinstance(exc, RequestRejected):
        status, kind, param = 400, "invalid_request_error", exc.param
    elif isinstance(exc, OptionsError):
        status, kind, param = 400, "invalid_request_error", exc.option
    elif isinstance(exc, ContextError):
        status, kind, code = 400, "invalid_request_error", "context_length_exceeded"
    elif isinstance(exc, Unavailable):
        status, code, headers = 503, exc.code, {"Retry-After": str(exc.retry_after_s)}
    elif isinstance(exc, RequestValidationError):
        status, kind = 400, "invalid_request_error"
        param, message = _validation_problem(exc)
    elif isinstance(exc, HTTPException):
        status, kind = exc.status_code, "invalid_request_error"
    elif not isinstance(exc, OvchatError):
        message = "internal server error"
    if isinstance(exc, GenerationError):
        code = "generation_failed"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


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
