"""The model build's layout, held as code (its import cycles: test_layering.py): its subpackages
stacked as layers that import only downwards, and the
GGUF staging cache keyed on every build module the importer runs; the runtime reached only through
the paths it keeps for the build. Read with ast: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

from import_graph import SRC
from import_graph import import_graph as graph_of
from import_graph import module_files as files_of

from ovchat_build.source.staging import IMPORTER

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
    ("command", "__main__"),  # the command
)


def module_files() -> dict[str, Path]:
    return files_of(ROOT)


def import_graph() -> dict[str, set[str]]:
    """Module -> the build's own modules it imports (the runtime and third parties left out)."""
    return {name: {t for t in targets if t.split(".")[0] == ROOT} for name, targets in graph_of(ROOT).items()}


def layer(module: str) -> str:
    """The layer a module belongs to: its subpackage, or itself at the top (`ovchat_build.command`)."""
    return module.split(".")[1] if "." in module else ""


def test_the_walk_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    assert "ovchat_build.fidelity.measure" in graph["ovchat_build.fidelity.gate"]  # inside gate()
    assert "ovchat_build.build" in graph["ovchat_build.command"]  # inside main()
    assert len(graph) > 40


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
