"""What makes two builds the same: their inputs, plan, gate, tools and the build's own code."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any

from ovchat.model.contract import Manifest, ManifestError
from ovchat_build.recipe import code_digest

VERSIONED = (
    "optimum-intel",
    "optimum",
    "nncf",
    "openvino",
    "openvino-tokenizers",
    "openvino-genai",
    "transformers",
    "torch",
)


def tool_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def fingerprint(
    inputs: list[dict[str, Any]], plan: dict[str, Any], versions: dict[str, str], gate: dict[str, Any]
) -> str:
    """Same inputs, profile and flags, fidelity gate, tools and build code -> same fingerprint -> a no-op."""
    parts = {
        "inputs": inputs,
        "plan": plan,
        "versions": versions,
        "gate": gate,
        "recipe": code_digest(),
    }
    blob = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def is_up_to_date(target: Path, fp: str) -> bool:
    """The folder was built from the same fingerprint and its files are all still there."""
    try:
        manifest = Manifest.read(target)
    except ManifestError:
        return False
    if manifest is None or manifest.fingerprint != fp:
        return False
    return all(
        (target / f.path).is_file() and (target / f.path).stat().st_size == f.size for f in manifest.files
    )
