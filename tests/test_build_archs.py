"""Every architecture the build takes, from an HF folder and from a GGUF: it builds, passes the
fidelity gate, and chats through its family's own template and stop token.

The fixtures are the embedded SmolLM2 dressed as each family (scripts/dev/arch_fixtures.py, cached
under build/fixtures/archs): qwen2, mistral and phi3 carry its own weights, so their greedy answers
must equal the llama original's token for token (built the same way: the Q8_0 GGUF's own grid, or
int8 per channel from the HF folder); qwen3 and gemma3 are random and small, so their chat is checked
for its template and stop token, not for an answer (random weights never stop on their own). Gemma 3
builds past optimum-intel's transformers cap, which the build lifts for it (optimum_launch.py).

The default suite builds one representative, Phi-3 from its GGUF (fused q/k/v and gate/up, real
weights, a file openvino-genai's own reader refuses). `make test-archs` (OVCHAT_TEST_ARCHS=1) builds
the whole matrix. Builds are cached under build/test-archs/models: a second run is the
fingerprint check only (`make test-fixtures` builds the Phi-3 one before `make test`'s pytest).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import openvino as ov
import openvino_genai as ov_genai
import pytest
from click.testing import CliRunner

from conftest import BUILD_PYTHON, ROOT, build_env, hf_source_folder, run_build
from ovchat.cli.main import cli

MODELS = ROOT / "build" / "test-archs" / "models"
GGUF_MODELS = ROOT / "build" / "test-gguf" / "models"  # test_build_gguf.py's builds, shared
REAL = ("qwen2", "mistral", "phi3")  # SmolLM2's own weights
RANDOM = ("qwen3", "gemma3")
# Each family's rendering of one user turn, and its stop token (id 2 in every fixture).
TEMPLATES = {
    "llama": "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "qwen2": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
    "<|im_start|>assistant\n",
    "qwen3": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "mistral": "<s>[INST] hi [/INST]",
    "phi3": "<|user|>\nhi<|end|>\n<|assistant|>\n",
    "gemma3": "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
}
STOPS = {
    "llama": "<|im_end|>",
    "qwen2": "<|im_end|>",
    "qwen3": "<|im_end|>",
    "mistral": "</s>",
    "phi3": "<|end|>",
    "gemma3": "<end_of_turn>",
}
QUESTIONS = (
    "What is the capital of France? Answer in one sentence.",
    "Plan a trip to Lisbon: three must-see sights.",
    "Write a Python function that reverses a string.",
)
MATRIX = os.environ.get("OVCHAT_TEST_ARCHS") == "1"
matrix_only = pytest.mark.skipif(not MATRIX, reason="the whole matrix runs under `make test-archs`")


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=build_env(), timeout=1800, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="session")
def fixtures(model_dir: Path) -> Path:
    """The dressed HF folders and GGUFs (model_dir: the default build leaves SmolLM2's checkpoint)."""
    if not BUILD_PYTHON.exists():
        pytest.fail("the build env is missing: run `make build-env` (the README's `make test` does)")
    _run([str(ROOT / "scripts" / "dev" / "llama_cpp_tools.sh"), str(BUILD_PYTHON)])  # the converter
    made = _run(
        [str(BUILD_PYTHON), str(ROOT / "scripts" / "dev" / "arch_fixtures.py"), str(hf_source_folder())]
    )
    return Path(made.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def build_of(fixtures: Path) -> Callable[[str, str], Path]:
    """The model folder of one architecture from one source ("gguf": its Q8_0 file's own grid, the
    default plan; "hf": int8 per channel, the profile SmolLM2 passes the gate with), built once."""
    done: dict[tuple[str, str], Path] = {}

    def build(arch: str, source: str) -> Path:
        if (arch, source) not in done:
            args = [str(fixtures / f"smollm2-{arch}-Q8_0.gguf")] if source == "gguf" else []
            if source == "hf":
                args = [str(fixtures / f"smollm2-{arch}"), "--profile", "quality"]
            if arch in RANDOM:
                args.append("--no-chat-check")  # random weights never end an answer on their own
            result = run_build(*args, "--out-dir", str(MODELS), timeout=1800)
            assert result.returncode == 0, result.stderr[-3000:]
            name = f"smollm2-{arch}-q8-0-gguf" if source == "gguf" else f"smollm2-{arch}-int8-quality"
            done[(arch, source)] = MODELS / name
        return done[(arch, source)]

    return build


@pytest.fixture(scope="session")
def llama_original(model_dir: Path) -> Callable[[str], Path]:
    """The undressed SmolLM2 built the same way: its Q8_0 GGUF (shared with test_build_gguf.py) or
    its HF folder at int8."""

    def build(source: str) -> Path:
        if source == "gguf":
            _run([str(ROOT / "scripts" / "dev" / "gguf_fixtures.sh"), "Q8_0"])
            gguf = ROOT / "build" / "fixtures" / "gguf" / "smollm2-Q8_0.gguf"
            result = run_build(str(gguf), "--out-dir", str(GGUF_MODELS), timeout=1800)
            folder = GGUF_MODELS / "smollm2-q8-0-gguf"
        else:
            args = [str(hf_source_folder()), "--profile", "quality", "--name", "smollm2-llama-int8-quality"]
            result = run_build(*args, "--out-dir", str(MODELS), timeout=1800)
            folder = MODELS / "smollm2-llama-int8-quality"
        assert result.returncode == 0, result.stderr[-3000:]
        return folder

    return build


def greedy_ids(folder: Path, prompts: list[list[int]]) -> list[list[int]]:
    """Greedy answers (token ids, to the stop token or 48 tokens) to the same prompt ids, in f32."""
    pipe = ov_genai.LLMPipeline(str(folder), "CPU", INFERENCE_PRECISION_HINT="f32", ATTENTION_BACKEND="SDPA")
    config = pipe.get_generation_config()
    config.do_sample, config.max_new_tokens = False, 48
    answers = []
    for ids in prompts:
        result = pipe.generate(ov.Tensor(np.array([ids], dtype=np.int64)), config)
        answers.append([int(token) for token in result.tokens[0]])
    return answers


def chatml_prompts(folder: Path) -> list[list[int]]:
    """The llama original's own chat prompts, as ids: the same input for every dressed model."""
    tokenizer = ov_genai.Tokenizer(str(folder))
    prompts = []
    for question in QUESTIONS:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True
        )
        prompts.append(tokenizer.encode(text, add_special_tokens=False).input_ids.data[0].tolist())
    return prompts


def check_build(folder: Path, arch: str, source: str) -> None:
    """The gate passed (a build publishes nothing otherwise: here its figures are on record), and a
    GGUF's own grid was carried."""
    manifest = json.loads((folder / "manifest.json").read_text())
    fidelity, export = manifest["fidelity"], manifest["export"]
    assert fidelity["tokens"]["top1_agreement"] >= fidelity["min_agreement"]
    assert fidelity["generation"]["degenerate_ir"] <= fidelity["generation"]["degenerate_source"] + 1
    if source == "gguf":
        grid = export["gguf_grid"]
        layers = 2 if arch in RANDOM else 30
        # phi3: 4 linear tensors a layer and its own output layer; the others 7 and a tied table
        expected = layers * 4 + 2 if arch == "phi3" else layers * 7 + 1
        assert export["profile"] == "gguf" and grid["per_type"] == {"Q8_0": expected}
        assert grid["max_error_vs_dequantize"] == 0.0  # Q8_0 has no minimum: the file's weights exactly
    else:
        assert export["profile"] == "quality"
    config = json.loads((folder / "config.json").read_text())
    mistral_as = "llama" if source == "gguf" else "mistral"  # llama.cpp writes Mistral as llama
    assert config["model_type"] == {"mistral": mistral_as, "gemma3": "gemma3_text"}.get(arch, arch)


def check_chat(folder: Path, arch: str) -> None:
    """The family's template and stop token; a real-weight model answers and stops on it."""
    tokenizer = ov_genai.Tokenizer(str(folder))
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert rendered == TEMPLATES[arch]
    assert (
        tokenizer.get_eos_token_id() == 2 and tokenizer.decode([2], skip_special_tokens=False) == STOPS[arch]
    )
    limit = ["-n", "8"] if arch in RANDOM else []
    result = CliRunner().invoke(cli, ["ask", "--model", str(folder), "--json", *limit, QUESTIONS[0]])
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    if arch in RANDOM:  # noise, maybe blank: the random gemma3 answers "\n" 8 times, as torch does
        assert answer["text"] and answer["metrics"]["output_tokens"] == 8
    else:
        assert answer["text"].strip()
    assert answer["finish_reason"] == ("length" if arch in RANDOM else "stop")


def check_architecture(
    arch: str, source: str, build_of: Callable[[str, str], Path], llama_original: Callable[[str], Path]
) -> None:
    folder = llama_original(source) if arch == "llama" else build_of(arch, source)
    check_build(folder, arch, source)
    check_chat(folder, arch)
    if arch in REAL:
        original = llama_original(source)
        prompts = chatml_prompts(original)
        assert greedy_ids(folder, prompts) == greedy_ids(original, prompts)


# Two builds of 135 M with their gates (the file's and the llama original's), which `make test` makes
# before pytest starts (`make test-fixtures`); run alone, 7 minutes each on a loaded 2-core machine,
# more than the suite's 900 s per test.
@pytest.mark.timeout(2400)
def test_phi3_from_its_gguf_builds_chats_and_answers_as_the_llama_original(
    build_of: Callable[[str, str], Path], llama_original: Callable[[str], Path]
) -> None:
    check_architecture("phi3", "gguf", build_of, llama_original)


@matrix_only
@pytest.mark.build
@pytest.mark.timeout(2400)
@pytest.mark.parametrize(
    ("arch", "source"),
    [
        (arch, source)
        for arch in ("llama", *REAL, *RANDOM)
        for source in ("gguf", "hf")
        if (arch, source) != ("phi3", "gguf")
    ],
)
def test_every_architecture_from_both_sources(
    arch: str, source: str, build_of: Callable[[str, str], Path], llama_original: Callable[[str], Path]
) -> None:
    check_architecture(arch, source, build_of, llama_original)


@pytest.mark.parametrize("arch", ["phi3", "gemma3"])
def test_a_gguf_genai_cannot_read_is_refused_in_one_line(arch: str, fixtures: Path) -> None:
    gguf = fixtures / f"smollm2-{arch}-Q8_0.gguf"
    result = CliRunner().invoke(cli, ["ask", "--model", str(gguf), "hi"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"is a '{arch}' model" in result.stderr and "make model SOURCE=" in result.stderr
