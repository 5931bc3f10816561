"""The library's pool: several Models (ovchat.open_model) by name, loaded on demand by the rules
of ovchat.model.pool, as the server holds its engines."""

from __future__ import annotations

from typing import Any

from ovchat.model.device import DeviceConfig
from ovchat.model.files import ModelFiles
from ovchat.model.memory import model_bytes
from ovchat.model.pipeline import Model, open_model
from ovchat.model.pool import ModelPool


class ModelsLoader:
    """The library's loader: each model opened as a Model (ovchat.open_model) with one device."""

    def __init__(self, models: dict[str, ModelFiles], device: DeviceConfig | None = None) -> None:
        self.models, self.device = models, device

    def load(self, name: str) -> Model:
        return open_model(self.models[name], self.device)

    def unload(self, name: str, item: Model) -> None:
        pass  # dropping the last reference frees it; give_back() then returns the memory

    def size(self, name: str) -> int:
        return model_bytes(self.models[name])


def open_pool(
    models: dict[str, ModelFiles], device: DeviceConfig | None = None, **limits: Any
) -> ModelPool[Model]:
    """A pool of library Models (find_models names them): `pool.acquire(name)` is a lease whose
    `item` is the Model, loaded on demand; `limits` are ModelPool's (max_loaded, memory_budget in
    bytes, keep_alive in seconds, patience). Run each Work of `pool.expired()` to apply the keep-alive."""
    return ModelPool(models, ModelsLoader(models, device), **limits)
