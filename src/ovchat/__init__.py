"""ovchat: chat with and serve int4 OpenVINO LLMs on CPUs, with no PyTorch at run time.

The library's names load lazily, so `ovchat --help` does not pay for importing OpenVINO.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ovchat.errors import (
    ContextError,
    DeviceError,
    GenerationError,
    ModelError,
    OptionsError,
    OvchatError,
    TranscriptError,
)

if TYPE_CHECKING:
    from ovchat.chat.session import ChatSession, Reply, TurnMetrics, complete_raw
    from ovchat.model.device import DeviceConfig
    from ovchat.model.pipeline import Model, ModelFiles, find_model, open_model
    from ovchat.options import GenerationOptions
    from ovchat.prompt.tools.hermes import ToolCall
    from ovchat.prompt.tools.use import Tool, ToolChoice, ToolUse

__version__ = "0.1.0"
_LAZY = {
    "DeviceConfig": "ovchat.model.device",
    "Model": "ovchat.model.pipeline",
    "ModelFiles": "ovchat.model.pipeline",
    "find_model": "ovchat.model.pipeline",
    "open_model": "ovchat.model.pipeline",
    "GenerationOptions": "ovchat.options",
    "ChatSession": "ovchat.chat.session",
    "Reply": "ovchat.chat.session",
    "TurnMetrics": "ovchat.chat.session",
    "complete_raw": "ovchat.chat.session",
    "Tool": "ovchat.prompt.tools.use",
    "ToolCall": "ovchat.prompt.tools.hermes",
    "ToolChoice": "ovchat.prompt.tools.use",
    "ToolUse": "ovchat.prompt.tools.use",
}
__all__ = [
    "ChatSession",
    "ContextError",
    "DeviceConfig",
    "DeviceError",
    "GenerationError",
    "GenerationOptions",
    "Model",
    "ModelError",
    "ModelFiles",
    "OptionsError",
    "OvchatError",
    "Reply",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "ToolUse",
    "TranscriptError",
    "TurnMetrics",
    "__version__",
    "complete_raw",
    "find_model",
    "open_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ovchat' has no attribute {name!r}")
