"""The runtime never needs torch, transformers or optimum: not installed, never imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("torch", "transformers", "optimum")
# The bare CLI does not need the `serve` extra: it must not even import it.
SERVER_ONLY = ("fastapi", "uvicorn", "starlette", "pydantic", "prometheus_client", "jsonschema")


def test_runtime_env_has_no_torch_transformers_or_optimum() -> None:
    code = (
        "import importlib.util, sys\n"
        f"found = [m for m in {FORBIDDEN!r} if importlib.util.find_spec(m)]\n"
        "print(','.join(found))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_running_ovchat_imports_none_of_them(model_dir: Path) -> None:
    code = (
        "import sys\n"
        "from ovchat.cli import cli\n"
        f"sys.argv = ['ovchat', 'ask', '--model', {str(model_dir)!r}, '-n', '4', 'hi']\n"
        "try:\n    cli()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN + SERVER_ONLY!r})\n"
        "assert 'openvino_genai' in sys.modules\n"
        "print('IMPORTED:', ','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("IMPORTED:")
