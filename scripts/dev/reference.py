#!/usr/bin/env python3
"""The reference tables of docs/, rendered from the code that declares them, between markers.

    <!-- generated: cli ask -->
    ...rendered from click's own declaration of `ovchat ask`...
    <!-- end generated -->

Each block is rendered from one source: a command's options from click (ovchat.cli.main.cli), the
generation fields from ovchat.options.FIELD_SPECS (the CLI's view in docs/cli.md, a server's request
fields in docs/server-api.md), the environment variables from every option's `envvar`.
A table in the docs never repeats the code by hand, so it cannot drift from it.

    python scripts/dev/reference.py           rewrite the blocks (`make docs`)
    python scripts/dev/reference.py --check   exit 1 and name every stale block; write nothing

tests/unit/test_docs.py runs the check on every test run.
"""

from __future__ import annotations

import argparse
import functools
import math
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import click

from ovchat.cli.main import cli
from ovchat.options import FIELD_SPECS, FieldSpec, Kind, cli_flag

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(
    r"(?P<open><!-- generated: (?P<name>[^>]+?) -->\n)(?P<body>.*?)(?P<close><!-- end generated -->)", re.S
)
NONE = "—"


class Block(NamedTuple):
    """One generated block: its name in the markers, the doc that holds it, how to render it."""

    name: str
    doc: str  # relative to the repository's root
    render: Callable[[], str]


def blocks() -> list[Block]:
    """Every block the docs must hold: one per `ovchat` subcommand, and the derived views."""
    commands = [
        Block(f"cli {name}", "docs/cli.md", functools.partial(command_block, command))
        for name, command in cli.commands.items()
    ]
    return [
        *commands,
        Block("cli environment", "docs/cli.md", environment_table),
        Block("generation fields", "docs/cli.md", generation_fields_table),
        Block("request fields", "docs/server-api.md", request_fields_table),
    ]


# --- rendering ---------------------------------------------------------------------------------


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, no bare pipe."""
    return " ".join(text.split()).replace("|", "\\|") or NONE


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def command_block(command: click.Command) -> str:
    """A subcommand's usage line, what it does and a table of its options (--help excepted)."""
    context = click.Context(command, info_name=f"ovchat {command.name}")
    usage = " ".join(command.collect_usage_pieces(context))
    summary = " ".join((command.help or "").split())
    rows = [option_row(p) for p in command.params if isinstance(p, click.Option)]
    header = ("option", "value", "env", "default", "what it does")
    return f"`ovchat {command.name} {usage}`: {summary}\n\n{table(header, rows)}"


def option_row(option: click.Option) -> tuple[str, str, str, str, str]:
    names = ", ".join(f"`{name}`" for name in sorted(option.opts, key=len))
    if option.secondary_opts:
        names += " / " + ", ".join(f"`{name}`" for name in option.secondary_opts)
    env = f"`{option.envvar}`" if isinstance(option.envvar, str) else NONE
    help_text = option.help or NONE
    if option.multiple:
        help_text += " (repeatable)" if "repeatable" not in help_text else ""
    return names, value_of(option), env, default_of(option), help_text


def value_of(option: click.Option) -> str:
    """What the option takes: nothing for a flag, its metavar, its choices or its type and range."""
    kind = option.type
    if option.is_flag:
        return NONE
    if option.metavar:
        return f"`{option.metavar}`"
    if isinstance(kind, click.Choice):
        return ", ".join(f"`{choice}`" for choice in kind.choices)
    if isinstance(kind, click.Path):
        return "`FILE`" if not kind.dir_okay else "`PATH`"
    if isinstance(kind, (click.IntRange, click.FloatRange)):
        name = "INTEGER" if isinstance(kind, click.IntRange) else "FLOAT"
        return f"`{name}` {range_of(kind.min, kind.max, not kind.min_open, not kind.max_open)}"
    return f"`{kind.name.upper()}`"


def default_of(option: click.Option) -> str:
    default = option.to_info_dict()["default"]  # None where none is declared, in every click version
    if option.is_flag and option.secondary_opts:  # --x/--no-x: the one that is on
        return f"`{option.opts[-1] if default else option.secondary_opts[-1]}`"
    if option.is_flag:
        return "on" if default else "off"
    if default is None or default == () or callable(default):
        return NONE
    return f"`{default}`"


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def range_of(low: float | None, high: float | None, low_closed: bool, high_closed: bool) -> str:
    """Bounds in the words the checks use: `≥ 1`, `[0, 2]`, `(0, 1]`."""
    low_set = low is not None and not math.isinf(low)
    high_set = high is not None and not math.isinf(high)
    if low_set and high_set:
        assert low is not None and high is not None
        return f"{'[' if low_closed else '('}{number(low)}, {number(high)}{']' if high_closed else ')'}"
    if low_set:
        assert low is not None
        return f"{'≥' if low_closed else '>'} {number(low)}"
    if high_set:
        assert high is not None
        return f"{'≤' if high_closed else '<'} {number(high)}"
    return ""


