"""`towerwatch replay RECORDING`: the thermal detection and suppression pipeline over a recording."""

from __future__ import annotations

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
def command(recording: str, config: str | None) -> None:
    """Print one JSON line per decision (candidate or rejected, with its reason)."""
    cfg = load_or_exit(config) if config is not None else None
    try:
        replay(recording, cfg, sys.stdout)
    except RecordingError as exc:
        fail(f"recording {exc}", EXIT_USAGE)
