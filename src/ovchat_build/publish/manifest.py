"""The manifest a finished build writes into its folder (ovchat.model.contract.Manifest), and its summary."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ovchat.model.contract import MANIFEST_FILE, FileEntry, Manifest, sha256_file
from ovchat_build.checkout import portable
from ovchat_build.export.attempt import Outcome
from ovchat_build.source.resolve import Source


@dataclass(frozen=True)
class BuildFacts:
    """What the build knows of itself before the export: its name, fingerprint, inputs and tools."""

    name: str
    fingerprint: str
    source: Source
    inputs: list[dict[str, Any]]
    versions: dict[str, str]


def make_manifest(
    facts: BuildFacts, work: Path, target: Path, outcome: Outcome, seconds: float, steps: dict[str, float]
) -> Manifest:
    """The manifest of the folder in `work`, to be published as `target` (verification still empty)."""
    return Manifest(
        name=facts.name,
        fingerprint=facts.fingerprint,
        source={"kind": facts.source.kind, "ref": portable(facts.source.ref), "inputs": facts.inputs},
        versions=facts.versions,
        export=outcome.export_record(target),
        files=file_inventory(work),
        context_length=context_length(work),
        bitwidth_distribution=parse_bitwidth_table(outcome.log),
        group_sizes_used=sorted(set(re.findall(r"group size (\d+)", outcome.log)), key=int),
        verification={},
        fidelity=outcome.fidelity,
        runtime=outcome.runtime,
        build_seconds=round(seconds, 1),
        steps=dict(steps),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def write_manifest(work: Path, manifest: Manifest) -> None:
    (work / MANIFEST_FILE).write_text(manifest.to_json())


def parse_bitwidth_table(log: str) -> list[dict[str, str]]:
    """NNCF's 'Statistics of the bitwidth distribution' table as rows of dicts."""
    rows = []
    for line in log.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 3 and re.match(r"\d+% \(", cells[1]):
            rows.append({"mode": cells[0], "all_parameters": cells[1], "ratio_defining": cells[2]})
    return rows


def file_inventory(folder: Path) -> list[FileEntry]:
    return [
        FileEntry(p.relative_to(folder).as_posix(), p.stat().st_size, sha256_file(p))
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    ]


def context_length(model_dir: Path) -> int | None:
    config = json.loads((model_dir / "config.json").read_text())
    value = config.get("max_position_embeddings")
    return int(value) if value else None


def print_summary(target: Path, manifest: Manifest) -> None:
    size = sum(f.size for f in manifest.files) / 1e6
    print(f"\n[build] done in {manifest.build_seconds} s: {target} ({size:.1f} MB)")
    for row in manifest.bitwidth_distribution:
        print(f"  {row['mode']:<28} {row['all_parameters']:<20} {row['ratio_defining']}")
    if "gguf_grid" in manifest.export:
        grid = manifest.export["gguf_grid"]
        print(f"  the GGUF's own {grid['type']} grid in {grid['tensors']} layers")
    if manifest.runtime:
        print(f"  runtime: {manifest.runtime} (what the fidelity gate passed with)")
    chat = manifest.verification.get("chat")
    if isinstance(chat, dict):
        print(f"  check: {chat['question']!r} -> {chat['answer']!r}")
