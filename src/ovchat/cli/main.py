"""The `ovchat` command. Heavy imports (OpenVINO) happen inside commands, so --help is instant."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import click

from ovchat import __version__
from ovchat.cli.options import (
    MODEL_OPTION_NAMES,
    device_config,
    generation_options,
    load_model,
    locate_model,
    model_options,
    options_from_cli,
)
from ovchat.cli.serve import serve
from ovchat.errors import Interrupted, OvchatError
from ovchat.options import GenerationOptions
from ovchat.prompt.messages import is_text


class OvchatGroup(click.Group):
    """The CLI's one error edge: every OvchatError, usage error or Ctrl-C becomes one line on stderr
    and an exit code (1: a problem to fix, 2: an invalid option, 130: interrupted)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, standalone_mode=False, **extra)
        except OvchatError as exc:
            code = _fail(str(exc), exc.exit_code)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            code = _fail(exc.format_message().replace("\n", " ") + hint, exc.exit_code)
        except click.ClickException as exc:
            code = _fail(exc.format_message().replace("\n", " "), exc.exit_code)
        except (click.Abort, KeyboardInterrupt):  # Ctrl-C in click's own prompts or parsing
            code = _fail("interrupted", 130)
        else:
            code = result if isinstance(result, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # raised here, click would print an empty line before our one
            raise Interrupted("interrupted") from None


def _fail(message: str, code: int) -> int:
    click.echo(f"ovchat: error: {message}", err=True)
    return code


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


@click.group(cls=OvchatGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ovchat")
def cli() -> None:
    """Chat with an int4 OpenVINO LLM on this machine, with no PyTorch."""


@cli.command()
@click.option("--system", "-s", metavar="TEXT", help="System prompt.")
@click.option(
    "--resume",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Continue a conversation saved with /save.",
)
@model_options()
@generation_options
def chat(system: str | None, resume: Path | None, **kwargs: Any) -> None:
    """Chat interactively, with answers streamed as they are generated."""
    from ovchat.chat.session import ChatSession, read_transcript
    from ovchat.cli.opening import Opening
    from ovchat.cli.repl import Repl, enable_line_editing
    from ovchat.model.device import check_device
    from ovchat.model.pipeline import open_model

    options = options_from_cli(kwargs)
    messages = read_transcript(resume) if resume else None  # fail before the model loads
    files, device = locate_model(kwargs)
    if device.device.upper() != "CPU":
        check_device(device)  # before the banner: a missing device is known in 50 ms

    def open_session() -> ChatSession:  # on a thread, while the user types (ovchat.cli.opening)
        session = ChatSession(open_model(files, device), options, system)
        if resume:
            session.load(resume)
        return session

    notice = f"[resumed {len(messages or [])} messages from {resume}]" if resume else None
    enable_line_editing()
    Repl(Opening(files, device, open_session, exit_on_failure(sys.stdin))).run(notice)


def exit_on_failure(stdin: TextIO) -> Callable[[Exception], None]:
    """For the chat's opening: a model that cannot be opened ends the process at once, with the
    error's one line and exit code 1, even while input() reads a line; the terminal is left as
    the chat found it (readline changes its modes while it reads)."""
    import termios

    try:
        terminal = termios.tcgetattr(stdin.fileno()) if stdin.isatty() else None
    except (termios.error, ValueError, OSError):
        terminal = None

    def fail(exc: Exception) -> None:
        if not isinstance(exc, OvchatError):
            return  # a bug: the REPL raises it, traceback and all
        if terminal is not None:
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(stdin.fileno(), termios.TCSADRAIN, terminal)
        sys.stdout.write("\n")
        sys.stdout.flush()
        code = _fail(str(exc), exc.exit_code)  # as the CLI's error edge says it (OvchatGroup)
        sys.stderr.flush()
        os._exit(code)  # Python's shutdown would wait for input() to return

    return fail


@cli.command()
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
        ask_remotely(server, api_key, text, options, system, raw, stream, as_json)
        return
    from ovchat.chat.session import ChatSession, complete_raw
    from ovchat.cli.repl import run_interruptibly

    # SDPA compiles and loads faster than paged attention, and one-shot answers never reuse
    # a KV cache across turns.
    model = load_model(kwargs, default_backend="SDPA")
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
            "model": model.files.name,
            "load_seconds": round(model.load_seconds, 3),
            "metrics": asdict(reply.metrics),
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        click.echo("" if stream else reply.text)
    if reply.finish_reason == "cancelled":
        sys.exit(130)


def ask_remotely(
    url: str,
    api_key: str | None,
    text: str,
    options: GenerationOptions,
    system: str | None,
    raw: bool,
    stream: bool,
    as_json: bool,
) -> None:
    """`ask --server`: the server's model answers, so model and device options would be ignored."""
    from ovchat.cli.remote import ask_server

    context = click.get_current_context()
    given = [
        f"--{name.replace('_', '-')}"
        for name in MODEL_OPTION_NAMES
        if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        raise OvchatError(f"{', '.join(given)}: not with --server (the server's own model and device answer)")
    on_text = (lambda piece: click.echo(piece, nl=False)) if stream else None
    reply = ask_server(url, text, options, system, raw, api_key, on_text)
    if as_json:
        click.echo(json.dumps({"server": url, **asdict(reply)}, ensure_ascii=False, indent=2))
    else:
        click.echo("" if stream else reply.text)


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
    from ovchat.model.facts import describe

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


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def models(as_json: bool) -> None:
    """List the models ovchat finds by name, and the default one."""
    from ovchat.model.catalog import catalog_json, format_catalog, list_models

    catalog = list_models()
    if as_json:
        click.echo(json.dumps(catalog_json(catalog), indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(format_catalog(catalog)))


cli.add_command(serve)


@cli.command()
@click.option("--prompt-lengths", default="32,512,1024", show_default=True, help="Prompt sizes in tokens.")
@click.option("--new-tokens", type=int, default=128, show_default=True, help="Tokens generated per run.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Timed runs per prompt size.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@model_options()
def bench(prompt_lengths: str, new_tokens: int, repeats: int, as_json: bool, **kwargs: Any) -> None:
    """Measure load time, TTFT, TPOT, prefill and decode speed and peak RSS on this machine."""
    from ovchat.cli.bench import bench_model, format_report

    try:
        lengths = [int(n) for n in prompt_lengths.split(",")]
    except ValueError:
        raise OvchatError(
            f"--prompt-lengths must be comma-separated integers, not '{prompt_lengths}'"
        ) from None
    report = bench_model(kwargs.pop("model"), device_config(kwargs), lengths, new_tokens, repeats)
    click.echo(json.dumps(asdict(report), indent=2) if as_json else format_report(report))


def main() -> None:
    skip_model_converter()
    cli()


def skip_model_converter() -> None:
    """Keep `import openvino` from importing its model converter (openvino.tools.ovc), which the
    command never uses: 60-80 ms of every cold start, a third of the import (measured with
    -X importtime). openvino imports it inside try/except ImportError, which a None entry in
    sys.modules triggers. Only the command does this, never the library (embedders may convert)."""
    sys.modules.setdefault("openvino.tools.ovc", None)  # type: ignore[arg-type]
