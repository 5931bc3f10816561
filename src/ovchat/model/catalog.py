"""Every model in the model folders, and which one is the default (what `ovchat models` lists)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from ovchat.errors import ModelError
from ovchat.model.contract import BUILD_HINT, Manifest, model_folders
from ovchat.model.files import find_model


@dataclass(frozen=True)
class ModelEntry:
    """One model folder found in a models folder."""

    name: str
    path: Path
    folder: Path  # the models folder it was found in
    size_bytes: int
    weight_format: str | None  # from the manifest's export flags
    profile: str | None
    top1_agreement: float | None  # the build's fidelity check against the source model
    default: bool
    problem: str | None  # why ovchat would refuse to open it


@dataclass(frozen=True)
class Catalog:
    folders: list[Path]
    models: list[ModelEntry]
    default: Path | None  # what a bare `ovchat chat` opens
    default_problem: str | None  # why there is none
    build_hint: ClassVar[str] = BUILD_HINT  # how to make a model when there is none

    def as_json(self) -> dict[str, Any]:
        return {
            "folders": [str(f) for f in self.folders],
            "default": str(self.default) if self.default else None,
            "default_problem": self.default_problem,
            "models": [{**asdict(e), "path": str(e.path), "folder": str(e.folder)} for e in self.models],
        }


def list_models() -> Catalog:
    """The models of every folder of model_folders(), in lookup order."""
    default, default_problem = _default_model()
    folders = model_folders()
    models = [_entry(path, folder, default) for folder in folders for path in _model_dirs(folder)]
    return Catalog(folders, models, default, default_problem)


def _default_model() -> tuple[Path | None, str | None]:
    try:
        return find_model(None).path, None
    except ModelError as exc:
        return None, str(exc)


def _model_dirs(folder: Path) -> list[Path]:
    # Dot-folders are builds in progress (or killed ones).
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _entry(path: Path, folder: Path, default: Path | None) -> ModelEntry:
    manifest: Manifest | None = None
    problem = None
    try:
        manifest = find_model(path).manifest
    except ModelError as exc:
        problem = str(exc)
    flags = manifest.export.get("flags", {}) if manifest else {}
    return ModelEntry(
        name=path.name,
        path=path,
        folder=folder,
        size_bytes=sum(p.stat().st_size for p in path.rglob("*") if p.is_file()),
        weight_format=flags.get("weight_format"),
        profile=manifest.export.get("profile") if manifest else None,
        top1_agreement=_agreement(manifest),
        default=default is not None and path.resolve() == default.resolve(),
        problem=problem,
    )


def _agreement(manifest: Manifest | None) -> float | None:
    if manifest is None or not isinstance(manifest.fidelity, dict):
        return None
    value = manifest.fidelity.get("tokens", {}).get("top1_agreement")
    return float(value) if isinstance(value, int | float) else None
