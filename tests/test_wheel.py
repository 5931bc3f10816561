"""ovchat installed from its wheel into a bare venv, run outside the checkout: it finds its models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT
from ovchat.model.contract import DEFAULT_MODEL_NAME

PIP = ("--disable-pip-version-check", "-q")
SOURCE_FILES = ("pyproject.toml", "README.md", "src")  # what setuptools needs to build the wheel


def run(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


def build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the sources, so setuptools writes no build/ or egg-info into the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in SOURCE_FILES:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=ignore)
        else:
            shutil.copy2(item, source / name)
    dist = tmp_path / "dist"
    result = run(sys.executable, "-m", "pip", "wheel", *PIP, "--no-deps", "-w", dist, source)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = dist.glob("ovchat-*.whl")
    return wheel


def package_files() -> set[str]:
    """Every file of the ovchat package in the checkout (any non-.py file is package data the wheel needs)."""
    package = ROOT / "src"
    return {
        str(p.relative_to(package))
        for p in (package / "ovchat").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def clean_env(home: Path) -> dict[str, str]:
    """The user's environment without anything pointing back into the checkout or at another model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVCHAT_")}
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(name, None)
    env["OVCHAT_HOME"] = str(home)
    return env


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.build
def test_the_wheel_installs_and_runs_outside_the_checkout(model_dir: Path, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    # The runtime and the model build (ovchat_build, which only runs in the build env), nothing else.
    assert not [n for n in names if not n.startswith(("ovchat/", "ovchat_build/", "ovchat-"))], names
    assert package_files() <= set(names)

    home = tmp_path / "home"
    shutil.copytree(model_dir, home / "models" / DEFAULT_MODEL_NAME)
    env, cwd = clean_env(home), tmp_path

    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv, env=env).returncode == 0
    python, ovchat = venv / "bin" / "python", venv / "bin" / "ovchat"
    result = run(python, "-m", "pip", "install", *PIP, wheel, env=env, cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]

    where = run(python, "-c", "import ovchat; print(ovchat.__file__)", env=env, cwd=cwd)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr

    assert run(ovchat, "--help", env=env, cwd=cwd).returncode == 0
    # The wheel's ovchat-build says where it runs instead of failing on a missing torch.
    build = run(venv / "bin" / "ovchat-build", env=env, cwd=cwd)
    assert build.returncode == 1 and "make build-env" in one_line(build.stderr), build.stderr

    listing = run(ovchat, "models", "--json", env=env, cwd=cwd)
    assert listing.returncode == 0, listing.stderr
    (entry,) = json.loads(listing.stdout)["models"]
    assert entry["name"] == DEFAULT_MODEL_NAME and entry["default"] and entry["problem"] is None
    assert entry["folder"] == str(home / "models")
    text = run(ovchat, "models", env=env, cwd=cwd).stdout
    assert f"* {DEFAULT_MODEL_NAME}" in text

    info = run(ovchat, "info", env=env, cwd=cwd)
    assert info.returncode == 0, info.stderr
    assert str(home / "models" / DEFAULT_MODEL_NAME) in info.stdout

    question = "What is the capital of France?"
    answer = run(ovchat, "ask", "--max-new-tokens", "8", "--temperature", "0", question, env=env, cwd=cwd)
    assert answer.returncode == 0, answer.stderr
    assert "Paris" in answer.stdout

    # Serve's FastAPI comes with an extra that the bare wheel lacks: help works, running says what to install.
    serve_help = run(ovchat, "serve", "--help", env=env, cwd=cwd)
    assert serve_help.returncode == 0 and "pip install 'ovchat[serve]'" in serve_help.stdout
    serve = run(ovchat, "serve", env=env, cwd=cwd)
    assert serve.returncode == 1 and "pip install 'ovchat[serve]'" in one_line(serve.stderr)

    empty_env = clean_env(tmp_path / "empty-home")
    missing = run(ovchat, "ask", "hi", env=empty_env, cwd=cwd)
    assert missing.returncode == 1
    error = one_line(missing.stderr)
    assert "make model" in error and "ovchat-build --user" in error
    none_listed = run(ovchat, "models", env=empty_env, cwd=cwd)
    assert none_listed.returncode == 0 and "ovchat-build --user" in one_line(none_listed.stdout)
