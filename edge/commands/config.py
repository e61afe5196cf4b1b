"""`towerwatch config check|show`: validate a tower config, or print it with defaults."""

from __future__ import annotations

import json

import click

from edge.cli_support import config_options, load_or_exit


@click.group("config")
def group() -> None:
    """Check or show a tower config."""


@group.command("check")
@config_options
def check(config: str, sets: tuple[str, ...]) -> None:
    """Validate the config: every problem with its file, line and key; exit 2 if any."""
    cfg = load_or_exit(config, sets)
    click.echo(
        f"{config}: ok (tower {cfg.tower.id}, thermal {cfg.thermal.type}, ptz {cfg.ptz.type}, "  # type: ignore[attr-defined]
        f"hfov {cfg.camera.hfov_deg:.2f}°)"
    )


@group.command("show")
@config_options
def show(config: str, sets: tuple[str, ...]) -> None:
    """Print the effective config (defaults filled in) as JSON."""
    cfg = load_or_exit(config, sets)
    click.echo(json.dumps(cfg.model_dump(mode="json"), indent=2))
