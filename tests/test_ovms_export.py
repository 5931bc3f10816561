"""scripts/deploy/export_ovms.py: an ovchat model folder becomes an OpenVINO Model Server repository.

OVMS cannot be installed here, so the files are checked against the format OVMS 2026.3 documents
(docs/llm/reference.md: the graph and its LLMCalculatorOptions; docs/mediapipe.md: config.json):
graph.pbtxt is parsed with a small protobuf text-format parser, config.json as JSON, and the model
files are compared byte for byte with the folder they came from.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ovchat.model.contract import MANIFEST_FILE, MODEL_FILES, FileEntry, Manifest
from ovchat.model.files import find_model

ROOT = Path(__file__).resolve().parent.parent
EXPORT = ROOT / "scripts" / "deploy" / "export_ovms.py"
LLM_OPTIONS = "[type.googleapis.com/mediapipe.LLMCalculatorOptions]"
# Every LLMCalculatorOptions field docs/llm/reference.md (2026.3) documents, and the proto's
# pipeline_type: a field outside this set would make OVMS refuse the graph.
DOCUMENTED_OPTIONS = {
    "models_path",
    "max_num_batched_tokens",
    "cache_size",
    "max_num_seqs",
    "dynamic_split_fuse",
    "device",
    "plugin_config",
    "best_of_limit",
    "max_tokens_limit",
    "enable_prefix_caching",
    "cache_eviction_config",
    "reasoning_parser",
    "tool_parser",
    "enable_tool_guided_generation",
    "sparse_attention_config",
    "pipeline_type",
}

# --- a protobuf text-format parser, enough for MediaPipe graphs ------------------------------------

TOKEN = re.compile(
    r"""\s+|\#[^\n]*|(?P<ext>\[[^\]]*\])|(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"""|(?P<punct>[{}:,;])|(?P<word>[A-Za-z0-9_.+-]+)"""
)

Message = dict[str, list[Any]]


def tokens(text: str) -> list[tuple[str, str]]:
    found, position = [], 0
    while position < len(text):
        match = TOKEN.match(text, position)
        assert match, f"cannot parse the graph at {text[position : position + 40]!r}"
        position = match.end()
        if match.lastgroup:
            found.append((match.lastgroup, match.group()))
    return found


def scalar(kind: str, text: str) -> Any:
    if kind == "str":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    return int(text) if re.fullmatch(r"-?\d+", text) else text  # an enum name stays a string


def parse_message(items: list[tuple[str, str]], at: int, closing: str | None) -> tuple[Message, int]:
    """Fields until `closing`: name: value, name {...} or name: {...}; repeated names make lists."""
    message: Message = {}
    while at < len(items):
        kind, text = items[at]
        if text == closing:
            return message, at + 1
        if kind == "punct" and text in ",;":
            at += 1
            continue
        assert kind in ("word", "ext"), f"expected a field name, got {text!r}"
        name = re.sub(r"\s+", "", text)  # [type.googleapis.com / x.Y] and [x.Y] name the same field
        at += 1
        if items[at][1] == ":":
            at += 1
        if items[at][1] == "{":
            value, at = parse_message(items, at + 1, "}")
        else:
            value, at = scalar(*items[at]), at + 1
        message.setdefault(name, []).append(value)
    assert closing is None, "unbalanced braces"
    return message, at


def parse_pbtxt(text: str) -> Message:
    message, _ = parse_message(tokens(text), 0, None)
    return message


def one(message: Message, name: str) -> Any:
    values = message.get(name, [])
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


def test_the_parser_reads_the_text_format_it_claims_to() -> None:
    parsed = parse_pbtxt(
        """# a comment
        a: "x" b: 'y', n: 3 flag: true
        sub { c: ENUM_VALUE }
        sub: { c: 1; }
        [type.googleapis.com / pkg.Ext]: { d: -2 }"""
    )
    assert parsed == {
        "a": ["x"],
        "b": ["y"],
        "n": [3],
        "flag": [True],
        "sub": [{"c": ["ENUM_VALUE"]}, {"c": [1]}],
        "[type.googleapis.com/pkg.Ext]": [{"d": [-2]}],
    }
    with pytest.raises(AssertionError):
        parse_pbtxt("node { a: 1")


# --- the export ------------------------------------------------------------------------------------


