"""What to build: the user's request, and the profile and export flags it comes to for a source."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ovchat.model.contract import CHAT, EMBEDDED_ENCODER_NAME, EMBEDDED_NAME
from ovchat_build.errors import BuildError
from ovchat_build.export.profiles import (
    BLOCKS_EXPORT,
    ENCODER_EXPORT,
    ENCODER_TASKS,
    ENCODER_WEIGHT_FORMATS,
    PROFILES,
    ExportFlags,
    flags_summary,
)
from ovchat_build.fidelity.criteria import DEFAULT_MIN_AGREEMENT
from ovchat_build.source.resolve import Source

ALL_PROFILES = (*PROFILES, "auto")


@dataclass(frozen=True)
class BuildRequest:
    """What the user asked for (the command line, parsed)."""

    source: str | None  # None: the embedded model
    out_dir: Path
    name: str | None = None
    profile: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # ExportFlags fields given by name
    force: bool = False
    skip_fidelity: bool = False
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    chat_check: bool = True


@dataclass(frozen=True)
class Plan:
    """What to build: a profile (or auto) and the export flags, the user's overrides applied."""

    profile: str
    flags: ExportFlags
    gguf_grid: bool  # the source's linear weights are a GGUF grid that can be carried over
    grid: str | None = None  # how: "Q4_1" (into an int4 export) or "blocks" (into an fp32 one)
    kind: str = CHAT  # chat | embedding | rerank (ovchat.model.contract.MODEL_KINDS)
    encoder: dict[str, Any] = field(default_factory=dict)  # an encoder's settings (source.kind)

    def record(self) -> dict[str, Any]:
        encoder = {"kind": self.kind, "encoder": self.encoder} if self.kind != CHAT else {}
        return {"profile": self.profile, "flags": flags_summary(self.flags), **encoder}

    @property
    def carries_blocks(self) -> bool:
        """The file's block formats go into an fp32 export, tensor by tensor."""
        return self.profile == "gguf" and self.grid == "blocks"


def encoder_plan(request: BuildRequest, kind: str, settings: dict[str, Any]) -> Plan:
    """An embedding model's or reranker's export: 16-bit weights unless --weight-format says int8 or
    fp32; the chat profiles (int4 grids, calibration) are not for encoders."""
    if request.profile is not None:
        what = "an embedding model" if kind == "embedding" else "a reranker"
        raise BuildError(
            f"--profile is for chat models; this is {what}, "
            f"built at fp16 (--weight-format {'|'.join(ENCODER_WEIGHT_FORMATS)} chooses)"
        )
    unknown = sorted(set(request.overrides) - {"weight_format", "trust_remote_code"})
    if unknown:
        raise BuildError(f"--{unknown[0].replace('_', '-')} does not apply to {kind} models")
    flags = replace(ENCODER_EXPORT, task=ENCODER_TASKS[kind], **request.overrides)
    if flags.weight_format not in ENCODER_WEIGHT_FORMATS:
        raise BuildError(f"--weight-format for {kind} models: one of {', '.join(ENCODER_WEIGHT_FORMATS)}")
    return Plan("encoder", flags, False, kind=kind, encoder=settings)


def make_plan(request: BuildRequest, source: Source) -> Plan:
    grid, refused = None, ""
    if source.kind in ("embedded", "gguf") and source.path is not None:
        from ovchat_build.gguf.grid import grid_type, tensor_types, uncarried

        grid = grid_type(source.path)
        counts = uncarried(tensor_types(source.path) or {})
        refused = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    overrides = request.overrides
    shaping = set(overrides) - {"task", "trust_remote_code"}
    # A GGUF's default is its own grid, whatever its type: re-quantizing a file through NNCF rounds
    # it onto another grid (an 8-bit file down to 4 bits: agreement 0.805, refused by the gate).
    if refused and (request.profile in (None, "gguf")) and not shaping:
        raise BuildError(
            f"{Path(source.ref).name} has tensors of a type ovchat cannot carry exactly ({refused}): "
            "--profile balanced dequantizes and re-quantizes it, behind the fidelity gate"
        )
    # Export flags without a profile apply to the reference flags: what you name is what you get.
    profile = request.profile or ("reference" if shaping else "gguf" if grid else "balanced")
    if profile == "gguf" and grid is None:
        raise BuildError("--profile gguf needs a GGUF source")
    if profile == "gguf" and shaping:
        raise BuildError("--profile gguf carries the file's own grid: its export flags cannot be changed")
    base = PROFILES[profile] if profile != "auto" else PROFILES["balanced"]
    if profile == "gguf" and grid == "blocks":
        base = BLOCKS_EXPORT
    return Plan(profile, replace(base, **overrides), grid == "Q4_1", grid)


def folder_name(request: BuildRequest, source: Source, plan: Plan) -> str:
    """The name given, else <model>-<weight format>[-<profile>] (the profile if not the default)."""
    if request.name:
        return request.name
    default_profile = "gguf" if plan.grid else "balanced"
    chosen = request.profile if request.profile not in (None, default_profile) else None
    return default_name(source, plan.flags, chosen, "gguf" if plan.carries_blocks else None)


def default_name(source: Source, flags: ExportFlags, profile: str | None, weights: str | None = None) -> str:
    """A self-explaining folder name: <model>-<weight format>[-<profile>] (the profile if one was chosen)."""
    if source.kind == "embedded":
        base = EMBEDDED_NAME
    elif source.kind == "embedded-encoder":
        base = EMBEDDED_ENCODER_NAME
    elif source.kind == "hub":
        base = source.ref.split("/")[-1]
    elif source.kind == "gguf":
        base = Path(source.ref).stem
    else:
        base = checkpoint_name(Path(source.ref))
    slug = re.sub(r"[^a-z0-9.]+", "-", base.lower()).strip("-")
    suffix = f"-{profile}" if profile else ""
    return f"{slug}-{weights or flags.weight_format}{suffix}"


def checkpoint_name(folder: Path) -> str:
    """A checkpoint folder's model name: the repository's for a snapshot in the Hugging Face cache
    (models--ORG--NAME/snapshots/REVISION, where `hf download` keeps it), else the folder's own."""
    repo = folder.parent.parent.name
    if folder.parent.name == "snapshots" and repo.startswith("models--"):
        return repo.split("--")[-1]
    return folder.name
