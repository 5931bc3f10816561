"""The runtime never needs torch, transformers or optimum: not installed, never imported; nor does it
import the model build (ovchat_build), which may."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("torch", "transformers", "optimum")
BUILD_PACKAGE = "ovchat_build"
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
    never = (*FORBIDDEN, *SERVER_ONLY, BUILD_PACKAGE)
    code = (
        "import sys\n"
        "from ovchat.cli.main import cli\n"
        f"sys.argv = ['ovchat', 'ask', '--model', {str(model_dir)!r}, '-n', '4', 'hi']\n"
        "try:\n    cli()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {never!r})\n"
        "assert 'openvino_genai' in sys.modules\n"
        "print('IMPORTED:', ','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("IMPORTED:")


def test_the_command_skips_openvinos_model_converter(model_dir: Path) -> None:
    """`ovchat` never converts models: importing openvino's converter cost 60-80 ms of each cold start."""
    code = (
        "import sys\n"
        "from ovchat.cli.main import main\n"
        f"sys.argv = ['ovchat', 'ask', '--model', {str(model_dir)!r}, '-n', '2', 'hi']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('openvino.tools.ovc') and sys.modules[m])\n"
        "print('CONVERTER:', ','.join(loaded))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("CONVERTER:")
    # ...while the library, which embedders may use to convert models, keeps it.
    library = "import openvino, sys\nprint(callable(getattr(openvino, 'convert_model', None)))"
    assert (
        subprocess.run([sys.executable, "-c", library], capture_output=True, text=True).stdout.strip()
        == "True"
    )
