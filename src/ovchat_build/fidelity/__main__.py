"""`python -m ovchat_build.fidelity HF_DIR IR_DIR`: an exported IR measured against its source
checkpoint and held to the gate's criteria, outside a build (build env)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import ovchat_build.fidelity.measure as measuring
from ovchat_build.fidelity.criteria import DEFAULT_MIN_AGREEMENT, FidelityError, check
from ovchat_build.fidelity.report import format_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ovchat_build.fidelity",
        description=measuring.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("hf_dir", type=Path, help="the source Hugging Face checkpoint folder")
    parser.add_argument("ir_dir", type=Path, help="the exported model folder (openvino_model.xml)")
    parser.add_argument("--min-agreement", type=float, default=DEFAULT_MIN_AGREEMENT)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = measuring.measure(args.hf_dir, args.ir_dir)
        print(json.dumps(report.to_dict(), indent=2) if args.json else format_table(report))
        check(report, args.min_agreement)
    except FidelityError as exc:
        print(f"fidelity: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
