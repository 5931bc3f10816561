"""The click options that `ovchat` commands share, and turning their values into library objects."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ovchat.model import Model
    from ovchat.options import GenerationOptions


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --device and how OpenVINO compiles the model."""
    decorators = [
        click.option(
            "--model",
            "-m",
            envvar="OVCHAT_MODEL",
            metavar="PATH",
            help="Model folder or .gguf file [env OVCHAT_MODEL; default: the one `make model` builds]",
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
            type=click.Choice(["LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"]),
        ),
        click.option(
            "--num-streams",
            type=click.IntRange(min=1),
            help="Inference streams (default: the hint's choice).",
        ),
        click.option(
            "--cache-dir",
            metavar="DIR",
            help="Compiled-model cache (default: ~/.cache/ovchat/compiled; '' disables).",
        ),
        click.option(
            "--attention-backend",
            type=click.Choice(["SDPA", "PA"]),
            help="SDPA loads faster; PA (paged attention) reuses the KV cache across chat turns.",
        ),
    ]
    return functools.reduce(lambda cmd, deco: deco(cmd), reversed(decorators), command)


def generation_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The generation options shared by every command that generates."""
    decorators = [
        click.option(
            "--max-new-tokens",
            "-n",
            type=int,
            default=512,
            show_default=True,
            help="Longest answer, in tokens.",
        ),
        click.option(
            "--temperature",
            "-t",
            type=float,
            help="0 = greedy (the default unless the model says otherwise).",
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
    return functools.reduce(lambda cmd, deco: deco(cmd), reversed(decorators), command)


def build_options(kwargs: dict[str, Any]) -> GenerationOptions:
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


def load_model(kwargs: dict[str, Any], default_backend: str | None = None) -> Model:
    from ovchat.model import DeviceConfig, open_model

    device = DeviceConfig(
        device=kwargs.pop("device"),
        performance_hint=kwargs.pop("performance_hint"),
        num_streams=kwargs.pop("num_streams"),
        cache_dir=kwargs.pop("cache_dir"),
        attention_backend=kwargs.pop("attention_backend") or default_backend,
    )
    return open_model(kwargs.pop("model"), device)
