"""The docs hold to the code and to themselves: the generated reference is what the code renders now,
the README stays short, every relative link lands, and the README's test command is CI's."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from conftest import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))
README = ROOT / "README.md"
# Linked before they exist: written on another branch. Checked like any link once they are here.
PENDING = {ROOT / "docs" / "architecture.md"}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def reference() -> ModuleType:
    """scripts/dev/reference.py, imported by its path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("reference", ROOT / "scripts" / "dev" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_reference_is_what_the_code_renders_now() -> None:
    """`make docs` regenerates the tables; a flag, a default or a field changed without it fails here."""
    assert reference().stale_blocks() == []


def test_the_check_names_a_block_edited_by_hand(tmp_path: Path) -> None:
    module = reference()
    for doc in {block.doc for block in module.blocks()}:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / doc).write_text((ROOT / doc).read_text())
    cli = tmp_path / "docs" / "cli.md"
    cli.write_text(cli.read_text().replace("| `--raw` | — | — | off |", "| `--raw` | — | — | on |", 1))
    assert module.stale_blocks(tmp_path) == ["docs/cli.md: cli ask"]
    assert module.write(tmp_path) == ["docs/cli.md"]
    assert module.stale_blocks(tmp_path) == []


def test_every_command_and_view_has_its_block() -> None:
    names = {block.name for block in reference().blocks()}
    assert {"cli chat", "cli ask", "cli info", "cli models", "cli bench", "cli serve"} <= names
    assert {"generation fields", "request fields"} <= names


def test_the_readme_is_read_in_five_minutes() -> None:
    assert len(README.read_text().splitlines()) <= 300


def prose(text: str, inline_code: bool = False) -> str:
    """The text outside fenced code blocks, and outside inline code unless `inline_code` (headings
    may hold some; a link in it is no link)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        lines.append("" if fenced else line if inline_code else re.sub(r"`[^`]*`", "", line))
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lowercased, spaces to dashes, punctuation dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return "".join(c for c in text if c.isalnum() or c in "-_ ").replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file's headings (a repeated heading's get -1, -2, … as on GitHub)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose(path.read_text(), inline_code=True).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_lands(page: Path) -> None:
    """A link to a file that exists, and for a `#anchor` into markdown, to a heading it has."""
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists() and linked not in PENDING:
            broken.append(f"{target}: no such file")
        elif anchor and linked.exists() and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert broken == []


def test_slugs_follow_githubs_rules() -> None:
    assert (
        slug("At 3.8 B parameters: the seed's Phi-3-mini shape")
        == "at-38-b-parameters-the-seeds-phi-3-mini-shape"
    )
    assert slug("`ovchat ask`") == "ovchat-ask"
    assert slug("Memory, start-up and decode levers") == "memory-start-up-and-decode-levers"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in section("Two commands")
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
