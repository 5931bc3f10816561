"""The suite's own layout: pytest (rootdir-relative imports, no packages) collects two test modules
of one name as an error that stops the whole run, so no two may share a name."""

import re
from collections import Counter
from pathlib import Path

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
