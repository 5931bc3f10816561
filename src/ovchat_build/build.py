"""The model build from end to end: resolve -> GGUF import/grid -> export -> gate -> manifest ->
verify -> publish. The folder appears under its models folder only once every step has passed."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from ovchat.model.contract import CHAT
from ovchat_build.clock import CLOCK
from ovchat_build.errors import BuildError
from ovchat_build.export.attempt import Outcome, export_and_measure
from ovchat_build.export.plan import BuildRequest, Plan, encoder_plan, folder_name, make_plan
from ovchat_build.publish.fingerprint import fingerprint, is_up_to_date, tool_versions
from ovchat_build.publish.folder import partial_folder, publish, remove_stale_partials
from ovchat_build.publish.manifest import BuildFacts, make_manifest, print_summary, write_manifest
from ovchat_build.source.inputs import check_free_space, hash_inputs
from ovchat_build.source.kind import model_kind
from ovchat_build.source.resolve import Source, download_hub, resolve_source
from ovchat_build.source.staging import stage_hf_checkpoint, unpacked


def build(request: BuildRequest) -> Path:
    """Build what `request` asks for (a no-op when its folder is up to date); the published folder."""
    started = time.monotonic()
    source = resolve_source(request.source)
    if source.kind == "hub":
        source = Source("hub", source.ref, download_hub(source.ref))
    plan = plan_for(request, source)
    target = request.out_dir.resolve() / folder_name(request, source, plan)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target.parent)
    with CLOCK.step("hash", f"hashing {source.ref}"):
        source, inputs = hash_inputs(source)
    versions = tool_versions()
    gate = {"skip_fidelity": request.skip_fidelity, "min_agreement": request.min_agreement}
    facts = BuildFacts(
        target.name, fingerprint(inputs, plan.record(), versions, gate), source, inputs, versions
    )
    if not request.force and is_up_to_date(target, facts.fingerprint):
        print(f"[build] {target} is up to date (same source, flags and tools); --force rebuilds")
        return target
    check_free_space(source, target.parent, fp32_export=plan.flags.weight_format == "fp32")
    hf_dir = stage_hf_checkpoint(source, inputs[0]["sha256"])
    with partial_folder(target.parent, target.name) as work:
        outcome = export_and_gate(hf_dir, work, source, plan, request)
        manifest = make_manifest(facts, work, target, outcome, time.monotonic() - started, CLOCK.seconds)
        manifest = replace(manifest, kind=plan.kind, encoder=plan.encoder)
        if plan.kind != CHAT:
            manifest = replace(manifest, context_length=plan.encoder["max_length"])
        # The runtime reads its properties from the manifest: verify opens the folder as users will.
        write_manifest(work, manifest)
        from ovchat_build.publish.verify import VerifyError, verify

        try:
            with CLOCK.step("verify", "verifying the exported folder"):
                report = verify(work, chat=request.chat_check)
        except VerifyError as exc:
            raise BuildError(f"verification failed, folder not accepted: {exc}") from None
        seconds = round(time.monotonic() - started, 1)
        manifest = replace(manifest, verification=report, build_seconds=seconds, steps=dict(CLOCK.seconds))
        write_manifest(work, manifest)  # with the verification: a finished build
        publish(work, target)
    print_summary(target, manifest)
    return target


def plan_for(request: BuildRequest, source: Source) -> Plan:
    """What to build: a chat model's profile and flags, or an encoder's (by what the folder is)."""
    if source.kind in ("embedded", "gguf"):
        return make_plan(request, source)
    assert source.path is not None
    kind, settings = model_kind(unpacked(source.path) if source.kind == "embedded-encoder" else source.path)
    return make_plan(request, source) if kind == CHAT else encoder_plan(request, kind, settings)


def export_and_gate(hf_dir: Path, work: Path, source: Source, plan: Plan, request: BuildRequest) -> Outcome:
    """The plan's export in `work` (--profile auto: the smallest that passes), refused below the gate."""
    if plan.kind != CHAT:
        from ovchat_build.export.encoder import export_encoder

        outcome = export_encoder(hf_dir, work, plan, gate=not request.skip_fidelity)
    elif plan.profile == "auto":
        if request.skip_fidelity:
            raise BuildError(
                "--profile auto searches by fidelity: it cannot be combined with --skip-fidelity"
            )
        from ovchat_build.export.search import search_smallest

        outcome = search_smallest(hf_dir, work, source, plan, request.min_agreement)
    else:
        gate = None if request.skip_fidelity else request.min_agreement
        outcome = export_and_measure(hf_dir, work, source, plan.profile, plan.flags, gate)
    if outcome.rejected:
        raise BuildError(f"fidelity gate failed, folder not accepted: {outcome.rejected}")
    return outcome
