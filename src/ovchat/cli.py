"""The `ovchat` command. Heavy imports (OpenVINO) happen inside commands, so --help is instant."""

from __future__ import annotations

import functools
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ovchat import __version__
from ovchat.errors import OvchatError

if TYPE_CHECKING:
    from ovchat.model import Model
    from ovchat.options import GenerationOptions


class OvchatGroup(click.Group):
    """Turns every OvchatError into one line on stderr and its exit code: the CLI's one edge."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OvchatError as exc:
            click.echo(f"ovchat: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=OvchatGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ovchat")
def cli() -> None:
    """Chat with an int4 OpenVINO LLM on this machine, with no PyTorch."""


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


@cli.command()
@click.option("--system", "-s", metavar="TEXT", help="System prompt.")
@click.option(
    "--resume",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Continue a conversation saved with /save.",
)
@model_options
@generation_options
def chat(system: str | None, resume: Path | None, **kwargs: Any) -> None:
    """Chat interactively, with answers streamed as they are generated."""
    from ovchat.repl import Repl, enable_line_editing
    from ovchat.session import ChatSession, read_transcript

    options = build_options(kwargs)
    messages = read_transcript(resume) if resume else None  # fail before the slow model load
    session = ChatSession(load_model(kwargs), options, system)
    notice = None
    if resume:
        session.load(resume)
        notice = f"[resumed {len(messages or [])} messages from {resume}]"
    enable_line_editing()
    Repl(session).run(notice)


@cli.command()
@click.argument("prompt", nargs=-1)
@click.option("--system", "-s", metavar="TEXT", help="System prompt.")
@click.option("--no-stream", is_flag=True, help="Print the answer only when it is complete.")
@click.option("--raw", is_flag=True, help="Send PROMPT as-is: no chat template, no special tokens added.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print text, finish reason, token counts and metrics as JSON."
)
@model_options
@generation_options
def ask(
    prompt: tuple[str, ...], system: str | None, no_stream: bool, raw: bool, as_json: bool, **kwargs: Any
) -> None:
    """Answer one PROMPT (or the text on stdin) and exit."""
    from ovchat.repl import run_interruptibly
    from ovchat.session import ChatSession, complete_raw

    text = " ".join(prompt) if prompt else ("" if sys.stdin.isatty() else sys.stdin.read().strip())
    if not text.strip():
        raise OvchatError("no prompt: give it as an argument or on stdin")
    if raw and system:
        raise OvchatError("--system has no effect with --raw (no chat template is applied)")
    options = build_options(kwargs)
    # SDPA compiles and loads faster than paged attention, and one-shot answers never reuse
    # a KV cache across turns.
    model = load_model(kwargs, default_backend="SDPA")
    stream = not (no_stream or as_json)
    on_text = (lambda piece: click.echo(piece, nl=False)) if stream else None
    cancel = threading.Event()
    if raw:
        reply = run_interruptibly(lambda: complete_raw(model, text, options, on_text, cancel), cancel)
    else:
        session = ChatSession(model, options, system)
        reply = run_interruptibly(lambda: session.send(text, on_text, cancel), cancel)
    if as_json:
        payload = {
            "text": reply.text,
            "finish_reason": reply.finish_reason,
            "model": model.dir.name,
            "load_seconds": round(model.load_seconds, 3),
            "metrics": asdict(reply.metrics),
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        click.echo("" if stream else reply.text)
    if reply.finish_reason == "cancelled":
        sys.exit(130)


@cli.command()
@click.option(
    "--model",
    "-m",
    envvar="OVCHAT_MODEL",
    metavar="PATH",
    help="Model folder or .gguf file [env OVCHAT_MODEL].",
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info(model: str | None, as_json: bool) -> None:
    """Describe the model and the OpenVINO devices of this machine."""
    from ovchat.info import describe

    facts = describe(model)
    if as_json:
        click.echo(json.dumps(facts, indent=2, ensure_ascii=False))
        return
    for key, value in facts.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for inner, item in value.items():
                click.echo(f"  {inner}: {item}")
        else:
            click.echo(f"{key}: {value}")


from ovchat.server.cli import serve  # noqa: E402  (serve needs model_options above)

cli.add_command(serve)


@cli.command()
@click.option("--prompt-lengths", default="32,512,1024", show_default=True, help="Prompt sizes in tokens.")
@click.option("--new-tokens", type=int, default=128, show_default=True, help="Tokens generated per run.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Timed runs per prompt size.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@model_options
def bench(prompt_lengths: str, new_tokens: int, repeats: int, as_json: bool, **kwargs: Any) -> None:
    """Measure load time, TTFT, TPOT, prefill and decode speed and peak RSS on this machine."""
    from ovchat.bench import bench_model, format_report
    from ovchat.model import DeviceConfig

    try:
        lengths = [int(n) for n in prompt_lengths.split(",")]
    except ValueError:
        raise OvchatError(
            f"--prompt-lengths must be comma-separated integers, not '{prompt_lengths}'"
        ) from None
    device = DeviceConfig(
        kwargs["device"],
        kwargs["performance_hint"],
        kwargs["num_streams"],
        kwargs["cache_dir"],
        kwargs["attention_backend"],
    )
    report = bench_model(kwargs["model"], device, lengths, new_tokens, repeats)
    click.echo(json.dumps(asdict(report), indent=2) if as_json else format_report(report))


def main() -> None:
    cli()
