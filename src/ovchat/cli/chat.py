"""`ovchat chat`: the interactive chat, opened while the user types."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from ovchat.cli.edge import fail
from ovchat.cli.options import generation_options, locate_model, model_options, options_from_cli
from ovchat.errors import OvchatError

if TYPE_CHECKING:
    from ovchat import ChatSession


@click.command()
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
    from ovchat import ChatSession, check_device, open_model, read_transcript
    from ovchat.cli.opening import Opening
    from ovchat.cli.repl import Repl, enable_line_editing

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

    def end(exc: Exception) -> None:
        if not isinstance(exc, OvchatError):
            return  # a bug: the REPL raises it, traceback and all
        if terminal is not None:
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(stdin.fileno(), termios.TCSADRAIN, terminal)
        sys.stdout.write("\n")
        sys.stdout.flush()
        code = fail(str(exc), exc.exit_code)  # as the CLI's error edge says it
        sys.stderr.flush()
        os._exit(code)  # Python's shutdown would wait for input() to return

    return end
