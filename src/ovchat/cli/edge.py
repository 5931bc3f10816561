"""The CLI's one error edge: every OvchatError, usage error or Ctrl-C becomes one line on stderr and
an exit code (1: a problem to fix, 2: an invalid option, 130: interrupted)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from ovchat.errors import Interrupted, OvchatError


class OvchatGroup(click.Group):
    """The `ovchat` group, whose main() is the edge."""

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
            code = fail(str(exc), exc.exit_code)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            code = fail(exc.format_message().replace("\n", " ") + hint, exc.exit_code)
        except click.ClickException as exc:
            code = fail(exc.format_message().replace("\n", " "), exc.exit_code)
        except (click.Abort, KeyboardInterrupt):  # Ctrl-C in click's own prompts or parsing
            code = fail("interrupted", 130)
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


def fail(message: str, code: int) -> int:
    """Say an error as the CLI says every error; the exit code to end with."""
    click.echo(f"ovchat: error: {message}", err=True)
    return code


def note(message: str) -> None:
    """Something the user should know that is not an error (a lossy import, a one-time conversion)."""
    click.echo(f"ovchat: note: {message}", err=True)