def bounds(spec: FieldSpec) -> str:
    if spec.kind is Kind.TEXTS:
        return "texts"
    if spec.kind is Kind.SWITCH:
        return "on / off (off by default)"
    limits = range_of(spec.low, spec.high, spec.low_inclusive, spec.high_inclusive)
    return f"{spec.kind.value} {limits}".strip()


def flag_of(name: str, spec: FieldSpec) -> str:
    if not spec.cli:
        return NONE
    return ", ".join(f"`{f}`" for f in (spec.short, cli_flag(name)) if f)


def generation_fields_table() -> str:
    """Every GenerationOptions field: its CLI flag, the request field a server takes, its bounds."""
    rows = [
        (
            f"`{name}`",
            flag_of(name, spec),
            f"`{spec.openai}`" if spec.openai else NONE,
            bounds(spec),
            spec.help,
        )
        for name, spec in FIELD_SPECS.items()
    ]
    return table(("field", "CLI flag", "request field", "takes", "what it does"), rows)


def request_fields_table() -> str:
    """The generation fields a server request carries, by their request names."""
    rows = [
        (f"`{spec.openai}`", f"`{name}`", bounds(spec), spec.help)
        for name, spec in FIELD_SPECS.items()
        if spec.openai
    ]
    return table(("request field", "GenerationOptions field", "takes", "what it does"), rows)


def environment_table() -> str:
    """Every environment variable an `ovchat` option reads, and the options that read it."""
    readers: dict[str, list[str]] = {}
    for name, command in cli.commands.items():
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.envvar, str):
                readers.setdefault(param.envvar, []).append(f"`{name} {max(param.opts, key=len)}`")
    rows = [(f"`{env}`", ", ".join(options)) for env, options in sorted(readers.items())]
    return table(("variable", "read by"), rows)


# --- the docs ----------------------------------------------------------------------------------


def rendered(text: str, by_name: dict[str, Block]) -> str:
    """`text` with every generated block it holds rendered afresh."""

    def fill(match: re.Match[str]) -> str:
        block = by_name.get(match["name"])
        if block is None:
            raise SystemExit(f"reference.py: unknown generated block '{match['name']}'")
        return f"{match['open']}{block.render()}\n{match['close']}"

    return BLOCK.sub(fill, text)


def stale_blocks(root: Path = ROOT) -> list[str]:
    """What differs from the code now, one line per block ('docs/cli.md: cli ask'); [] when current."""
    problems = []
    by_doc: dict[str, list[Block]] = {}
    for block in blocks():
        by_doc.setdefault(block.doc, []).append(block)
    for doc, wanted in by_doc.items():
        text = (root / doc).read_text()
        present = {m["name"]: m for m in BLOCK.finditer(text)}
        for block in wanted:
            match = present.get(block.name)
            if match is None:
                problems.append(f"{doc}: {block.name} (missing: no <!-- generated: {block.name} --> block)")
            elif match["body"] != block.render() + "\n":
                problems.append(f"{doc}: {block.name}")
    return problems


def write(root: Path = ROOT) -> list[str]:
    """Rewrite every block; a block missing from its doc is appended at the end. The docs changed."""
    changed = []
    by_name = {block.name: block for block in blocks()}
    for doc in sorted({block.doc for block in by_name.values()}):
        path = root / doc
        text = path.read_text()
        present = {m["name"] for m in BLOCK.finditer(text)}
        for block in by_name.values():
            if block.doc == doc and block.name not in present:
                text += f"\n### {block.name}\n\n<!-- generated: {block.name} -->\n<!-- end generated -->\n"
        new = rendered(text, by_name)
        if new != path.read_text():
            path.write_text(new)
            changed.append(doc)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="name the stale blocks and exit 1; write nothing"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_blocks()
        for problem in stale:
            print(f"stale: {problem}", file=sys.stderr)
        if stale:
            print("run `make docs` (python scripts/dev/reference.py) to regenerate them", file=sys.stderr)
        return 1 if stale else 0
    for doc in write():
        print(f"rewrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