def export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXPORT), *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def fake_model(folder: Path, runtime: dict[str, str] | None = None) -> Path:
    """A small folder with the contract's files and a manifest that lists them with their hashes."""
    folder.mkdir(parents=True)
    entries = []
    for name in (*MODEL_FILES, "openvino_detokenizer.bin", "generation_config.json"):
        data = f"{name} of {folder.name}".encode()
        (folder / name).write_bytes(data)
        entries.append(FileEntry(name, len(data), hashlib.sha256(data).hexdigest()))
    manifest = Manifest(
        name=folder.name,
        fingerprint="f",
        source={},
        versions={},
        export={},
        files=entries,
        runtime=runtime or {},
    )
    (folder / MANIFEST_FILE).write_text(manifest.to_json())
    return folder


def node_options(graph: Message) -> dict[str, Any]:
    node = one(graph, "node")
    options = one(one(node, "node_options"), LLM_OPTIONS)
    assert all(len(values) == 1 for values in options.values()), options
    return {name: values[0] for name, values in options.items()}


def check_documented_graph(graph: Message) -> None:
    """The graph OVMS documents for the OpenAI endpoints: one HttpLLMCalculator node, looping back."""
    assert graph["input_stream"] == ["HTTP_REQUEST_PAYLOAD:input"]
    assert graph["output_stream"] == ["HTTP_RESPONSE_PAYLOAD:output"]
    node = one(graph, "node")
    assert one(node, "calculator") == "HttpLLMCalculator"
    assert node["input_stream"] == ["LOOPBACK:loopback", "HTTP_REQUEST_PAYLOAD:input"]
    assert node["output_stream"] == ["LOOPBACK:loopback", "HTTP_RESPONSE_PAYLOAD:output"]
    # The docs: "Every node based on LLM Calculator MUST have exactly that specification".
    assert "LLM_NODE_RESOURCES:llm" in node["input_side_packet"]
    # 2026.3's export writes it too; without it OVMS turns the graph queue off and warns.
    assert "LLM_NODE_EXECUTION_CONTEXTS:llm_ctx" in node["input_side_packet"]
    info = one(node, "input_stream_info")
    assert (one(info, "tag_index"), one(info, "back_edge")) == ("LOOPBACK:0", True)
    handler = one(node, "input_stream_handler")
    assert one(handler, "input_stream_handler") == "SyncSetInputStreamHandler"
    sync = one(one(one(handler, "options"), "[mediapipe.SyncSetInputStreamHandlerOptions.ext]"), "sync_set")
    assert one(sync, "tag_index") == "LOOPBACK:0"
    assert set(node_options(graph)) <= DOCUMENTED_OPTIONS


def served_folders(repository: Path) -> dict[str, Path]:
    """config.json's entries, resolved as OVMS does: base_path relative to the config file."""
    config = json.loads((repository / "config.json").read_text())
    assert set(config) == {"model_config_list"}  # mediapipe_config_list is deprecated since 2025
    folders = {}
    for item in config["model_config_list"]:
        entry = item["config"]
        assert set(entry) == {"name", "base_path", "graph_path"}
        folder = repository / entry["base_path"]
        assert (folder / entry["graph_path"]).is_file()
        folders[entry["name"]] = folder
    return folders


