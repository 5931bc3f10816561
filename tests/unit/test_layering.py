"""The layers of src/ held as code (../shared/ARCHITECTURE.md): who may import whom, no import cycles,
and the size a module and a function keep. Read from the source with `ast`, imports at any depth
(lazy ones in functions too), as tests/unit/import_graph.py reads them."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from import_graph import cycles, import_graph, module_files, reachable, under

GENAI = ("openvino_genai", "openvino")
BUILD_ONLY = ("torch", "transformers", "optimum")  # the build env's; the runtime env has none
# What cli/ may use of the library: its public API (the lazy names of `ovchat`) and the stdlib-only
# declarations it builds flags from; `serve` starts the server through its settings and entry (and so
# through the server package's __init__, a docstring).
CLI_MAY_USE = (
    "ovchat",
    "ovchat.errors",
    "ovchat.options",
    "ovchat.server",
    "ovchat.server.settings",
    "ovchat.server.run",
)
# Who may talk to GenAI and OpenVINO directly.
GENAI_USERS = ("ovchat.model", "ovchat.chat", "ovchat.server.engine")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def graph(package: str) -> dict[str, set[str]]:
    return import_graph(package)


def modules(package: str) -> dict[str, Path]:
    return module_files(package)


@pytest.mark.parametrize("package", ["ovchat", "ovchat_build"])
def test_no_import_cycles(package: str) -> None:
    assert cycles(graph(package)) == []


Rule = Callable[[str, str], bool]  # (importer, imported) -> a violation


def violations(rule: Rule, transitive: bool = False) -> list[str]:
    """Every import of the runtime that breaks `rule`; `transitive`: through what it imports, too."""
    edges = graph("ovchat")
    pairs = [(n, t) for n in edges for t in (reachable(n, edges) if transitive else edges[n])]
    return [f"{name} -> {target}" for name, target in pairs if rule(name, target)]


def test_prompt_is_pure_rules() -> None:
    """prompt/ imports no other layer and no GenAI: its rules are tested with stand-ins in milliseconds."""
    others = ("ovchat.model", "ovchat.chat", "ovchat.cli", "ovchat.server", *GENAI)
    assert violations(lambda n, t: under(n, "ovchat.prompt") and under(t, *others), transitive=True) == []


def test_the_protocol_layer_never_reaches_genai() -> None:
    """Each API's module maps requests and writes answers in ovchat's own words: no GenAI, even
    through what it imports, and no engine."""
    below = (*GENAI, "ovchat.server.engine", "ovchat.model", "ovchat.chat")
    rule: Rule = lambda n, t: under(n, "ovchat.server.protocol") and under(t, *below)  # noqa: E731
    assert violations(rule, transitive=True) == []


def test_only_the_model_the_chat_core_and_the_engine_talk_to_genai() -> None:
    assert violations(lambda n, t: under(t, *GENAI) and not under(n, *GENAI_USERS)) == []


def layer(module: str) -> int | None:
    order = ["ovchat.prompt", "ovchat.model", "ovchat.chat", "ovchat.server", "ovchat.cli"]
    return next((i for i, package in enumerate(order) if under(module, package)), None)


def test_lower_layers_never_import_higher_ones() -> None:
    def upwards(name: str, target: str) -> bool:
        low, high = layer(name), layer(target)
        return low is not None and high is not None and high > low

    assert violations(upwards) == []
    # The server answers with the chat core's rules, never with ChatSession.
    assert violations(lambda n, t: under(n, "ovchat.server") and under(t, "ovchat.chat")) == []


def test_the_cli_uses_the_library_through_its_public_api() -> None:
    def private(name: str, target: str) -> bool:
        library = under(target, "ovchat") and not under(target, "ovchat.cli")
        return under(name, "ovchat.cli") and library and target not in CLI_MAY_USE

    assert violations(private) == []


def test_no_runtime_module_imports_the_build_nor_torch() -> None:
    """The runtime never needs the model build (ovchat_build) nor torch, transformers or optimum,
    which only the build env has: not at any depth, lazy imports in functions included."""
    assert violations(lambda n, t: under(t, "ovchat_build", *BUILD_ONLY)) == []


def test_modules_and_functions_stay_small() -> None:
    too_big = []
    for package in ("ovchat", "ovchat_build"):
        for name, path in modules(package).items():
            text = path.read_text()
            if len(text.splitlines()) > MAX_MODULE_LINES:
                too_big.append(f"{name}: {len(text.splitlines())} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        too_big.append(f"{name}.{node.name}: {length} lines")
    assert too_big == []


def test_the_command_and_ask_server_import_no_openvino() -> None:
    """`ovchat --help` and `ask --server` never pay for OpenVINO's import: the public names load lazily,
    and what a remote answer fills in (TurnMetrics, Reply) is plain data."""
    code = (
        "import sys\n"
        "import ovchat.cli.main, ovchat.cli.remote\n"
        "from ovchat import Reply, TurnMetrics\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('openvino', 'openvino_genai')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
