"""The export step: optimum-cli's flags, the build profiles, and running the export.

Profiles (measured on the embedded SmolLM2, FIDELITY.md has the table):
- gguf: the GGUF file's own grid carried over (gguf/grid.py), whatever its type: an all-Q4_1 file as
  int4 asymmetric in groups of 32 (top-1 agreement 0.96 at 98 MB), any other carriable type or mix
  tensor by tensor over an fp32 export (gguf/blocks.py). The default for GGUF sources.
- balanced: the reference flags plus data-aware AWQ and scale estimation on the calibration
  texts shipped in calibration/ (`--dataset ovchat`, optimum_launch.py; `--dataset auto`, text the
  model writes itself, stays available by name). The default for float checkpoints.
- reference: the reference flags (int4 sym g128 ratio 0.6), data-free: 0.70.
- speed: int4 on every layer but the embeddings, data-free: 0.65.
- quality: int8 weights: 0.95 at 138 MB.
- auto: search (search.py) for the smallest of these that reaches --min-agreement.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


class ExportError(Exception):
    """optimum-cli failed; the message holds its last line."""


@dataclass(frozen=True)
class ExportFlags:
    task: str = "text-generation-with-past"
    weight_format: str = "int4"
    group_size: int = 128
    ratio: float = 0.6
    sym: bool = True
    group_size_fallback: str = "adjust"
    trust_remote_code: bool = False
    # Data-aware compression: calibration text, then the methods that use it.
    dataset: str | None = None
    awq: bool = False
    scale_estimation: bool = False
    gptq: bool = False
    lora_correction: bool = False
    sensitivity_metric: str | None = None
    num_samples: int | None = None

    @property
    def four_bit(self) -> bool:
        return self.weight_format in ("int4", "nf4", "mxfp4", "cb4")

    def cli_args(self) -> list[str]:
        args = ["--task", self.task, "--weight-format", self.weight_format]
        if self.four_bit:
            args += ["--group-size", str(self.group_size), "--ratio", str(self.ratio)]
            args += ["--group-size-fallback", self.group_size_fallback]
        if self.sym:
            args.append("--sym")
        if self.dataset:
            args += ["--dataset", self.dataset]
            for flag in ("awq", "scale_estimation", "gptq", "lora_correction"):
                if getattr(self, flag):
                    args.append("--" + flag.replace("_", "-"))
            if self.sensitivity_metric:
                args += ["--sensitivity-metric", self.sensitivity_metric]
            if self.num_samples:
                args += ["--num-samples", str(self.num_samples)]
        if self.trust_remote_code:
            args.append("--trust-remote-code")
        return args

    def describe(self) -> str:
        """A short label, e.g. "int4 sym g128 r0.6 +awq+se"."""
        if not self.four_bit:
            return f"{self.weight_format} {'sym' if self.sym else 'asym'}"
        label = f"{self.weight_format} {'sym' if self.sym else 'asym'} g{self.group_size} r{self.ratio}"
        methods = [
            m
            for m, on in (
                ("awq", self.awq),
                ("se", self.scale_estimation),
                ("gptq", self.gptq),
                ("lora", self.lora_correction),
            )
            if on
        ]
        return label + "".join(f" +{m}" for m in methods)


def data_aware(flags: ExportFlags) -> ExportFlags:
    """`flags` plus AWQ and scale estimation on the shipped calibration texts (the balanced profile)."""
    return replace(flags, dataset="ovchat", awq=True, scale_estimation=True)


REFERENCE = ExportFlags()
PROFILES: dict[str, ExportFlags] = {
    "gguf": replace(REFERENCE, group_size=32, ratio=1.0, sym=False, group_size_fallback="error"),
    "balanced": data_aware(REFERENCE),
    "reference": REFERENCE,
    "speed": replace(REFERENCE, ratio=1.0),
    "quality": replace(REFERENCE, weight_format="int8"),
}
LAUNCHER = "ovchat_build.optimum_launch"  # run as a module (python -m) by the build env's python


def export_command(hf_dir: Path, out: Path, flags: ExportFlags) -> list[str]:
    """The optimum-cli command line for this export (as recorded in the manifest)."""
    return ["optimum-cli", "export", "openvino", "-m", str(hf_dir), *flags.cli_args(), str(out)]


def run_export(hf_dir: Path, out: Path, flags: ExportFlags) -> tuple[list[str], str]:
    """Run optimum-cli; stream its output and keep it for the manifest.

    optimum-cli writes a 16-bit IR to a temporary folder before compressing it (7.4 GB at 3.8 B),
    and leaves it behind when it is killed: it gets a folder of its own beside `out`, named like the
    build's partial folders (pid last) so that a killed build's leftovers are swept up with them.
    """
    command = export_command(hf_dir, out, flags)
    print("[build] " + " ".join(command), flush=True)
    launcher = [sys.executable, "-m", LAUNCHER, *command[1:]]
    prefix, _, pid = out.name.rpartition("-")
    scratch = out.with_name(f"{prefix}-tmp-{pid}")
    scratch.mkdir(parents=True, exist_ok=True)
    # optimum-intel 2.2.0 crashes in its `--dataset auto` path when HF_HUB_OFFLINE is set
    # ("Path.replace() takes 2 positional arguments"); the source is a local folder by now, so the
    # export needs no hub either way.
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"} | {"TMPDIR": str(scratch)}
    try:
        lines, code = _stream(launcher, env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log = "".join(lines)
    if code != 0:
        tail = [ln.strip() for ln in lines if ln.strip()][-1:] or ["no output"]
        raise ExportError(f"optimum-cli export failed (exit {code}): {tail[0]}")
    return command, log


def _stream(command: list[str], env: dict[str, str]) -> tuple[list[str], int]:
    """Run `command`, echoing its output; a build stopped meanwhile (SIGTERM, Ctrl-C) stops it too."""
    lines = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.append(line)
                print(line, end="", flush=True)
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    return lines, proc.returncode


def flags_summary(flags: ExportFlags) -> dict[str, Any]:
    """The flags that matter for a manifest, without the unset data-aware ones."""
    from dataclasses import asdict

    return {
        k: v for k, v in asdict(flags).items() if v not in (None, False) or k in ("sym", "trust_remote_code")
    }