def test_the_default_model_exports_to_the_documented_layout_byte_for_byte(
    model_dir: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "ovms"
    result = export(str(model_dir), "--out", str(repository))
    assert result.returncode == 0, result.stderr
    folders = served_folders(repository)
    assert list(folders) == [model_dir.name]
    folder = folders[model_dir.name]
    text = (folder / "graph.pbtxt").read_text()
    assert text.startswith("# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO\n")  # the graph pool, as 2026.3 exports
    graph = parse_pbtxt(text)
    check_documented_graph(graph)
    options = node_options(graph)
    manifest = Manifest.from_json((model_dir / MANIFEST_FILE).read_text())
    # `ovchat serve`'s engine settings, and the CPU properties the build verified.
    assert options == {
        "models_path": "./",
        "device": "CPU",
        "plugin_config": options["plugin_config"],
        "enable_prefix_caching": True,
        "cache_size": 1,
        "max_num_seqs": 16,
        "max_num_batched_tokens": 256,
        "max_tokens_limit": 4096,
    }
    assert json.loads(options["plugin_config"]) == {"PERFORMANCE_HINT": "LATENCY", **manifest.runtime}
    # models_path is relative to the graph: the IRs OVMS loads are there, identical to the source.
    models = folder / options["models_path"]
    for name in (*MODEL_FILES, "openvino_detokenizer.bin", MANIFEST_FILE):
        assert filecmp.cmp(model_dir / name, models / name, shallow=False), name
    assert {entry.path for entry in manifest.files} | {MANIFEST_FILE, "graph.pbtxt"} == {
        path.name for path in folder.iterdir()
    }
    assert find_model(folder).manifest == manifest  # still an ovchat model folder, sizes checked
    assert "ovms --rest_port 8000 --config_path" in result.stdout


def test_options_reach_the_graph_and_a_second_model_joins_the_repository(tmp_path: Path) -> None:
    repository = tmp_path / "ovms"
    first = fake_model(tmp_path / "first", runtime={"INFERENCE_PRECISION_HINT": "f32"})
    second = fake_model(tmp_path / "second", runtime={"INFERENCE_PRECISION_HINT": "f32"})
    assert export(str(first), "--out", str(repository)).returncode == 0
    result = export(
        *(str(second), "--out", str(repository), "--name", "small", "--device", "GPU", "--link"),
        *("--cache-size", "0", "--no-prefix-caching", "--max-num-seqs", "4", "--max-tokens-limit", "512"),
    )
    assert result.returncode == 0, result.stderr
    folders = served_folders(repository)
    assert sorted(folders) == ["first", "small"]
    first_options = node_options(parse_pbtxt((folders["first"] / "graph.pbtxt").read_text()))
    assert json.loads(first_options["plugin_config"]) == {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
    }
    graph = parse_pbtxt((folders["small"] / "graph.pbtxt").read_text())
    check_documented_graph(graph)
    options = node_options(graph)
    assert (options["device"], options["cache_size"], options["enable_prefix_caching"]) == ("GPU", 0, False)
    assert (options["max_num_seqs"], options["max_tokens_limit"]) == (4, 512)
    # The build verified f32 on the CPU: that says nothing about another device.
    assert json.loads(options["plugin_config"]) == {"PERFORMANCE_HINT": "LATENCY"}
    # --link: the same file, not a copy.
    assert (folders["small"] / "openvino_model.bin").stat().st_ino == (
        second / "openvino_model.bin"
    ).stat().st_ino


def test_an_existing_model_is_replaced_only_with_force(tmp_path: Path) -> None:
    repository = tmp_path / "ovms"
    model = fake_model(tmp_path / "m")
    assert export(str(model), "--out", str(repository)).returncode == 0
    again = export(str(model), "--out", str(repository), "--max-num-seqs", "2")
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "--force" in again.stderr
    assert export(str(model), "--out", str(repository), "--max-num-seqs", "2", "--force").returncode == 0
    assert node_options(parse_pbtxt((repository / "m" / "graph.pbtxt").read_text()))["max_num_seqs"] == 2
    assert len(json.loads((repository / "config.json").read_text())["model_config_list"]) == 1
    assert [path.name for path in repository.iterdir() if path.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no manifest", "not a finished ovchat build"),
        ("changed file", "differs from its manifest"),
        ("missing file", "lacks openvino_tokenizer.bin"),
        ("bad name", "use letters, digits"),
    ],
)
def test_a_folder_that_is_not_a_finished_build_is_refused_in_one_line(
    tmp_path: Path, damage: str, message: str
) -> None:
    model = fake_model(tmp_path / "m")
    name = "m"
    if damage == "no manifest":
        (model / MANIFEST_FILE).unlink()
    elif damage == "changed file":
        ir = model / "openvino_model.bin"
        ir.write_bytes(ir.read_bytes()[::-1])  # same size, other bytes: only the hash can tell
    elif damage == "missing file":
        (model / "openvino_tokenizer.bin").unlink()
    else:
        name = "../escape"
    result = export(str(model), "--out", str(tmp_path / "ovms"), "--name", name)
    assert result.returncode == 1
    assert message in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert not (tmp_path / "ovms" / "config.json").exists()
    assert not (tmp_path / "ovms" / name).exists()
