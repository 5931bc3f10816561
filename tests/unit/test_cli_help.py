"""`--help` says what each command does and lists every option it takes, read from the commands
themselves: an option dropped from the help, or help that breaks, fails here."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from ovchat.cli.main import cli

COMMANDS = sorted(cli.commands)


def help_of(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_the_group_lists_every_command_with_what_it_does() -> None:
    text = help_of()
    assert text.startswith("Usage: ")
    assert set(COMMANDS) == {"ask", "bench", "chat", "embed", "info", "models", "rerank", "serve"}
    for name, command in cli.commands.items():
        summary = command.get_short_help_str(limit=45).removesuffix("...")
        assert f"{name} {summary}" in text, name


@pytest.mark.parametrize("name", COMMANDS)
def test_each_commands_help_says_what_it_does_and_lists_every_option(name: str) -> None:
    command = cli.commands[name]
    text = help_of(name)
    assert " ".join((command.help or "").split("\n\n")[0].split()) in text
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert max(param.opts, key=len) in text, f"{name} {param.opts}"
            if param.help:
                assert " ".join(param.help.split())[:40] in text, f"{name} {param.opts}"
