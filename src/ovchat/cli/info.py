"""`ovchat info` and `ovchat models`: what a model is, and which models ovchat finds."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ovchat import Catalog, ModelEntry


@click.command()
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
    from ovchat import describe_model

    facts = describe_model(model)
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option(
    "--server",
    envvar="OVCHAT_SERVER",
    metavar="URL",
    help="List what the `ovchat serve` at URL serves, and each model's state [env OVCHAT_SERVER].",
)
@click.option(
    "--api-key", envvar="OVCHAT_API_KEY", metavar="KEY", help="The server's key [env OVCHAT_API_KEY]."
)
def models(as_json: bool, server: str | None, api_key: str | None) -> None:
    """List the models ovchat finds by name, and the default one (or a server's models)."""
    from ovchat import list_models

    if server:
        from ovchat.cli.remote import server_models

        served = server_models(server, api_key)
        click.echo(json.dumps(served, indent=2, ensure_ascii=False) if as_json else format_served(served))
        return
    catalog = list_models()
    if as_json:
        click.echo(json.dumps(catalog.as_json(), indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(format_catalog(catalog)))


def format_catalog(catalog: Catalog) -> list[str]:
    """The listing as lines of text: a table, then where the default comes from."""
    where = " and ".join(str(f) for f in catalog.folders)
    if not catalog.models:
        return [f"no models in {where}: {catalog.build_hint}"]
    lines = [f"{'':2}{'NAME':34} {'SIZE':>9}  {'WEIGHTS':16} {'AGREEMENT':>9}  FOLDER"]
    lines += [_row(entry) for entry in catalog.models]
    lines.append(f"(looked in {where}, in that order)")
    if catalog.default is not None:
        lines.append(f"* the default, which a bare `ovchat chat` opens: {catalog.default}")
    else:
        lines.append(f"no default model: {catalog.default_problem}")
    return lines


def format_served(cards: list[dict[str, object]]) -> str:
    """A server's models as a table: name, state, context, tool calls; a failed one's reason below."""
    lines = [f"{'NAME':34} {'STATE':10} {'CONTEXT':>8}  TOOLS"]
    for card in cards:
        context = card.get("context_length") or "?"
        lines.append(
            f"{card['id']!s:34} {card.get('state', '?')!s:10} {context!s:>8}  {card.get('tool_calls') or '-'}"
        )
        if card.get("error"):
            lines.append(f"    failed: {card['error']}")
    return "\n".join(lines)


def _row(entry: ModelEntry) -> str:
    mark = "* " if entry.default else "  "
    weights = entry.weight_format or "?"
    if entry.profile:
        weights += f" ({entry.profile})"
    agreement = f"{entry.top1_agreement:.3f}" if entry.top1_agreement is not None else "-"
    size = f"{entry.size_bytes / 1e6:.1f}MB"
    row = f"{mark}{entry.name:34} {size:>9}  {weights:16} {agreement:>9}  {entry.folder}"
    return f"{row}\n    unusable: {entry.problem}" if entry.problem else row
