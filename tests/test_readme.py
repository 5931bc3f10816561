"""The README is the user's first contact: its library example runs as written (its other promises,
such as `make test` being CI's command, are checked without the model in tests/unit/test_docs.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_library_example_runs_as_written(model_dir: Path, tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", section("Use it as a library"), re.S)
    assert code, "the library section has no python example"
    assert len(code.group(1).strip().splitlines()) <= 10
    # Run elsewhere than the checkout: the library finds the model through $OVCHAT_MODEL.
    env = {**os.environ, "OVCHAT_MODEL": str(model_dir)}
    result = subprocess.run(
        [sys.executable, "-c", code.group(1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    saved = json.loads((tmp_path / "conversation.json").read_text())
    assert [m["role"] for m in saved["messages"]] == ["system", "user", "assistant", "user", "assistant"]
