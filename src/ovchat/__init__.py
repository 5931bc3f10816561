"""ovchat: chat with and serve int4 OpenVINO LLMs on CPUs, with no PyTorch at run time."""

from __future__ import annotations

from ovchat.errors import ContextError, DeviceError, ModelError, OptionsError, OvchatError

__version__ = "0.1.0"
__all__ = ["ContextError", "DeviceError", "ModelError", "OptionsError", "OvchatError", "__version__"]
