"""`towerwatch replay RECORDING`: the thermal detection and suppression pipeline over a recording."""

from __future__ import annotations

import json
import sys

import click

from drivers.recording import RecordingError
from edge.cli_support import EXIT_USAGE, fail, load_or_exit
from edge.replay import replay


@click.command("replay")
@click.argument("recording", type=click.Path(file_okay=False))
@click.option(
    "--config",
    "config",
    default=None,
    type=click.Path(dir_okay=False),
    help="Tower config: its detection thresholds, known heat sources and mast height (horizon).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Write the closing summary on stderr as one JSON object instead of text.",
)
def command(recording: str, config: str | None, as_json: bool) -> None:
    """Print one JSON line per decision (candidate or rejected, with its reason).

    A summary follows on stderr: decisions per reason, candidates and the config used.
    """
    cfg = load_or_exit(config) if config is not None else None
    try:
        summary = replay(recording, cfg, sys.stdout, config_label=config)
    except RecordingError as exc:
        fail(f"recording {exc}", EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(summary.to_dict()), err=True)
    else:
        click.echo(summary.text(), err=True)
