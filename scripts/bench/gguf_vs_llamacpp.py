"""How faithful ovchat's build of a GGUF is to llama.cpp running the same file.

For each fixture type (scripts/dev/gguf_fixtures.sh): build it with its own grid (the gate skipped:
this table is the measurement), let llama-perplexity compute llama.cpp's own logits on the shipped
fidelity texts (--kl-divergence-base saves them with the tokens), run the IR teacher-forced on the
same tokens, and compare position by position: top-1 agreement with llama.cpp's next token, and
the perplexity ratio IR / llama.cpp. The table replaces FIDELITY.md's section between its markers.

Usage: build/venv-build/bin/python scripts/bench/gguf_vs_llamacpp.py [TYPE...]   (make fidelity-gguf)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.paths import FIDELITY, ROOT
from lib.sections import replace_marked
from ovchat_build.fidelity.eval_set import TEXTS_DIR
from ovchat_build.fidelity.ir_model import IRModel

FIXTURES = ROOT / "build" / "fixtures" / "gguf"
WORK = ROOT / "build" / "gguf-fidelity"
PERPLEXITY = ROOT / "build" / "llama.cpp" / "build" / "bin" / "llama-perplexity"
TEXTS = sorted(TEXTS_DIR.glob("*.txt"))
TYPES = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0"]
CONTEXT = 256  # llama-perplexity scores the second half of each window of this many tokens
BEGIN, END = "<!-- gguf-vs-llamacpp -->", "<!-- /gguf-vs-llamacpp -->"


@dataclass(frozen=True)
class Row:
    kind: str
    grid: str
    agreement: dict[str, float]  # precision (or "torch": the file dequantized) -> top-1 agreement
    ppl_ratio: dict[str, float]
    llama_ppl: float
    positions: int
    ir_mb: float
    bits_per_weight: float
    build_seconds: float


def build(kind: str) -> Path:
    fixture = FIXTURES / f"smollm2-{kind}.gguf"
    subprocess.run([str(ROOT / "scripts" / "dev" / "gguf_fixtures.sh"), kind], check=True)
    name = f"smollm2-{kind.lower()}"
    command = [sys.executable, "-m", "ovchat_build", str(fixture)]
    command += ["--out-dir", str(WORK / "models"), "--name", name, "--skip-fidelity", "--no-chat-check"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return WORK / "models" / name


def llama_logits(fixture: Path, base: Path) -> float:
    """llama.cpp's perplexity on the texts; its log-probabilities and tokens go to `base`."""
    text = WORK / "texts.txt"
    text.write_text("\n\n".join(p.read_text() for p in TEXTS))
    command = [str(PERPLEXITY), "-m", str(fixture), "-f", str(text), "-c", str(CONTEXT), "-b", str(CONTEXT)]
    command += ["--kl-divergence-base", str(base), "-t", "2"]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Final estimate: PPL = ([\d.]+)", out.stdout + out.stderr)
    assert found, out.stderr[-2000:]
    return float(found.group(1))


