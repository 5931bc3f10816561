#!/usr/bin/env python3
"""Turn an ovchat model folder into an OpenVINO Model Server (OVMS) model repository.

    build/venv/bin/python scripts/deploy/export_ovms.py [MODEL] [--out build/ovms] [--name NAME]

The repository follows the layout OVMS 2026.3 documents for its OpenAI-compatible text generation
endpoints (docs/llm/reference.md, docs/mediapipe.md, and what demos/common/export_models/
export_model.py writes for `text_generation`):

    OUT/config.json               {"model_config_list": [{"config": {"name", "base_path", "graph_path"}}]}
    OUT/NAME/graph.pbtxt          a MediaPipe graph with one HttpLLMCalculator node, models_path "./"
    OUT/NAME/openvino_*.xml|bin   the model, tokenizer and detokenizer IRs, byte for byte (and the
                                  rest of the model folder, so it stays an ovchat model folder too)

The graph's engine settings start from `ovchat serve`'s defaults (16 sequences at once, 256-token
prefill steps, a 1 GB KV cache, prefix caching on, 4096-token answers at most) and its plugin_config
carries the CPU properties the model's build verified its fidelity with (the manifest's `runtime`).
Standard library only: it imports nothing but ovchat's model contract.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ovchat.model.contract import (
    DEFAULT_MODEL_NAME,
    MANIFEST_FILE,
    MODEL_FILES,
    Manifest,
    ManifestError,
    find_named,
    sha256_file,
)

OVMS_VERSION = "2026.3"
GRAPH_FILE = "graph.pbtxt"
CONFIG_FILE = "config.json"
# OVMS turns the name into a URL path segment and a folder: keep it to what both take as is.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ExportError(Exception):
    """A problem the user can fix; printed as one line."""


@dataclass(frozen=True)
class GraphSettings:
    """The LLMCalculatorOptions this export writes (OVMS's names, `ovchat serve`'s defaults)."""

    device: str = "CPU"
    max_num_seqs: int = 16  # ovchat serve --max-batch
    max_num_batched_tokens: int = 256  # ovchat serve --prefill-chunk
    cache_size: int = 1  # GB; ovchat serve --kv-cache-gb (OVMS: 0 = grow without bound)
    enable_prefix_caching: bool = True  # ovchat serve's default; OVMS's own is false
    max_tokens_limit: int = 4096  # ovchat serve --max-tokens-limit
    plugin_config: tuple[tuple[str, str], ...] = ()


def render_graph(settings: GraphSettings) -> str:
    """graph.pbtxt: the documented HttpLLMCalculator node; only node_options vary."""
    plugin_config = json.dumps(dict(settings.plugin_config), sort_keys=True)
    if "'" in plugin_config:  # it sits in a single-quoted protobuf string
        raise ExportError(f"plugin_config cannot hold a single quote: {plugin_config}")
    prefix = "true" if settings.enable_prefix_caching else "false"
    return f"""# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO
# Written by ovchat's scripts/deploy/export_ovms.py for OpenVINO Model Server {OVMS_VERSION}.
input_stream: "HTTP_REQUEST_PAYLOAD:input"
output_stream: "HTTP_RESPONSE_PAYLOAD:output"

node: {{
  name: "LLMExecutor"
  calculator: "HttpLLMCalculator"
  input_stream: "LOOPBACK:loopback"
  input_stream: "HTTP_REQUEST_PAYLOAD:input"
  input_side_packet: "LLM_NODE_RESOURCES:llm"
  input_side_packet: "LLM_NODE_EXECUTION_CONTEXTS:llm_ctx"
  output_stream: "LOOPBACK:loopback"
  output_stream: "HTTP_RESPONSE_PAYLOAD:output"
  input_stream_info: {{
    tag_index: 'LOOPBACK:0',
    back_edge: true
  }}
  node_options: {{
      [type.googleapis.com / mediapipe.LLMCalculatorOptions]: {{
          models_path: "./",
          device: "{settings.device}",
          plugin_config: '{plugin_config}',
          enable_prefix_caching: {prefix},
          cache_size: {settings.cache_size},
          max_num_seqs: {settings.max_num_seqs},
          max_num_batched_tokens: {settings.max_num_batched_tokens},
          max_tokens_limit: {settings.max_tokens_limit}
      }}
  }}
  input_stream_handler {{
    input_stream_handler: "SyncSetInputStreamHandler",
    options {{
      [mediapipe.SyncSetInputStreamHandlerOptions.ext] {{
        sync_set {{
          tag_index: "LOOPBACK:0"
        }}
      }}
    }}
  }}
}}
"""


def resolve_model(spec: str) -> Path:
    """A model folder path, or a model name looked up where ovchat looks for models."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    named = find_named(spec) if NAME_PATTERN.match(spec) else None
    if named is None:
        raise ExportError(f"no model folder at {spec}: pass a model folder or a model name (`ovchat models`)")
    return named


