"""Every option docs/cli.md lists for the `ovchat` commands changes what it says it changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from conftest import embedded_gguf
from ovchat.cli.main import cli

FRANCE = "What is the capital of France?"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner(env=env).invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def ask_json(model_dir: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    code, out, err = run("ask", "--model", str(model_dir), "--json", *args, env=env)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def test_device_options_reach_the_pipeline_and_it_still_answers(model_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "compiled"
    data = ask_json(
        model_dir,
        "--performance-hint",
        "THROUGHPUT",
        "--num-streams",
        "1",
        "--threads",
        "1",
        "--attention-backend",
        "PA",
        "--cache-dir",
        str(cache),
        "--temperature",
        "0",
        FRANCE,
    )
    assert "Paris" in data["text"]
    # Paged attention on the CPU loads faster without the compiled-model cache (ovchat.model.device)...
    assert not cache.exists() or not any(cache.iterdir())
    data = ask_json(model_dir, "--attention-backend", "SDPA", "--cache-dir", str(cache), "-t", "0", FRANCE)
    assert "Paris" in data["text"]
    assert any(cache.iterdir()), "--cache-dir DIR holds the compiled SDPA model afterwards"


def test_an_empty_cache_dir_writes_no_compiled_model(model_dir: Path, tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    ask_json(model_dir, "--cache-dir", "", "-n", "2", "hi", env=env)
    assert not (tmp_path / "ovchat").exists()
    ask_json(model_dir, "-n", "2", "hi", env=env)  # the control: the default cache is under XDG_CACHE_HOME
    assert any((tmp_path / "ovchat" / "compiled").iterdir())


def test_the_attention_backend_is_the_one_asked_for(model_dir: Path) -> None:
    for backend in ("SDPA", "PA"):
        code, out, err = run(
            "bench", "-m", str(model_dir), "--attention-backend", backend,
            "--prompt-lengths", "16", "--new-tokens", "4", "--repeats", "1", "--json",
        )  # fmt: skip
        assert code == 0, err
        report = json.loads(out)
        assert report["attention_backend"] == backend
        assert report["results"][0]["prompt_tokens"] == 16 and report["peak_rss_mb"] > 50
        assert 50 < report["steady_rss_mb"] <= report["peak_rss_mb"]


def test_seed_repeats_a_sampled_answer_and_other_seeds_change_it(model_dir: Path) -> None:
    def sampled(seed: int) -> str:
        options = ("--temperature", "1.2", "--top-p", "1", "--seed", str(seed), "-n", "24")
        return str(ask_json(model_dir, *options, "Write one line about the sea.")["text"])

    first = sampled(1)
    assert sampled(1) == first
    assert any(sampled(seed) != first for seed in (2, 3, 4))


def test_top_k_one_samples_only_the_greedy_token(model_dir: Path) -> None:
    greedy = ask_json(model_dir, "--temperature", "0", "-n", "24", "Tell me about the moon.")["text"]
    top1 = ask_json(
        model_dir,
        "--temperature",
        "1.5",
        "--top-k",
        "1",
        "--seed",
        "7",
        "-n",
        "24",
        "Tell me about the moon.",
    )["text"]
    assert top1 == greedy


def test_repetition_penalty_changes_a_greedy_answer(model_dir: Path) -> None:
    prompt = "List the days of the week, then list them again."
    plain = ask_json(model_dir, "--temperature", "0", "-n", "48", prompt)["text"]
    penalised = ask_json(model_dir, "--temperature", "0", "--repetition-penalty", "1.8", "-n", "48", prompt)
    assert penalised["text"] != plain


def test_the_first_of_several_stop_strings_ends_the_answer(model_dir: Path) -> None:
    prompt = "Count from 1 to 10, separated by commas."
    whole = ask_json(model_dir, "--temperature", "0", "-n", "40", prompt)["text"]
    assert "3" in whole and "6" in whole
    stopped = ask_json(model_dir, "--temperature", "0", "-n", "40", "--stop", "6", "--stop", "3", prompt)
    assert stopped["finish_reason"] == "stop"
    assert stopped["text"] == whole[: whole.index("3")]


def test_ignore_eos_generates_max_new_tokens(model_dir: Path) -> None:
    short = ask_json(model_dir, "--temperature", "0", "-n", "60", "Say hi.")
    assert short["finish_reason"] == "stop" and short["metrics"]["output_tokens"] < 60
    long = ask_json(model_dir, "--temperature", "0", "-n", "60", "--ignore-eos", "Say hi.")
    assert long["finish_reason"] == "length" and long["metrics"]["output_tokens"] == 60


def test_ovchat_model_in_the_environment_picks_the_model(model_dir: Path) -> None:
    data = ask_json(model_dir, "-n", "2", "hi")
    assert data["model"] == model_dir.name
    code, out, err = run("ask", "--json", "-n", "2", "hi", env={"OVCHAT_MODEL": str(embedded_gguf())})
    assert code == 0, err
    assert json.loads(out)["model"] == "SmolLM2-135M-Instruct.Q4_1"  # not the default model


def test_info_text_describes_the_model_and_a_gguf_file(model_dir: Path) -> None:
    code, out, _ = run("info", "--model", str(model_dir))
    assert code == 0
    for line in ("format: OpenVINO IR folder", "context_length: 8192", "chat_template: yes", "CPU:"):
        assert line in out
    assert "fidelity: top-1 agreement 0.9" in out and "(what the fidelity gate passed with)" in out
    code, out, err = run("info", "--model", str(embedded_gguf()))
    assert code == 0, err
    assert "format: GGUF file" in out and "context_length: 8192" in out and "converted_ir: " in out
    assert "Q4_1 weights, which openvino-genai's GGUF reader imports lossily" in out  # build an IR instead
