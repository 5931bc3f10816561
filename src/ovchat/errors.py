"""The one exception family that carries user-facing messages.

Each class also says how each front end answers it: the CLI's exit code, and the HTTP server's
status, OpenAI error type and code (ovchat.server.protocol.http_errors renders the body from them,
for JSON and SSE alike).
"""

from __future__ import annotations

import re


class OvchatError(Exception):
    """An error a user can act on; the message says what to do. Exit code 1."""

    exit_code = 1
    http_status = 500
    error_type = "server_error"
    code: str | None = None


class ModelError(OvchatError):
    """No usable model at the given place (missing, not a model, corrupt)."""


class DeviceError(OvchatError):
    """The requested OpenVINO device is not available here."""


class OptionsError(OvchatError):
    """A generation option has an invalid value. Exit code 2, like a usage error."""

    exit_code = 2
    http_status = 400
    error_type = "invalid_request_error"

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option  # GenerationOptions' name of the value at fault


class ContextError(OvchatError):
    """The prompt cannot fit in the model's context window."""

    http_status = 400
    error_type = "invalid_request_error"
    code = "context_length_exceeded"


class TranscriptError(OvchatError):
    """A saved conversation cannot be read or written."""


class GenerationError(OvchatError):
    """GenAI failed while generating; the message is in plain words, without its C++ paths."""

    code = "generation_failed"


class RequestRejected(OvchatError):
    """A request that cannot be generated as asked, through the client's fault; `param` names the field."""

    http_status = 400
    error_type = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class WrongKind(RequestRejected):
    """A request for what the named model does not do: a chat request to an embedding model, say."""

    code = "wrong_model_kind"

    def __init__(self, message: str) -> None:
        super().__init__(message, "model")


class Unavailable(OvchatError):
    """The engine cannot take this request now (loading, recovering, busy, shutting down): retry later."""

    http_status = 503

    def __init__(self, message: str, code: str = "unavailable", retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after_s = retry_after_s


class ModelNotFound(ModelError):
    """A request names a model this server does not serve."""

    http_status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class ModelBusy(OvchatError):
    """A model cannot be unloaded now: requests are using it, or it is loading."""

    http_status = 409
    error_type = "invalid_request_error"
    code = "model_busy"


class ModelFailed(OvchatError):
    """A served model failed to load (or broke): its requests hear why until it is loaded again."""

    code = "model_failed"


class Interrupted(OvchatError):
    """The user pressed Ctrl-C where nothing could be kept (while the model loads, say)."""

    exit_code = 130


_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")
_SOURCE = re.compile(r"(?:[\w.+-]*/)*[\w.+-]+\.(?:cpp|cc|cxx|hpp|hh|h|c)(?::\d+)*:?\s*")
_XGRAMMAR_CHECK = re.compile(r"Check failed: .*? is false:\s*")
_OPENVINO_CHECK = re.compile(r"Check '.*?' failed at\s*")


def plain_message(error: BaseException | str) -> str:
    """GenAI's or OpenVINO's error text in plain words: its last line, with no source-file paths
    (they name the machine the library was built on), timestamps or check expressions."""
    text = str(error)
    lines = [line.strip() for line in text.splitlines()]
    useful = [line for line in lines if line and not line.startswith("Exception from")]
    line = useful[-1] if useful else ""
    for pattern in (_TIMESTAMP, _OPENVINO_CHECK, _SOURCE, _XGRAMMAR_CHECK):
        line = pattern.sub("", line)
    line = line.strip().rstrip(":").strip()
    if not line:
        return type(error).__name__ if isinstance(error, BaseException) else "unknown error"
    return line
