"""The click options that `ovchat` commands share, and turning their values into library objects.

Only the standard library and ovchat's stdlib-only modules are imported here, so `--help` stays instant.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ovchat import DeviceConfig, GenerationOptions
from ovchat.cli.edge import note
from ovchat.options import FIELD_SPECS, FieldSpec, Kind, cli_flag

if TYPE_CHECKING:
    from ovchat import Model, ModelFiles

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _apply(decorators: list[Decorator]) -> Decorator:
    return lambda command: functools.reduce(lambda cmd, deco: deco(cmd), reversed(decorators), command)


# The options that choose and compile the model (their parameter names), for commands that check them.
MODEL_OPTION_NAMES = (
    "model", "device", "performance_hint", "num_streams", "threads", "cache_dir", "precision",
    "attention_backend", "prompt_lookup",
)  # fmt: skip


def model_options(attention_backend: bool = True, several: bool = False) -> Decorator:
    """--model, --device and how OpenVINO compiles the model (serve has no --attention-backend:
    continuous batching always uses paged attention; it takes --model several times)."""
    decorators: list[Decorator] = [
        click.option(
            "--model",
            "-m",
            envvar="OVCHAT_MODEL",
            metavar="[NAME=]PATH" if several else "PATH",
            multiple=several,
            help=(
                "Model folder, model name or .gguf file, served under its folder's name or NAME "
                "(repeatable) [env OVCHAT_MODEL, space-separated; default: the one `make model` builds]"
                if several
                else "Model folder, model name or .gguf file [env OVCHAT_MODEL; default: the one "
                "`make model` builds]"
            ),
        ),
        click.option(
            "--device",
            "-d",
            envvar="OVCHAT_DEVICE",
            default="CPU",
            show_default=True,
            help="OpenVINO device: CPU, GPU, NPU, AUTO ... [env OVCHAT_DEVICE]",
        ),
        click.option(
            "--performance-hint",
            default="LATENCY",
            show_default=True,
            type=click.Choice(DeviceConfig.PERFORMANCE_HINTS),
        ),
        click.option(
            "--num-streams",
            type=click.IntRange(min=1),
            help="Inference streams (default: the hint's choice).",
        ),
        click.option(
            "--threads",
            type=click.IntRange(min=1),
            envvar="OVCHAT_THREADS",
            help="CPU threads for inference [env OVCHAT_THREADS; default: OpenVINO's choice, one per "
            "core it may use]. Set it to a container's or replica's CPU share.",
        ),
        click.option(
            "--cache-dir",
            metavar="DIR",
            envvar="OVCHAT_CACHE_DIR",
            help="Compiled-model cache (default: ~/.cache/ovchat/compiled; '' disables it and the "
            "IRs kept from .gguf files in ~/.cache/ovchat/gguf) "
            "[env OVCHAT_CACHE_DIR].",
        ),
    ]
    return _apply(decorators + _running_options(attention_backend))


def _running_options(attention_backend: bool) -> list[Decorator]:
    """How the compiled model runs: its precision, prompt lookup and (not on serve) the attention."""
    decorators: list[Decorator] = [
        click.option(
            "--precision",
            type=click.Choice(DeviceConfig.PRECISIONS),
            envvar="OVCHAT_PRECISION",
            help="Inference precision [env OVCHAT_PRECISION; default: what the model's build verified, "
            "else the device's own].",
        ),
        click.option(
            "--prompt-lookup/--no-prompt-lookup",
            envvar="OVCHAT_PROMPT_LOOKUP",
            default=False,
            help="Prompt-lookup decoding: propose the tokens that followed the last few where they "
            "occur earlier in the conversation, and check them in one step. Faster when answers copy "
            "from the prompt (summaries, edits, quoting a document); paged attention only "
            "[env OVCHAT_PROMPT_LOOKUP].",
        ),
    ]
    if attention_backend:
        decorators.append(
            click.option(
                "--attention-backend",
                type=click.Choice(DeviceConfig.ATTENTION_BACKENDS),
                help="SDPA loads faster; PA (paged attention) reuses the KV cache across chat turns.",
            )
        )
    return decorators


def generation_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The generation options shared by every command that generates: a flag for each
    GenerationOptions field that has one, in the order they are declared."""
    return _apply([_generation_flag(name, spec) for name, spec in FIELD_SPECS.items() if spec.cli])(command)


def _generation_flag(name: str, spec: FieldSpec) -> Decorator:
    names = [cli_flag(name), *([spec.short] if spec.short else [])]
    if spec.kind is Kind.TEXTS:
        return click.option(*names, multiple=True, metavar="TEXT", help=spec.help)
    if spec.kind is Kind.SWITCH:
        return click.option(*names, is_flag=True, help=spec.help)
    # No click range here: GenerationOptions checks the bounds, in the words every front end uses.
    return click.option(*names, type=int if spec.kind is Kind.INTEGER else float, help=spec.help)


def options_from_cli(kwargs: dict[str, Any]) -> GenerationOptions:
    """GenerationOptions from the generation options' values (removed from `kwargs`)."""
    values = {name: kwargs.pop(name) for name, spec in FIELD_SPECS.items() if spec.cli}
    return GenerationOptions(**values)


def device_config(kwargs: dict[str, Any], default_backend: str | None = None) -> DeviceConfig:
    """DeviceConfig from the model options' values (removed from `kwargs`; --model stays).
    `default_backend` gives way to paged attention when prompt lookup is on."""
    lookup = bool(kwargs.pop("prompt_lookup", False))
    return DeviceConfig(
        device=kwargs.pop("device"),
        performance_hint=kwargs.pop("performance_hint"),
        num_streams=kwargs.pop("num_streams"),
        threads=kwargs.pop("threads"),
        cache_dir=kwargs.pop("cache_dir"),
        attention_backend=kwargs.pop("attention_backend", None) or (None if lookup else default_backend),
        inference_precision=kwargs.pop("precision"),
        prompt_lookup=lookup,
    )


def load_model(kwargs: dict[str, Any], default_backend: str | None = None) -> Model:
    """Open the model the options name, with their device settings."""
    from ovchat import open_model

    files, device = locate_model(kwargs, default_backend)
    model = open_model(files, device)
    if model.note:
        note(model.note)
    return model


def locate_model(
    kwargs: dict[str, Any], default_backend: str | None = None
) -> tuple[ModelFiles, DeviceConfig]:
    """The model the options name, its files checked but not loaded, and their device settings."""
    from ovchat import find_model

    device = device_config(kwargs, default_backend)
    files = find_model(kwargs.pop("model"))
    if files.import_note:
        note(files.import_note)
    return files, device
