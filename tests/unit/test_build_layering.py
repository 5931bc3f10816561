"""The model build's layout, held as code: no import cycle among its modules (lazy imports and
TYPE_CHECKING ones included), its subpackages stacked as layers that import only downwards, and the
GGUF staging cache keyed on every build module the importer runs; the runtime reached only through
the paths it keeps for the build. Read with ast: nothing is imported."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from ovchat_build.source.staging import IMPORTER

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = "ovchat_build"
# The runtime's modules the build may import: the paths the runtime keeps for it (its stdlib-only
# model-folder contract, one prompt rule, its error family, and its public API to open a model).
RUNTIME_PATHS = {"ovchat", "ovchat.errors", "ovchat.model.contract", "ovchat.prompt.endings"}
# Bottom up: each layer imports only those below it (and, without a cycle, its own).
LAYERS = (
    ("errors", "clock", "checkout", "recipe"),  # what every step uses
    ("gguf",),  # reading a GGUF: its check, import, tokenizer and grid
    ("source",),  # what SOURCE names, its inputs, the checkpoint staged from it
    ("fidelity",),  # the gate: criteria, the source's and the IR's sides, the measurement
    ("export",),  # the plan, optimum-cli's export, one export measured, the search
    ("publish",),  # the model folder: fingerprint, manifest, verification, publishing
    ("build",),  # the steps in order
    ("cli", "__main__"),  # the command
)


def module_files() -> dict[str, Path]:
    """Every module of the build package by its dotted name (a package by its __init__.py)."""
    found = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(path: Path, name: str) -> Iterable[str]:
    """The dotted names `path` imports, at any depth; `from a import b` names a and a.b."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
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


def import_graph() -> dict[str, set[str]]:
    """Module -> the build modules it imports; importing a.b.c runs a and a.b first, so they count."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets = set()
        for dotted in imported_names(path, name):
            parts = dotted.split(".")
            targets |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & files.keys()
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


def layer(module: str) -> str:
    """The layer a module belongs to: its subpackage, or itself at the top (`ovchat_build.cli`)."""
    return module.split(".")[1] if "." in module else ""


def test_the_walk_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    assert "ovchat_build.fidelity.measure" in graph["ovchat_build.fidelity.gate"]  # inside gate()
    assert "ovchat_build.build" in graph["ovchat_build.cli"]  # inside main()
    assert len(graph) > 40


def test_no_module_of_the_build_takes_part_in_an_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_each_layer_imports_only_the_layers_below_it() -> None:
    rank = {name: i for i, names in enumerate(LAYERS) for name in names}
    rank[""] = -1  # the package's own __init__: a docstring
    graph = import_graph()
    unplaced = sorted({layer(m) for m in graph} - rank.keys())
    assert unplaced == [], "give each new module or subpackage its place in LAYERS"
    upward = [
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if rank[layer(target)] > rank[layer(source)]
    ]
    assert upward == []


def test_the_gguf_staging_cache_is_keyed_on_every_module_the_importer_runs() -> None:
    graph = import_graph()
    reached, todo = set(), ["ovchat_build.gguf.importer"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += graph[module]
    files = module_files()
    code = {files[m].relative_to(SRC / ROOT).as_posix() for m in reached if files[m].name != "__init__.py"}
    assert code <= set(IMPORTER)


def test_the_runtime_is_reached_only_through_the_paths_it_keeps_for_the_build() -> None:
    used = set()
    for path in module_files().values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                used.add(node.module)
            elif isinstance(node, ast.Import):
                used |= {alias.name for alias in node.names}
    assert {m for m in used if m.split(".")[0] == "ovchat"} <= RUNTIME_PATHS