def read_base(base: Path) -> tuple[np.ndarray, np.ndarray]:
    """The windows' tokens [chunks, context] and llama.cpp's top-1 token for each scored position.

    The file (perplexity.cpp): "_logits_", n_ctx, n_vocab, n_chunk (int32), the tokens, then per
    scored position 2 floats (scale, min log-prob) and n_vocab 16-bit codes of the log-probs."""
    raw = base.read_bytes()
    assert raw[:8] == b"_logits_"
    n_ctx, n_vocab, n_chunk = np.frombuffer(raw, np.int32, 3, 8)
    tokens = np.frombuffer(raw, np.int32, n_chunk * n_ctx, 20).reshape(n_chunk, n_ctx)
    width = 2 * ((n_vocab + 1) // 2) + 4
    scored = n_ctx - 1 - n_ctx // 2
    codes = np.frombuffer(raw, np.uint16, offset=20 + tokens.nbytes).reshape(n_chunk, scored, width)
    return tokens, codes[..., 4 : 4 + n_vocab].argmax(axis=-1)


def compare(
    ir_dir: Path, tokens: np.ndarray, llama_top: np.ndarray, precision: str | None
) -> tuple[float, float]:
    """Top-1 agreement with llama.cpp and the IR's perplexity, on the positions llama.cpp scores."""
    ir = IRModel(ir_dir, precision)
    return score(lambda window: ir.logits([int(t) for t in window]), tokens, llama_top)


def compare_torch(checkpoint: Path, tokens: np.ndarray, llama_top: np.ndarray) -> tuple[float, float]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()

    def logits(window: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = model(torch.tensor(window[None].astype(np.int64))).logits[0].numpy()
        return out

    return score(logits, tokens, llama_top)


def score(
    run: Callable[[np.ndarray], np.ndarray], tokens: np.ndarray, llama_top: np.ndarray
) -> tuple[float, float]:
    first = tokens.shape[1] // 2
    same, nll, count = 0, 0.0, 0
    for window, top in zip(tokens, llama_top, strict=True):
        logits = run(window).astype(np.float64)[first:-1]
        targets = window[first + 1 :]
        log_z = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        nll += float((log_z - logits[np.arange(len(targets)), targets]).sum())
        same += int((logits.argmax(-1) == top).sum())
        count += len(targets)
    return same / count, float(np.exp(nll / count))


def measure(kind: str) -> Row:
    started = time.monotonic()
    ir_dir = build(kind)
    manifest = json.loads((ir_dir / "manifest.json").read_text())
    seconds = manifest.get("build_seconds", time.monotonic() - started)
    fixture = FIXTURES / f"smollm2-{kind}.gguf"
    base = WORK / f"{kind}.kld"
    llama_ppl = llama_logits(fixture, base)
    tokens, llama_top = read_base(base)
    agreement, ratio = {}, {}
    for precision in ("f32", "bf16"):
        agreement[precision], ppl = compare(ir_dir, tokens, llama_top, precision)
        ratio[precision] = ppl / llama_ppl
    # The ceiling: the file's exact weights in torch float32 (the checkpoint the build converted).
    [checkpoint] = (ROOT / "build" / "sources").glob(f"smollm2-{kind}-*")
    agreement["torch"], ppl = compare_torch(checkpoint, tokens, llama_top)
    ratio["torch"] = ppl / llama_ppl
    size = sum(p.stat().st_size for p in ir_dir.glob("openvino_model.*"))
    import gguf

    weights = sum(int(t.n_elements) for t in gguf.GGUFReader(fixture).tensors)
    grid = manifest["export"]["gguf_grid"]
    carried = grid.get("per_type", {grid["type"]: grid["tensors"]})
    return Row(
        kind,
        # The all-Q4_1 path (the embedded model's) records its linear layers only: NNCF re-quantizes
        # the embedding table to int8 there.
        ", ".join(f"{n} {k}" for k, n in sorted(carried.items())),
        agreement,
        ratio,
        llama_ppl,
        int(llama_top.size),
        size / 1e6,
        size * 8 / weights,
        float(seconds),
    )


def table(rows: list[Row]) -> str:
    lines = [
        BEGIN,
        "| file (llama-quantize type) | tensors carried | top-1 vs llama.cpp: IR f32 / IR bf16 / torch f32 "
        "| PPL ratio to llama.cpp: IR f32 / IR bf16 / torch f32 | llama.cpp PPL | IR MB | bits/weight "
        "| build s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    columns = ("f32", "bf16", "torch")
    for r in rows:
        lines.append(
            f"| {r.kind} | {r.grid} | {' / '.join(f'{r.agreement[k]:.4f}' for k in columns)} "
            f"| {' / '.join(f'{r.ppl_ratio[k]:.4f}' for k in columns)} | {r.llama_ppl:.3f} "
            f"| {r.ir_mb:.1f} | {r.bits_per_weight:.2f} | {r.build_seconds:.0f} |"
        )
    lines.append(f"\n{rows[0].positions if rows else 0} scored positions, windows of {CONTEXT} tokens. {END}")
    return "\n".join(lines)


def write(rows: list[Row], path: Path = FIDELITY) -> None:
    path.write_text(replace_marked(path.read_text(), BEGIN, END, table(rows)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("types", nargs="*", metavar="TYPE", help=f"default: {' '.join(TYPES)}")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in args.types or TYPES:
        rows.append(measure(kind))
        print(table(rows[-1:]), flush=True)
        write(rows)  # row by row: an interrupted run keeps what it measured
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
