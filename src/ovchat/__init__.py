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
    from ovchat.device import DeviceConfig
    from ovchat.model import Model, ModelFiles, find_model, open_model
    from ovchat.options import GenerationOptions
    from ovchat.session import ChatSession, Reply, TurnMetrics, complete_raw
    from ovchat.tool_calls import ToolCall
    from ovchat.tool_use import Tool, ToolChoice, ToolUse

__version__ = "0.1.0"
_LAZY = {
    "DeviceConfig": "ovchat.device",
    "Model": "ovchat.model",
    "ModelFiles": "ovchat.model",
    "find_model": "ovchat.model",
    "open_model": "ovchat.model",
    "GenerationOptions": "ovchat.options",
    "ChatSession": "ovchat.session",
    "Reply": "ovchat.session",
    "TurnMetrics": "ovchat.session",
    "complete_raw": "ovchat.session",
    "Tool": "ovchat.tool_use",
    "ToolCall": "ovchat.tool_calls",
    "ToolChoice": "ovchat.tool_use",
    "ToolUse": "ovchat.tool_use",
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
