"""The build pipeline: real optimum-cli exports, real OpenVINO checks, no mocks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import openvino_genai as ov_genai
import pytest

from conftest import (
    BUILD_COMMAND,
    BUILD_PYTHON,
    DEFAULT_MODEL_NAME,
    ROOT,
    build_env,
    embedded_gguf,
    hf_source_folder,
    run_build,
)

ROUND_TRIP = [
    "plain ASCII text, 42 + 58 = 100.",
    "Crème brûlée à la française, Größe, ñandú",
    "漢字かな交じり文 / 简体中文 / 한국어",
    "emoji 🧪🐍🚀 and ZWJ 👩‍💻",
    "    indented code:\n\tfor i in range(3):\n        print(i)  # done\n\n",
    "<|im_start|>user\nspecial tokens survive<|im_end|>\n",
]


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_build_manifest_matches_files_on_disk(model_dir: Path, manifest: dict) -> None:
    assert manifest["source"]["kind"] == "embedded"
    assert manifest["source"]["inputs"][0]["sha256"] == sha256(embedded_gguf())
    on_disk = sorted(p.name for p in model_dir.iterdir() if p.name != "manifest.json")
    assert sorted(f["path"] for f in manifest["files"]) == on_disk
    for entry in manifest["files"]:
        file = model_dir / entry["path"]
        assert file.stat().st_size == entry["size"]
        assert sha256(file) == entry["sha256"], entry["path"]
    assert {"optimum-intel", "nncf", "openvino", "transformers"} <= set(manifest["versions"])
    export = manifest["export"]
    flags = export["flags"]
    # The embedded GGUF is Q4_1: the default build carries its own grid (int4 asym, groups of 32).
    assert export["profile"] == "gguf"
    assert (flags["weight_format"], flags["group_size"], flags["ratio"], flags["sym"]) == (
        "int4",
        32,
        1.0,
        False,
    )
    assert export["gguf_grid"] == {"type": "Q4_1", "tensors": 210, "zero_point": "f16"}
    modes = [row["mode"] for row in manifest["bitwidth_distribution"]]
    assert "int4_asym, group size 32" in modes and any(m.startswith("int8") for m in modes)
    assert manifest["group_sizes_used"] == ["32"] and export["group_size_adjusted"] is False
    # The folder travels (wheel, image): no absolute path of the build machine goes with it.
    assert str(ROOT) not in json.dumps(manifest)
    assert export["command"][export["command"].index("-m") + 1].startswith("build/sources/")
    assert export["command"][-1] == DEFAULT_MODEL_NAME  # the folder the runtime looks for
    assert manifest["context_length"] == 8192
    assert manifest["build_seconds"] > 0
    # The chat check opened the folder through the runtime, with the properties the gate chose: f32
    # only where the CPU's default precision was refused (bf16 drifts on some CPUs' kernels, not others).
    passed_in_f32 = "default_precision_rejected" in manifest["fidelity"]
    assert manifest["runtime"] == ({"INFERENCE_PRECISION_HINT": "f32"} if passed_in_f32 else {})
    assert manifest["verification"]["chat"]["runtime"] == manifest["runtime"]


def test_tokenizer_ir_round_trips_text_exactly(model_dir: Path, manifest: dict) -> None:
    assert all(manifest["verification"]["round_trip"].values())
    tokenizer = ov_genai.Tokenizer(str(model_dir))
    for text in ROUND_TRIP:
        ids = tokenizer.encode(text, add_special_tokens=False).input_ids.data[0].tolist()
        assert tokenizer.decode(ids, skip_special_tokens=False) == text


def test_eos_is_im_end_and_chat_answers_stop_there(model_dir: Path) -> None:
    tokenizer = ov_genai.Tokenizer(str(model_dir))
    assert (tokenizer.get_eos_token_id(), tokenizer.get_eos_token()) == (2, "<|im_end|>")
    # <|im_end|> first, then <|endoftext|>: llama.cpp ends an answer on both (GenAI's stop tokens).
    assert json.loads((model_dir / "generation_config.json").read_text())["eos_token_id"] == [2, 0]
    # No BOS is prepended: the ChatML template carries its own special tokens.
    assert (
        tokenizer.encode("hi", add_special_tokens=True).input_ids.data[0].tolist()
        == tokenizer.encode("hi", add_special_tokens=False).input_ids.data[0].tolist()
    )
    pipe = ov_genai.LLMPipeline(str(model_dir), "CPU", ATTENTION_BACKEND="SDPA")
    history = ov_genai.ChatHistory([{"role": "user", "content": "What is the capital of France?"}])
    result = pipe.generate(history, max_new_tokens=100)
    assert "Paris" in result.texts[0]
    assert result.finish_reasons[0] == ov_genai.GenerationFinishReason.STOP
    assert "Ġ" not in result.texts[0]


def test_rerun_with_same_inputs_is_a_no_op(model_dir: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    result = run_build()
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before


def test_the_fingerprint_covers_every_file_of_the_build_package(tmp_path: Path) -> None:
    from ovchat_build.recipe import code_digest

    package = tmp_path / "ovchat_build"
    shutil.copytree(ROOT / "src" / "ovchat_build", package, ignore=shutil.ignore_patterns("__pycache__"))
    original = code_digest(package=package)
    assert original == code_digest()  # the copy is faithful
    for changed in ("gguf/importer.py", "gguf/grid.py", "export/profiles.py", "fidelity/texts/languages.txt"):
        text = (package / changed).read_text()
        (package / changed).write_text(text + "\n")
        assert code_digest(package=package) != original, changed
        (package / changed).write_text(text)
    (package / "new_step.py").write_text("# a build module added later\n")
    assert code_digest(package=package) != original
    (package / "new_step.py").unlink()
    assert code_digest(package=package) == original


@pytest.mark.build
def test_gguf_file_builds_with_overridden_flags(model_dir: Path, tmp_path: Path) -> None:
    # The flags are the point, not fidelity (int8's gate is measured in FIDELITY.md): skip it.
    args = ["--out-dir", str(tmp_path), "--weight-format", "int8", "--skip-fidelity"]
    result = run_build(str(embedded_gguf()), *args)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = tmp_path / "smollm2-135m-instruct.q4-1-int8"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "gguf"
    assert manifest["export"]["flags"]["weight_format"] == "int8"
    assert "--group-size" not in manifest["export"]["command"]
    assert all(not row["mode"].startswith("int4") for row in manifest["bitwidth_distribution"])
    assert manifest["verification"]["chat"]["answer"].strip()


@pytest.mark.build
def test_killed_build_publishes_nothing_and_the_rerun_completes(model_dir: Path, tmp_path: Path) -> None:
    source = hf_source_folder()
    # The fidelity step is not what this test is about: skip it to keep the suite fast.
    args = [
        str(BUILD_COMMAND),
        str(source),
        "--out-dir",
        str(tmp_path),
        "--name",
        "m",
        "--skip-fidelity",
        "--profile",
        "reference",  # data-free: the rerun below stays quick
    ]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=build_env(), start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".partial-m-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.glob(".partial-m-*")), "the build never started exporting"
    time.sleep(4)  # well inside optimum-cli's export
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "m").exists()

    result = run_build(*args[1:])
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["source"]["kind"] == "hf-folder"
    assert not list(tmp_path.glob(".partial-*")), "the stale partial folder was not cleaned up"


@pytest.mark.build
def test_sigterm_stops_the_export_and_leaves_nothing_behind(model_dir: Path, tmp_path: Path) -> None:
    args = [str(BUILD_COMMAND), str(hf_source_folder()), "--out-dir", str(tmp_path),
            "--name", "m", "--skip-fidelity", "--profile", "reference"]  # fmt: skip
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=build_env()
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".partial-m-tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.glob(".partial-m-tmp-*")), "the export never got its temporary folder"
    time.sleep(4)  # well inside optimum-cli's export
    children = [
        int(c) for t in Path(f"/proc/{proc.pid}/task").iterdir() for c in (t / "children").read_text().split()
    ]
    assert children, "the export runs in a child process"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "ovchat-build: stopped (SIGTERM); nothing was published"
    assert not list(tmp_path.iterdir()), "a partial or temporary folder was left"
    assert not any(Path(f"/proc/{child}").exists() for child in children), "the export kept running"


def in_hub_cache(folder: Path, home: Path, repo: str) -> Path:
    """`folder` moved into a Hugging Face cache under `home` as `hf download` leaves it: the snapshot's
    files are links into blobs/ (the cache lives under ~/.cache, whose name once hid every file)."""
    cache = home / ".cache" / "huggingface" / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = cache / "snapshots" / ("5f3a" * 10)
    snapshot.mkdir(parents=True)
    (cache / "blobs").mkdir()
    for file in sorted(folder.iterdir()):
        blob = cache / "blobs" / sha256(file)
        file.rename(blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    return snapshot


@pytest.mark.build
def test_random_phi3_checkpoint_builds_and_runs(model_dir: Path, tmp_path: Path) -> None:
    made_at = tmp_path / "made"
    made = subprocess.run(
        [
            str(BUILD_PYTHON),
            str(ROOT / "tests" / "fixtures" / "make_random_phi3.py"),
            str(hf_source_folder()),
            str(made_at),
        ],
        capture_output=True,
        text=True,
        env=build_env(),
    )
    assert made.returncode == 0, made.stderr[-2000:]
    # Built from where `hf download` keeps checkpoints, and named after its repository.
    checkpoint = in_hub_cache(made_at, tmp_path, "ovchat/phi3-random")
    # Default export flags; random weights cannot answer a question nor be judged for fidelity.
    result = run_build(str(checkpoint), "--out-dir", str(tmp_path), "--no-chat-check", "--skip-fidelity")
    assert result.returncode == 0, result.stderr[-2000:]
    folder = tmp_path / "phi3-random-int4"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["export"]["flags"]["group_size"] == 128
    # The default profile calibrates on the shipped texts, rendered through Phi-3's own template.
    assert manifest["export"]["flags"]["dataset"] == "ovchat"
    assert "[build] calibration: 128 shipped samples, up to 64 tokens each" in result.stdout
    assert set(manifest["steps"]) == {"hash", "export", "verify"}
    assert manifest["export"]["group_size_adjusted"] is True

    pipe = ov_genai.LLMPipeline(str(folder), "CPU", ATTENTION_BACKEND="SDPA")
    tokenizer = pipe.get_tokenizer()
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert prompt == "<|user|>\nhi<|end|>\n<|assistant|>\n"
    result_text = pipe.generate([prompt], max_new_tokens=8, ignore_eos=True, apply_chat_template=False)
    assert result_text.perf_metrics.get_num_generated_tokens() == 8


def test_hub_id_offline_fails_fast_with_a_clear_message() -> None:
    started = time.monotonic()
    result = run_build("microsoft/Phi-3-mini-4k-instruct")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "ovchat-build DIR" in result.stderr and "microsoft/Phi-3-mini-4k-instruct" in result.stderr
    assert time.monotonic() - started < 60  # generous: "fast" means no long network wait


def checkpoint(folder: Path, cut: int = 0, shards: int = 1) -> Path:
    """A checkpoint folder with one safetensors file of 64 bytes of weights, cut short by `cut`
    bytes; with `shards` > 1 an index names shards that are not there."""
    (folder / "config.json").write_text('{"model_type": "llama"}')
    header = json.dumps({"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}}).encode()
    data = len(header).to_bytes(8, "little") + header + bytes(64)
    (folder / "model.safetensors").write_bytes(data[: len(data) - cut])
    if shards > 1:
        names = ["model.safetensors"] + [f"model-{i}.safetensors" for i in range(2, shards + 1)]
        (folder / "model.safetensors.index.json").write_text(
            json.dumps({"weight_map": {f"w{i}": name for i, name in enumerate(names)}})
        )
    return folder


@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        (lambda tmp: tmp / "missing.gguf", "source not found"),
        (lambda tmp: tmp, "not a Hugging Face checkpoint"),
        (
            lambda tmp: (tmp / "junk.gguf").write_bytes(b"not a gguf at all") and tmp / "junk.gguf",
            "junk.gguf is not a GGUF file",
        ),
        (lambda tmp: (tmp / "notes.txt").write_text("hi") and tmp / "notes.txt", "neither a .gguf file"),
        (lambda tmp: checkpoint(tmp, cut=10), "model.safetensors is truncated"),
        (lambda tmp: checkpoint(tmp, shards=2), "lacks 1 of its 2 weight shards"),
        (lambda tmp: checkpoint(tmp, cut=200), "is not a safetensors file"),
    ],
)
def test_bad_sources_fail_with_one_clear_line(make_source, message: str, tmp_path: Path) -> None:
    source = make_source(tmp_path)
    result = run_build(str(source), "--out-dir", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
