#!/usr/bin/env python3
"""GGUFs of the seed-size fixture, made by llama.cpp's own tools: the peer's files for `make bench-seed`.

usage: seed_gguf.py SOURCE_FOLDER OUT_DIR

SOURCE_FOLDER is the random-weight Phi-3-mini-shape checkpoint (tests/fixtures/make_random_phi3.py
--size mini). llama.cpp's convert_hf_to_gguf.py writes it as F16, llama-quantize makes Q4_0 and
Q4_K_M from that, and the F16 intermediate (7.9 GB) is removed. Two adjustments, both outside the
weights, let llama.cpp read the fixture's vocabulary (SmolLM2's BPE plus Phi-3's chat tokens):
- the converter's transformers does not know the class name "TokenizersBackend" that newer
  transformers write: a hard-linked copy of the folder names it "GPT2Tokenizer";
- llama.cpp gives a model whose name contains "phi3" SentencePiece tokens (`</s>`, `<unk>`, `<s>`)
  the fixture's BPE vocabulary does not have, and stops with "unordered_map::at": the files are
  named "random-seed-3.8b".
Runs in the build env (transformers, torch); the tools come from scripts/dev/llama_cpp_tools.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lib.paths import ROOT

LLAMA = ROOT / "build" / "llama.cpp"
TREE = LLAMA / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
QUANTIZE = LLAMA / "build" / "bin" / "llama-quantize"
NAME = "random-seed-3.8b"
TYPES = ("Q4_0", "Q4_K_M")


def converter_copy(source: Path, work: Path) -> Path:
    """A hard-linked copy of `source` whose tokenizer_config names a class the converter knows."""
    copy = work / f"{source.name}-for-gguf"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    for item in source.iterdir():
        if item.name != "tokenizer_config.json":
            os.link(item, copy / item.name)
    config = json.loads((source / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "GPT2Tokenizer"
    (copy / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return copy


def run(command: list[str | Path], **extra: object) -> None:
    print("[seed-gguf] " + " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True, **extra)  # type: ignore[call-overload]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", type=Path, metavar="SOURCE_FOLDER")
    parser.add_argument("out", type=Path, metavar="OUT_DIR")
    args = parser.parse_args()
    source, out = args.source, args.out
    targets = {kind: out / f"seed-3.8b.{kind}.gguf" for kind in TYPES}
    if all(path.exists() for path in targets.values()):
        return 0
    run(["bash", ROOT / "scripts" / "dev" / "llama_cpp_tools.sh", sys.executable])
    out.mkdir(parents=True, exist_ok=True)
    copy = converter_copy(source, out)
    f16 = out / f"{NAME}.f16.gguf"
    env = {**os.environ, "PYTHONPATH": str(TREE / "gguf-py")}
    try:
        run([sys.executable, TREE / "convert_hf_to_gguf.py", copy, "--outtype", "f16",
             "--model-name", NAME, "--outfile", f16], env=env)  # fmt: skip
        for kind, target in targets.items():
            partial = target.with_suffix(".partial")
            run([QUANTIZE, f16, partial, kind], stdout=subprocess.DEVNULL)
            partial.rename(target)
    finally:
        f16.unlink(missing_ok=True)
        shutil.rmtree(copy, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
