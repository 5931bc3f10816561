"""The click options that `ovchat` commands share, and turning their values into library objects.

Only the standard library and ovchat's stdlib-only modules are imported here, so `--help` stays instant.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ovchat.device import ATTENTION_BACKENDS, PERFORMANCE_HINTS, PRECISIONS, DeviceConfig
from ovchat.options import DEFAULT_MAX_NEW_TOKENS

if TYPE_CHECKING:
    from ovchat.model import Model
    from ovchat.options import GenerationOptions

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _apply(decorators: list[Decorator]) -> Decorator:
    return lambda command: functools.reduce(lambda cmd, deco: deco(cmd), reversed(decorators), command)


# The options that choose and compile the model (their parameter names), for commands that check them.
MODEL_OPTION_NAMES = (
    "model", "device", "performance_hint", "num_streams", "threads", "cache_dir", "precision",
    "attention_backend",
)  # fmt: skip


def model_options(attention_backend: bool = True) -> Decorator:
    """--model, --device and how OpenVINO compiles the model (serve has no --attention-backend:
    continuous batching always uses paged attention)."""
    decorators: list[Decorator] = [
        click.option(
            "--model",
            "-m",
            envvar="OVCHAT_MODEL",
            metavar="PATH",
            help="Model folder, model name or .gguf file [env OVCHAT_MODEL; default: the one "
            "`make model` builds]",
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
            "--performance-hint", default="LATENCY", show_default=True, type=click.Choice(PERFORMANCE_HINTS)
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
            help="Compiled-model cache (default: ~/.cache/ovchat/compiled; '' disables) "
            "[env OVCHAT_CACHE_DIR].",
        ),
        click.option(
            "--precision",
            type=click.Choice(PRECISIONS),
            envvar="OVCHAT_PRECISION",
            help="Inference precision [env OVCHAT_PRECISION; default: what the model's build verified, "
            "else the device's own].",
        ),
    ]
    if attention_backend:
        decorators.append(
            click.option(
                "--attention-backend",
                type=click.Choice(ATTENTION_BACKENDS),
                help="SDPA loads faster; PA (paged attention) reuses the KV cache across chat turns.",
            )
        )
    return _apply(decorators)


def generation_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The generation options shared by every command that generates."""
    decorators: list[Decorator] = [
        click.option(
            "--max-new-tokens",
            "-n",
            type=int,
            help=f"Longest answer, in tokens [default: {DEFAULT_MAX_NEW_TOKENS}, less if the context "
            "window has less room].",
        ),
        click.option(
            "--temperature",
            "-t",
            type=float,
            help="0 = greedy; default: the model's own (its generation_config.json).",
        ),
        click.option("--top-p", type=float, help="Nucleus sampling, in (0, 1]."),
        click.option("--top-k", type=int, help="Sample from the k most likely tokens."),
        click.option("--repetition-penalty", type=float, help="1.0 = none."),
        click.option("--seed", type=int, help="Random seed for sampling."),
        click.option(
            "--stop", multiple=True, metavar="TEXT", help="Stop when the answer contains TEXT (repeatable)."
        ),
        click.option(
            "--ignore-eos", is_flag=True, help="Generate max-new-tokens even past eos (for benchmarks)."
        ),
    ]
    return _apply(decorators)(command)


def build_options(kwargs: dict[str, Any]) -> GenerationOptions:
    """GenerationOptions from the generation options' values (removed from `kwargs`)."""
    from ovchat.options import GenerationOptions

    return GenerationOptions(
        max_new_tokens=kwargs.pop("max_new_tokens"),
        temperature=kwargs.pop("temperature"),
        top_p=kwargs.pop("top_p"),
        top_k=kwargs.pop("top_k"),
        repetition_penalty=kwargs.pop("repetition_penalty"),
        seed=kwargs.pop("seed"),
        stop=tuple(kwargs.pop("stop")),
        ignore_eos=kwargs.pop("ignore_eos"),
    )


def device_config(kwargs: dict[str, Any], default_backend: str | None = None) -> DeviceConfig:
    """DeviceConfig from the model options' values (removed from `kwargs`; --model stays)."""
    return DeviceConfig(
        device=kwargs.pop("device"),
        performance_hint=kwargs.pop("performance_hint"),
        num_streams=kwargs.pop("num_streams"),
        threads=kwargs.pop("threads"),
        cache_dir=kwargs.pop("cache_dir"),
        attention_backend=kwargs.pop("attention_backend", None) or default_backend,
        inference_precision=kwargs.pop("precision"),
    )


def load_model(kwargs: dict[str, Any], default_backend: str | None = None) -> Model:
    """Open the model the options name, with their device settings."""
    from ovchat.model import open_model

    device = device_config(kwargs, default_backend)
    model = open_model(kwargs.pop("model"), device)
    if model.dir.import_note:
        click.echo(f"ovchat: note: {model.dir.import_note}", err=True)
    return model
