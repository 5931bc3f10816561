"""The gate's cached source figures are keyed on every file of the fidelity package: a change to any
of them (the criteria that cut the source's answers, a text, a module added later) computes them
again instead of reading figures made by other code."""

from __future__ import annotations

import shutil
from pathlib import Path

from ovchat_build.fidelity.figures import FIDELITY, gate_code


def copy_of_the_package(tmp_path: Path) -> Path:
    package = tmp_path / "ovchat_build"
    shutil.copytree(FIDELITY, package / FIDELITY.name, ignore=shutil.ignore_patterns("__pycache__"))
    assert gate_code(package) == gate_code()  # the copy is faithful
    return package


def test_a_change_to_the_criteria_changes_the_key(tmp_path: Path) -> None:
    package = copy_of_the_package(tmp_path)
    criteria = package / FIDELITY.name / "criteria.py"
    original = gate_code(package)
    text = criteria.read_text()
    assert "MAX_NEW_TOKENS = 128" in text
    criteria.write_text(text.replace("MAX_NEW_TOKENS = 128", "MAX_NEW_TOKENS = 256"))
    assert gate_code(package) != original


def test_every_file_of_the_fidelity_package_is_in_the_key(tmp_path: Path) -> None:
    package = copy_of_the_package(tmp_path)
    folder = package / FIDELITY.name
    original = gate_code(package)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert {"criteria.py", "ir_model.py", "source_model.py", "prompts.json"} <= {p.name for p in files}
    for path in files:
        content = path.read_bytes()
        path.write_bytes(content + b"\n")
        assert gate_code(package) != original, path.relative_to(folder)
        path.write_bytes(content)
    (folder / "new_rule.py").write_text("# a module added later\n")
    assert gate_code(package) != original
