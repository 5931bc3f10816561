"""What `ovchat models` lists: every model in the model folders, and which one is the default."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ovchat.errors import ModelError
from ovchat.model.contract import BUILD_HINT, Manifest, model_folders
from ovchat.model.pipeline import find_model


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


def catalog_json(catalog: Catalog) -> dict[str, Any]:
    return {
        "folders": [str(f) for f in catalog.folders],
        "default": str(catalog.default) if catalog.default else None,
        "default_problem": catalog.default_problem,
        "models": [{**asdict(e), "path": str(e.path), "folder": str(e.folder)} for e in catalog.models],
    }


def format_catalog(catalog: Catalog) -> list[str]:
    """The listing as lines of text: a table, then where the default comes from."""
    where = " and ".join(str(f) for f in catalog.folders)
    if not catalog.models:
        return [f"no models in {where}: {BUILD_HINT}"]
    lines = [f"{'':2}{'NAME':34} {'SIZE':>9}  {'WEIGHTS':16} {'AGREEMENT':>9}  FOLDER"]
    lines += [_row(entry) for entry in catalog.models]
    lines.append(f"(looked in {where}, in that order)")
    if catalog.default is not None:
        lines.append(f"* the default, which a bare `ovchat chat` opens: {catalog.default}")
    else:
        lines.append(f"no default model: {catalog.default_problem}")
    return lines


def _row(entry: ModelEntry) -> str:
    mark = "* " if entry.default else "  "
    weights = entry.weight_format or "?"
    if entry.profile:
        weights += f" ({entry.profile})"
    agreement = f"{entry.top1_agreement:.3f}" if entry.top1_agreement is not None else "-"
    size = f"{entry.size_bytes / 1e6:.1f}MB"
    row = f"{mark}{entry.name:34} {size:>9}  {weights:16} {agreement:>9}  {entry.folder}"
    return f"{row}\n    unusable: {entry.problem}" if entry.problem else row
