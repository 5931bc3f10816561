"""`ovchat ask`: one answer, from the model loaded here or from a running `ovchat serve`.

`--json` prints one shape either way (AskResult): the server's answer carries the figures its
client measured where a local one carries GenAI's, and says which server answered."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import click

from ovchat import is_text
from ovchat.cli.options import (
    MODEL_OPTION_NAMES,
    generation_options,
    load_model,
    model_options,
    options_from_cli,
)
from ovchat.errors import OvchatError

if TYPE_CHECKING:
    from ovchat import GenerationOptions, TurnMetrics


@dataclass(frozen=True)
class AskResult:
    """What `ask --json` prints, whoever answered."""

    text: str
    reasoning: str | None  # the answer's think block, when it had one (printed to stderr as it streams)
    finish_reason: str  # stop | length | cancelled | tool_calls
    model: str
    server: str | None  # the server that answered; None: the model was loaded here
    load_seconds: float | None  # how long the model took to load here; None through a server
    metrics: TurnMetrics


def read_prompt(words: tuple[str, ...]) -> str:
    """The prompt from the arguments, or else stdin; it must be UTF-8 text."""
    if words:
        text = " ".join(words)
        if not is_text(text):
            raise OvchatError("the prompt is not valid UTF-8 text")
        return text
    if sys.stdin is None or sys.stdin.isatty():
        return ""
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise OvchatError("the text on stdin is not valid UTF-8") from None


def _show(piece: str) -> None:
    click.echo(piece, nl=False)


def _show_reasoning(piece: str) -> None:
    click.echo(piece, nl=False, err=True)  # stdout stays the answer alone


@click.command()
@click.argument("prompt", nargs=-1)
@click.option("--system", "-s", metavar="TEXT", help="System prompt.")
@click.option("--no-stream", is_flag=True, help="Print the answer only when it is complete.")
@click.option("--raw", is_flag=True, help="Send PROMPT as-is: no chat template, no special tokens added.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print text, finish reason, token counts and metrics as JSON."
)
@click.option(
    "--server",
    envvar="OVCHAT_SERVER",
    metavar="URL",
    help="Ask a running `ovchat serve` at URL instead of loading the model [env OVCHAT_SERVER].",
)
@click.option(
    "--api-key", envvar="OVCHAT_API_KEY", metavar="KEY", help="The server's key [env OVCHAT_API_KEY]."
)
@model_options()
@generation_options
def ask(
    prompt: tuple[str, ...],
    system: str | None,
    no_stream: bool,
    raw: bool,
    as_json: bool,
    server: str | None,
    api_key: str | None,
    **kwargs: Any,
) -> None:
    """Answer one PROMPT (or the text on stdin) and exit."""
    text = read_prompt(prompt)
    if not text.strip():
        raise OvchatError("no prompt: give it as an argument or on stdin")
    if raw and system:
        raise OvchatError("--system has no effect with --raw (no chat template is applied)")
    options = options_from_cli(kwargs)
    stream = not (no_stream or as_json)
    if server:
        result = ask_remotely(server, api_key, kwargs.get("model"), text, options, system, raw, stream)
    else:
        result = ask_here(kwargs, text, options, system, raw, stream)
    if as_json:
        click.echo(json.dumps(asdict(result), ensure_ascii=False, indent=2))
    else:
        click.echo("" if stream else result.text)
    if result.finish_reason == "cancelled":
        sys.exit(130)


def ask_here(
    kwargs: dict[str, Any], text: str, options: GenerationOptions, system: str | None, raw: bool, stream: bool
) -> AskResult:
    """The answer of the model loaded here, streamed to stdout (reasoning to stderr) if `stream`."""
    from ovchat import ChatSession, complete_raw
    from ovchat.cli.interrupt import run_interruptibly

    # SDPA compiles and loads faster than paged attention, and one-shot answers never reuse
    # a KV cache across turns.
    model = load_model(kwargs, default_backend="SDPA")
    on_text, on_reasoning = (_show, _show_reasoning) if stream else (None, None)
    cancel = threading.Event()
    if raw:
        reply = run_interruptibly(lambda: complete_raw(model, text, options, on_text, cancel), cancel)
    else:
        session = ChatSession(model, options, system)
        reply = run_interruptibly(
            lambda: session.send(text, on_text, cancel, on_reasoning=on_reasoning), cancel
        )
    load = round(model.load_seconds, 3)
    return AskResult(
        reply.text, reply.reasoning, reply.finish_reason, model.files.name, None, load, reply.metrics
    )


def ask_remotely(
    url: str,
    api_key: str | None,
    model: str | None,
    text: str,
    options: GenerationOptions,
    system: str | None,
    raw: bool,
    stream: bool,
) -> AskResult:
    """`ask --server`: the server's model answers (--model names one of those it serves), so device
    options would be ignored."""
    from ovchat.cli.remote import ask_server

    context = click.get_current_context()
    given = [
        f"--{name.replace('_', '-')}"
        for name in MODEL_OPTION_NAMES
        if name != "model" and context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        raise OvchatError(f"{', '.join(given)}: not with --server (the server's own model and device answer)")
    on_text, on_reasoning = (_show, _show_reasoning) if stream else (None, None)
    reply = ask_server(url, text, options, system, raw, api_key, on_text, on_reasoning, model)
    return AskResult(reply.text, reply.reasoning, reply.finish_reason, reply.model, url, None, reply.metrics)
