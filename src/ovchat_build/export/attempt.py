"""One export measured: optimum-cli's export, the GGUF's own grid carried in, the gate's figures."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovchat.model.contract import EMBEDDED_SAMPLING, GENERATION_CONFIG_FILE
from ovchat_build.checkout import portable
from ovchat_build.clock import CLOCK
from ovchat_build.errors import BuildError
from ovchat_build.export.optimum import ExportError, run_export
from ovchat_build.export.profiles import ExportFlags, flags_summary
from ovchat_build.fidelity.gate import gate
from ovchat_build.source.resolve import Source


@dataclass
class Outcome:
    """One finished export in the work folder: how it was made and how faithful it is."""

    profile: str
    flags: ExportFlags
    command: list[str]
    log: str
    grid: dict[str, Any] | None
    fidelity: dict[str, Any] | str
    rejected: str | None = None  # why the fidelity gate refused it
    runtime: dict[str, str] = field(default_factory=dict)  # CPU properties the fidelity holds for
    search: list[dict[str, Any]] | None = None

    def export_record(self, target: Path) -> dict[str, Any]:
        record: dict[str, Any] = {
            "profile": self.profile,
            "flags": flags_summary(self.flags),
            "command": [*map(portable, self.command[:-1]), target.name],
            "group_size_adjusted": "Adjusted group size" in self.log,
        }
        if self.grid is not None:
            record["gguf_grid"] = self.grid
        if self.search is not None:
            record["search"] = self.search
        return record


def export_and_measure(
    hf_dir: Path, work: Path, source: Source, profile: str, flags: ExportFlags, min_agreement: float | None
) -> Outcome:
    """Export with `flags` into `work`, carry the GGUF grid over if asked, apply the model's sampling
    defaults, and measure fidelity unless `min_agreement` is None (`rejected` says why the gate
    refused it)."""
    try:
        with CLOCK.step("export", f"exporting with the {profile} profile ({flags.describe()})"):
            command, log = run_export(hf_dir, work, flags)
    except ExportError as exc:
        raise BuildError(str(exc)) from None
    grid = carry_grid(source, work) if profile == "gguf" else None
    if source.kind == "embedded":
        set_sampling_defaults(work, EMBEDDED_SAMPLING)
    if min_agreement is None:
        return Outcome(profile, flags, command, log, grid, "skipped")
    fidelity, rejected, runtime = gate(hf_dir, work, source, min_agreement)
    return Outcome(profile, flags, command, log, grid, fidelity, rejected, runtime=runtime)


def carry_grid(source: Source, work: Path) -> dict[str, Any]:
    """The GGUF's own grid into the exported IR: Q4_1 into the int4 export, other types block by block."""
    from ovchat_build.gguf.grid import GridError, apply_grid, carry_blocks, grid_type

    assert source.path is not None
    q4_1 = grid_type(source.path) == "Q4_1"
    try:
        with CLOCK.step("grid", f"carrying {source.path.name}'s own grid into the IR"):
            return (apply_grid if q4_1 else carry_blocks)(source.path, work)
    except GridError as exc:
        raise BuildError(f"cannot carry the GGUF grid over: {exc}") from None


def set_sampling_defaults(folder: Path, sampling: dict[str, Any]) -> None:
    """Write the model authors' recommended sampling into generation_config.json (GenAI reads it)."""
    path = folder / GENERATION_CONFIG_FILE
    config = json.loads(path.read_text()) if path.is_file() else {}
    config.update({"do_sample": True, **sampling})
    path.write_text(json.dumps(config, indent=2) + "\n")
