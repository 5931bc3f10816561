"""optimum-cli's own entry point, seeded, with ovchat's shipped calibration texts as `--dataset ovchat`.

Usage (build env): python -m ovchat_build.export.optimum_launch export openvino -m HF_DIR ... OUT
(optimum-cli's arguments)

`--dataset auto` has the unquantized model write its own calibration text, one token at a time:
45 minutes of a 66-minute export at Phi-3-mini's 3.8 B on this 2-core box. `--dataset ovchat`
feeds NNCF the texts in calibration/ instead (chat through the model's own template, prose, code,
several languages, none of them the fidelity texts), as llama.cpp's imatrix files are shipped.
optimum-cli takes a dataset by name only; its Python API takes a list of strings, so the one
place the CLI builds its weight-compression config gets the list. Everything else is optimum-cli.
"""

from __future__ import annotations

import json
import sys
from itertools import zip_longest
from pathlib import Path
from typing import Any

CALIBRATION_FILE = Path(__file__).resolve().with_name("calibration") / "calibration.jsonl"
SHIPPED = "ovchat"
DEFAULT_SAMPLES = 128  # optimum-intel's own default for --num-samples
# Each sample is cut to this many tokens (`--dataset ovchat:seq_len=N`, optimum's own syntax, says
# otherwise). Statistics collection runs the model over every token: at 135 M, 128 samples of 128
# tokens took 45 s of a 98 s export, which scaled to 3.8 B would be ~18 minutes; NNCF's `auto`
# texts are 32 tokens.
SAMPLE_TOKENS = 64
# optimum-intel 2.2.0 caps Gemma 3's export at transformers 5.0 (the build env has 5.5.4), but the
# export is right with it: the random-weight gemma3 fixture's IR (fp32, f32 inference, dynamic
# quantization off) equals torch to 1e-5 with the same argmax at all 601 positions, 89 past its
# 512-token sliding window. The gate measures every build against torch anyway. Gemma 1 and 2 keep
# the cap (not verified here).
LIFTED_CAPS = ("Gemma3TextOpenVINOConfig",)


def load_samples(path: Path = CALIBRATION_FILE) -> list[dict[str, Any]]:
    """The shipped samples, kinds interleaved so that any first N of them are a varied mix."""
    samples = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        by_kind.setdefault(_kind(sample), []).append(sample)
    mixed = zip_longest(*by_kind.values())
    return [sample for row in mixed for sample in row if sample is not None]


def _kind(sample: dict[str, Any]) -> str:
    topic = str(sample.get("topic", ""))
    return "code" if topic.startswith("code") else "lang" if topic.startswith("lang") else sample["kind"]


def render(sample: dict[str, Any], tokenizer: Any) -> str:
    """A chat through the model's own template (plain "role: text" lines without one); text as is."""
    if sample["kind"] != "chat":
        return str(sample["text"])
    if getattr(tokenizer, "chat_template", None):
        return str(tokenizer.apply_chat_template(sample["messages"], tokenize=False))
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in sample["messages"])


def calibration_texts(model_dir: str, count: int | None, tokens: int = SAMPLE_TOKENS) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = []
    for sample in load_samples()[: count or DEFAULT_SAMPLES]:
        ids = tokenizer(render(sample, tokenizer), add_special_tokens=False).input_ids[:tokens]
        texts.append(tokenizer.decode(ids))
    return texts


def use_shipped_calibration() -> None:
    """Let optimum-cli's weight-compression config take the shipped texts for `--dataset ovchat`."""
    import optimum.commands.export.openvino as command

    build_config = command.prepare_wc_config

    def prepare_wc_config(args: Any, defaults: Any) -> dict[str, Any]:
        config: dict[str, Any] = build_config(args, defaults)
        name, _, options = str(args.dataset).partition(":")
        if name == SHIPPED:
            tokens = int(options.removeprefix("seq_len=")) if options else SAMPLE_TOKENS
            config["dataset"] = calibration_texts(args.model, args.num_samples, tokens)
            print(f"[build] calibration: {len(config['dataset'])} shipped samples, up to {tokens} "
                  "tokens each", flush=True)  # fmt: skip
        return config

    command.prepare_wc_config = prepare_wc_config


def lift_verified_caps() -> None:
    """Let the export configs in LIFTED_CAPS run with the installed transformers."""
    import optimum.exporters.openvino.model_configs as configs
    import transformers

    for name in LIFTED_CAPS:
        getattr(configs, name).MAX_TRANSFORMERS_VERSION = transformers.__version__


def main() -> None:
    import torch
    from optimum.commands.optimum_cli import main as optimum_cli

    torch.manual_seed(0)  # `--dataset auto` samples its text from the model: same source, same IR
    use_shipped_calibration()
    lift_verified_caps()
    sys.argv[0] = "optimum-cli"
    optimum_cli()


if __name__ == "__main__":
    main()
