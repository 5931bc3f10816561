"""The import graph of src/'s packages, read with `ast` (nothing is imported): what the layering tests
of the runtime (test_layering.py) and the build (test_build_layering.py) hold.

Imports count at any depth (lazy ones inside functions too) and relative ones are resolved; importing
a.b.c runs a and a.b first, so a module depends on every package above what it imports. Imports under
`if TYPE_CHECKING:` do not count: they never run (the public API declares its lazy names there)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def module_files(package: str) -> dict[str, Path]:
    """Every module of `package` by its dotted name (a package by its __init__.py)."""
    found = {}
    for path in sorted((SRC / package).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _annotations_only(tree: ast.Module) -> set[ast.AST]:
    """The nodes under `if TYPE_CHECKING:`."""
    return {
        inner
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in node.body
        for inner in ast.walk(child)
    }


def imported_names(path: Path, name: str) -> Iterable[str]:
    """The dotted names `path` imports at run time, at any depth; `from a import b` names a and a.b."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    skipped = _annotations_only(tree)
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: None if is_package else -1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> what it imports: the package's own modules (and the packages above them), and the
    top-level name of anything outside it (`openvino_genai`, `torch`, `ovchat_build`...)."""
    files = module_files(package)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets = set()
        for dotted in imported_names(path, name):
            parts = dotted.split(".")
            if parts[0] == package:
                targets |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & files.keys()
            else:
                targets.add(dotted)
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    """Everything `start` imports, directly or through what it imports."""
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), set()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def under(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)
