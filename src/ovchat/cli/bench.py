"""`ovchat bench`: the model measured on this machine (ovchat.model.bench), as a table or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from ovchat.cli.options import device_config, model_options
from ovchat.errors import OvchatError

if TYPE_CHECKING:
    from ovchat import BenchReport


@click.command()
@click.option("--prompt-lengths", default="32,512,1024", show_default=True, help="Prompt sizes in tokens.")
@click.option("--new-tokens", type=int, default=128, show_default=True, help="Tokens generated per run.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Timed runs per prompt size.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@model_options()
def bench(prompt_lengths: str, new_tokens: int, repeats: int, as_json: bool, **kwargs: Any) -> None:
    """Measure load time, TTFT, TPOT, prefill and decode speed and peak RSS on this machine."""
    from ovchat import bench_model

    try:
        lengths = [int(n) for n in prompt_lengths.split(",")]
    except ValueError:
        raise OvchatError(
            f"--prompt-lengths must be comma-separated integers, not '{prompt_lengths}'"
        ) from None
    report = bench_model(kwargs.pop("model"), device_config(kwargs), lengths, new_tokens, repeats)
    click.echo(json.dumps(asdict(report), indent=2) if as_json else format_report(report))


def format_report(report: BenchReport) -> str:
    lines = [
        f"model {report.model} on {report.device} ({report.attention_backend}), "
        f"load {report.load_seconds:.2f} s, "
        f"peak RSS {report.peak_rss_mb:.0f} MB (steady {report.steady_rss_mb:.0f} MB), "
        f"median of {report.repeats} (min-max)",
        "| prompt | new | TTFT ms | TPOT ms | prefill tok/s | decode tok/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report.results:
        cells = [r.ttft_ms, r.tpot_ms, r.prefill_tokens_per_s, r.decode_tokens_per_s]
        shown = " | ".join(f"{s.median:.1f} ({s.low:.1f}-{s.high:.1f})" for s in cells)
        lines.append(f"| {r.prompt_tokens} | {r.new_tokens} | {shown} |")
    return "\n".join(lines)
