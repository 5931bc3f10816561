"""ovchat: chat with, embed with and serve OpenVINO models on CPUs, with no PyTorch at run time.

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
    from ovchat.chat.reply import Reply, TurnMetrics
    from ovchat.chat.session import ChatSession, complete_raw
    from ovchat.chat.transcript import read_transcript
    from ovchat.model.bench import BenchReport, bench_model
    from ovchat.model.catalog import Catalog, ModelEntry, list_models
    from ovchat.model.device import DeviceConfig, check_device
    from ovchat.model.encoders import (
        Embedder,
        Embeddings,
        Ranking,
        Reranker,
        open_embedder,
        open_encoder,
        open_reranker,
    )
    from ovchat.model.facts import describe_model
    from ovchat.model.files import ModelFiles, find_model, find_models
    from ovchat.model.models import open_pool
    from ovchat.model.pipeline import Model, open_model
    from ovchat.model.pool import ModelPool
    from ovchat.options import GenerationOptions
    from ovchat.prompt.messages import is_text
    from ovchat.prompt.tools.hermes import ToolCall
    from ovchat.prompt.tools.use import Tool, ToolChoice, ToolUse

__version__ = "0.1.0"
# The public API, by the module each name lives in; cli/ uses the library through these names only.
_LAZY = {
    "BenchReport": "ovchat.model.bench",
    "Catalog": "ovchat.model.catalog",
    "ChatSession": "ovchat.chat.session",
    "DeviceConfig": "ovchat.model.device",
    "Embedder": "ovchat.model.encoders",
    "Embeddings": "ovchat.model.encoders",
    "GenerationOptions": "ovchat.options",
    "Model": "ovchat.model.pipeline",
    "ModelEntry": "ovchat.model.catalog",
    "ModelFiles": "ovchat.model.files",
    "ModelPool": "ovchat.model.pool",
    "Ranking": "ovchat.model.encoders",
    "Reply": "ovchat.chat.reply",
    "Reranker": "ovchat.model.encoders",
    "Tool": "ovchat.prompt.tools.use",
    "ToolCall": "ovchat.prompt.tools.hermes",
    "ToolChoice": "ovchat.prompt.tools.use",
    "ToolUse": "ovchat.prompt.tools.use",
    "TurnMetrics": "ovchat.chat.reply",
    "bench_model": "ovchat.model.bench",
    "check_device": "ovchat.model.device",
    "complete_raw": "ovchat.chat.session",
    "describe_model": "ovchat.model.facts",
    "find_model": "ovchat.model.files",
    "find_models": "ovchat.model.files",
    "is_text": "ovchat.prompt.messages",
    "list_models": "ovchat.model.catalog",
    "open_embedder": "ovchat.model.encoders",
    "open_encoder": "ovchat.model.encoders",
    "open_model": "ovchat.model.pipeline",
    "open_pool": "ovchat.model.models",
    "open_reranker": "ovchat.model.encoders",
    "read_transcript": "ovchat.chat.transcript",
}
__all__ = [
    "BenchReport",
    "Catalog",
    "ChatSession",
    "ContextError",
    "DeviceConfig",
    "DeviceError",
    "Embedder",
    "Embeddings",
    "GenerationError",
    "GenerationOptions",
    "Model",
    "ModelEntry",
    "ModelError",
    "ModelFiles",
    "ModelPool",
    "OptionsError",
    "OvchatError",
    "Ranking",
    "Reply",
    "Reranker",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "ToolUse",
    "TranscriptError",
    "TurnMetrics",
    "__version__",
    "bench_model",
    "check_device",
    "complete_raw",
    "describe_model",
    "find_model",
    "find_models",
    "is_text",
    "list_models",
    "open_embedder",
    "open_encoder",
    "open_model",
    "open_pool",
    "open_reranker",
    "read_transcript",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ovchat' has no attribute {name!r}")