def read_manifest(folder: Path) -> Manifest:
    """The folder's manifest: without one the folder is not a finished ovchat build."""
    try:
        manifest = Manifest.read(folder)
    except ManifestError as exc:
        raise ExportError(f"{folder}: {exc}") from None
    if manifest is None:
        raise ExportError(f"{folder} has no {MANIFEST_FILE}: it is not a finished ovchat build")
    listed = {entry.path for entry in manifest.files}
    missing = [name for name in MODEL_FILES if name not in listed]
    if missing:
        raise ExportError(f"{folder} lacks {', '.join(missing)}: not a model folder OVMS can serve")
    return manifest


def copy_model(source: Path, manifest: Manifest, target: Path, link: bool) -> None:
    """Copy (or hard-link) every file of the model folder, then check each against the manifest."""
    for entry in [*manifest.files, None]:
        name = entry.path if entry else MANIFEST_FILE
        src, dst = source / name, target / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            if link:
                try:
                    os.link(src, dst)
                except OSError:  # another filesystem, or one without hard links: copy instead
                    shutil.copy2(src, dst)
            else:
                shutil.copy2(src, dst)
        except FileNotFoundError:
            raise ExportError(f"{source} lacks {name}, which its manifest lists: rebuild the model") from None
        # The manifest's hashes make "byte-identical" a check, not a hope (and catch a damaged source).
        if entry and (dst.stat().st_size != entry.size or sha256_file(dst) != entry.sha256):
            raise ExportError(f"{source / name} differs from its manifest: rebuild the model")


def add_to_config(config_path: Path, name: str) -> None:
    """Add or replace the model's entry in the repository's config.json, keeping the others."""
    try:
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read {config_path}: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_config_list", []), list):
        raise ExportError(f"{config_path} is not an OVMS config file (no model_config_list list)")
    entries = [
        item
        for item in config.get("model_config_list", [])
        if not (isinstance(item, dict) and item.get("config", {}).get("name") == name)
    ]
    entries.append({"config": {"name": name, "base_path": name, "graph_path": GRAPH_FILE}})
    config["model_config_list"] = entries
    partial = config_path.with_name(f".{config_path.name}.partial")
    partial.write_text(json.dumps(config, indent=4) + "\n")
    partial.replace(config_path)


def export(model: Path, out: Path, name: str, settings: GraphSettings, link: bool, force: bool) -> Path:
    """Write OUT/NAME (graph and model files) and register it in OUT/config.json; returns OUT/NAME."""
    if not NAME_PATTERN.match(name):
        raise ExportError(f"model name {name!r}: use letters, digits, '.', '_' and '-' only")
    manifest = read_manifest(model)
    target = out / name
    if target.exists() and not force:
        raise ExportError(f"{target} exists: pass --force to replace it")
    out.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place: an interrupted export never looks finished.
    partial = out / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        copy_model(model, manifest, partial, link)
        (partial / GRAPH_FILE).write_text(render_graph(settings))
        if target.exists():
            shutil.rmtree(target)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    add_to_config(out / CONFIG_FILE, name)
    return target


def settings_from(args: argparse.Namespace, manifest: Manifest) -> GraphSettings:
    # As `ovchat serve` compiles it: the LATENCY hint, plus the CPU properties the build verified its
    # fidelity with (e.g. f32 inference where bf16 drifted), which only apply on the CPU.
    plugin = {"PERFORMANCE_HINT": "LATENCY"}
    if args.device.upper() == "CPU":
        plugin.update(manifest.runtime)
    return GraphSettings(
        device=args.device,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        cache_size=args.cache_size,
        enable_prefix_caching=args.prefix_caching,
        max_tokens_limit=args.max_tokens_limit,
        plugin_config=tuple(sorted(plugin.items())),
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL_NAME, help="model folder or model name")
    parser.add_argument("--out", type=Path, default=Path("build/ovms"), help="the OVMS model repository")
    parser.add_argument("--name", help="the served model's name (default: the model folder's name)")
    parser.add_argument("--device", default="CPU", help="OVMS target device: CPU, GPU, NPU")
    parser.add_argument("--max-num-seqs", type=int, default=16, help="sequences generated together")
    parser.add_argument("--max-num-batched-tokens", type=int, default=256, help="tokens per engine step")
    parser.add_argument("--cache-size", type=int, default=1, help="KV cache in GB (0: grows as needed)")
    parser.add_argument("--max-tokens-limit", type=int, default=4096, help="largest max_tokens accepted")
    parser.add_argument("--prefix-caching", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--link", action="store_true", help="hard-link the model files instead of copying")
    parser.add_argument("--force", action="store_true", help="replace OUT/NAME if it exists")
    args = parser.parse_args(argv)
    for option in ("max_num_seqs", "max_num_batched_tokens", "max_tokens_limit"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    if args.cache_size < 0:
        parser.error("--cache-size must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model = resolve_model(args.model)
        settings = settings_from(args, read_manifest(model))
        target = export(model, args.out, args.name or model.name, settings, args.link, args.force)
    except ExportError as exc:
        print(f"export_ovms: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a full disk, a folder we may not write to
        print(f"export_ovms: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    config = args.out / CONFIG_FILE
    print(f"{target}: served as {target.name} by `ovms --rest_port 8000 --config_path {config}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
