"""Running optimum-cli's export: its command line as the manifest records it, its output streamed
and kept, a stopped build stopping it too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ovchat_build.export.profiles import ExportFlags


class ExportError(Exception):
    """optimum-cli failed; the message holds its last line."""


LAUNCHER = "ovchat_build.export.optimum_launch"  # run as a module (python -m) by the build env's python


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
