"""An embedding model's or reranker's export: optimum-cli on the bare transformer, then the encoder
gate (fidelity/encoders.py) unless it is skipped."""

from __future__ import annotations

from pathlib import Path

from ovchat import ModelFiles
from ovchat.model.contract import Manifest
from ovchat_build.clock import CLOCK
from ovchat_build.errors import BuildError
from ovchat_build.export.attempt import Outcome
from ovchat_build.export.optimum import ExportError, run_export
from ovchat_build.export.plan import Plan


def export_encoder(hf_dir: Path, work: Path, plan: Plan, gate: bool) -> Outcome:
    try:
        with CLOCK.step("export", f"exporting the {plan.kind} model ({plan.flags.describe()})"):
            command, log = run_export(hf_dir, work, plan.flags)
    except ExportError as exc:
        raise BuildError(str(exc)) from None
    if not gate:
        return Outcome(plan.profile, plan.flags, command, log, None, "skipped")
    from ovchat_build.fidelity.encoders import encoder_gate

    # What the runtime will read from the manifest, before the manifest is written.
    draft = Manifest("", "", {}, {}, {}, [], kind=plan.kind, encoder=plan.encoder)
    files = ModelFiles(work, False, int(plan.encoder["max_length"]), draft)
    with CLOCK.step("fidelity", f"measuring the {plan.kind} model against sentence-transformers"):
        figures, rejected, runtime = encoder_gate(hf_dir, files)
    return Outcome(plan.profile, plan.flags, command, log, None, figures, rejected, runtime=runtime)
