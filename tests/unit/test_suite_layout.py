"""The suite's own layout: pytest (rootdir-relative imports, no packages) collects two test modules
of one name as an error that stops the whole run, so no two may share a name."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_name() -> None:
    names = Counter(path.name for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)
    assert [name for name, count in names.items() if count > 1] == []
