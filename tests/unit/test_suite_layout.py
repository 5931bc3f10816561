"""The suite's own layout: pytest (rootdir-relative imports, no packages) collects two test modules
of one name as an error that stops the whole run, so no two may share a name."""

import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

import conftest

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_name() -> None:
    names = Counter(path.name for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)
    assert [name for name, count in names.items() if count > 1] == []


def test_every_test_docs_promises_names_exists() -> None:
    """docs/PROMISES.md maps the README's promises to tests: a renamed test must not leave a row
    pointing at nothing (`test_fit_*` names every test of that prefix)."""
    promises = (TESTS.parent / "docs" / "PROMISES.md").read_text()
    defined = set(re.findall(r"^(?:async )?def (test_\w+)\(", suite_source(), re.MULTILINE))
    named = re.findall(r"::(test_\w+)(\*?)", promises)
    missing = [
        name + star
        for name, star in named
        if not (any(d.startswith(name) for d in defined) if star else name in defined)
    ]
    assert missing == []


def suite_source() -> str:
    return "\n".join(path.read_text() for path in TESTS.rglob("test_*.py"))


class Item:
    """What the tier rule reads of a collected test."""

    def __init__(self, path: Path, fixtures: tuple[str, ...] = (), params: tuple[str, ...] = ()) -> None:
        self.path, self.fixturenames, self.nodeid = path, list(fixtures), path.name
        self.callspec = SimpleNamespace(params=dict.fromkeys(params))
        self.markers: list[str] = []

    def add_marker(self, marker: pytest.MarkDecorator) -> None:
        self.markers.append(marker.name)


def test_every_test_outside_the_unit_layer_is_slow_and_no_unit_test_may_open_the_model() -> None:
    """`pytest -m "not slow"` (make test-fast) selects the unit layer alone, so it builds nothing."""
    end_to_end = Item(TESTS / "test_server.py", ("default_server",))
    unit = Item(TESTS / "unit" / "test_x.py", ("tmp_path",))
    named_model = Item(
        TESTS / "unit" / "test_y.py", ("model",), params=("model",)
    )  # a parameter, not the fixture
    conftest.pytest_collection_modifyitems(None, [end_to_end, unit, named_model])  # type: ignore[arg-type]
    assert (end_to_end.markers, unit.markers, named_model.markers) == (["slow"], [], [])
    with pytest.raises(pytest.UsageError, match="uses model_dir: tests that need the model live in tests/"):
        conftest.pytest_collection_modifyitems(None, [Item(TESTS / "unit" / "t.py", ("model_dir",))])  # type: ignore[arg-type]
