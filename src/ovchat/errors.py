"""The one exception family that carries user-facing messages."""

from __future__ import annotations


class OvchatError(Exception):
    """An error a user can act on; the message says what to do. Exit code 1."""

    exit_code = 1


class ModelError(OvchatError):
    """No usable model at the given place (missing, not a model, corrupt)."""


class DeviceError(OvchatError):
    """The requested OpenVINO device is not available here."""


class OptionsError(OvchatError):
    """A generation option has an invalid value. Exit code 2, like a usage error."""

    exit_code = 2


class ContextError(OvchatError):
    """The prompt cannot fit in the model's context window."""


class TranscriptError(OvchatError):
    """A saved conversation cannot be read or written."""
