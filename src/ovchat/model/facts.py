"""Facts about a model and this machine: how the model was built, its template, the devices here
(what `ovchat info` prints)."""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any

import openvino as ov
import openvino_genai as ov_genai

from ovchat.model.contract import GENERATION_CONFIG_FILE, Manifest
from ovchat.model.device import describe_threads
from ovchat.model.files import ModelFiles, find_model
from ovchat.model.gguf_cache import cached_ir
from ovchat.model.gguf_head import read_gguf_metadata
from ovchat.prompt.template import DESCRIPTIONS, tool_format, writes_thinking


def describe_model(spec: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Facts about the model at `spec` (None: the default model) and this machine."""
    model = find_model(spec)
    facts: dict[str, Any] = {
        "model": str(model.path),
        "format": "GGUF file" if model.is_gguf else "OpenVINO IR folder",
        "size_mb": round(_size(model) / 1e6, 1),
        "context_length": model.context_length or "unknown",
        "chat_template": "yes" if _has_chat_template(model) else "no",
        **_template_facts(model),
    }
    if model.is_gguf:
        kept = cached_ir(model.path)
        facts["converted_ir"] = str(kept) if kept else "none yet (the first start converts the file once)"
    else:
        facts["generation_defaults"] = _generation_defaults(model)
    if model.manifest:
        facts["build"] = _build_summary(model.manifest)
    if model.import_note:
        facts["note"] = model.import_note
    core = ov.Core()
    facts["devices"] = {d: core.get_property(d, "FULL_DEVICE_NAME") for d in core.available_devices}
    facts["cpu_threads"] = describe_threads()
    facts["versions"] = {p: importlib.metadata.version(p) for p in ("openvino", "openvino-genai")}
    return facts


def _size(model: ModelFiles) -> int:
    if model.is_gguf:
        return model.path.stat().st_size
    return sum(p.stat().st_size for p in model.path.rglob("*") if p.is_file())


def _has_chat_template(model: ModelFiles) -> bool:
    if model.is_gguf:
        meta = read_gguf_metadata(model.path, {"tokenizer.chat_template"})
        return bool(meta.get("tokenizer.chat_template"))
    return bool(ov_genai.Tokenizer(str(model.path)).chat_template)


def _template_facts(model: ModelFiles) -> dict[str, str]:
    """How the model's prompts carry tools, and whether its template writes a <think> block
    (ovchat.prompt.template)."""
    try:
        tokenizer = ov_genai.Tokenizer(str(model.path))
    except RuntimeError:  # a GGUF file GenAI cannot read a tokenizer from on its own
        return {"tool_calls": "unknown", "reasoning": "unknown"}
    thinks = writes_thinking(tokenizer)
    return {
        "tool_calls": DESCRIPTIONS[tool_format(tokenizer)],
        "reasoning": "yes (a <think> block, returned as reasoning_content)" if thinks else "no",
    }


def _generation_defaults(model: ModelFiles) -> dict[str, Any]:
    """The sampling the model uses unless told otherwise (its generation_config.json)."""
    config = ov_genai.GenerationConfig(str(model.path / GENERATION_CONFIG_FILE))
    if not config.do_sample:
        return {"do_sample": False}
    return {"do_sample": True, "temperature": round(config.temperature, 4), "top_p": round(config.top_p, 4)}


def _build_summary(manifest: Manifest) -> dict[str, Any]:
    flags = manifest.export.get("flags", {})
    modes = [f"{row['mode']}: {row['all_parameters']}" for row in manifest.bitwidth_distribution]
    summary = {
        "source": manifest.source.get("ref", "unknown"),
        "built_at": manifest.built_at or "unknown",
        "export": " ".join(f"{k}={v}" for k, v in flags.items()),
        "weights": "; ".join(modes) or "unknown",
    }
    # What the runtime applies on the CPU: the settings the build's fidelity gate passed with.
    settings = " ".join(f"{k}={v}" for k, v in manifest.runtime.items())
    summary["runtime"] = f"{settings or 'the device defaults'} (what the fidelity gate passed with)"
    if isinstance(manifest.fidelity, dict):
        tokens = manifest.fidelity.get("tokens", {})
        summary["fidelity"] = (
            f"top-1 agreement {tokens.get('top1_agreement')} at "
            f"{manifest.fidelity.get('ir_inference_precision', 'the default precision')}, perplexity "
            f"{tokens.get('perplexity_source')} -> {tokens.get('perplexity_ir')}"
        )
    return summary
