"""The `ovchat` command: its group and subcommands. Heavy imports (OpenVINO, the server) happen
inside the commands, so --help is instant."""

from __future__ import annotations

import sys

import click

from ovchat import __version__
from ovchat.cli.ask import ask
from ovchat.cli.bench import bench
from ovchat.cli.chat import chat
from ovchat.cli.edge import OvchatGroup
from ovchat.cli.encode import embed, rerank
from ovchat.cli.info import info, models
from ovchat.cli.serve import serve


@click.group(cls=OvchatGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ovchat")
def cli() -> None:
    """Chat with, embed with and serve OpenVINO models on this machine, with no PyTorch."""


for command in (chat, ask, embed, rerank, info, models, serve, bench):
    cli.add_command(command)


def main() -> None:
    skip_model_converter()
    cli()


def skip_model_converter() -> None:
    """Keep `import openvino` from importing its model converter (openvino.tools.ovc), which the
    command never uses: 60-80 ms of every cold start, a third of the import (measured with
    -X importtime). openvino imports it inside try/except ImportError, which a None entry in
    sys.modules triggers. Only the command does this, never the library (embedders may convert)."""
    sys.modules.setdefault("openvino.tools.ovc", None)  # type: ignore[arg-type]
