"""Shared pieces of the CLI subcommands: config options, exit codes, user errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from edge.config import ConfigError, TowerConfig, load_config

EXIT_OK = 0
EXIT_FAILURE = 1  # runtime failure (device, network, I/O)
EXIT_USAGE = 2  # usage or config error

# Where an installed tower keeps its config (systemd ConfigurationDirectory=towerwatch);
# TOWERWATCH_CONFIG overrides it, --config overrides both.
DEFAULT_CONFIG = "/etc/towerwatch/tower.yaml"
CONFIG_ENV = "TOWERWATCH_CONFIG"

F = TypeVar("F", bound=Callable[..., Any])


def config_options(func: F) -> F:
    """Adds ``--config PATH`` and repeatable ``--set key=value`` to a command."""
    func = click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config key, e.g. --set mqtt.port=1884 (repeatable).",
    )(func)
    func = click.option(
        "--config",
        "config",
        default=DEFAULT_CONFIG,
        envvar=CONFIG_ENV,
        show_default=True,
        show_envvar=True,
        type=click.Path(dir_okay=False),
        help="Tower config file (YAML).",
    )(func)
    return func


def json_option(func: F) -> F:
    """Adds ``--json``: one JSON document on stdout instead of the readable report."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the result as JSON on stdout."
    )(func)


def echo_json(document: Any) -> None:
    """Print ``document`` as one JSON document (UTF-8, keys in the order given)."""
    click.echo(json.dumps(document, ensure_ascii=False, indent=2))


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print one clear message on stderr and exit with ``code`` (no traceback)."""
    click.echo(f"towerwatch: {message}", err=True)
    sys.exit(code)


def load_or_exit(path: str, sets: Sequence[str] = ()) -> TowerConfig:
    """The validated config, or every problem on stderr and exit 2."""
    if not Path(path).exists():
        fail(
            f"{path}: no such config file; give --config PATH or set {CONFIG_ENV}",
            EXIT_USAGE,
        )
    try:
        return load_config(path, sets)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        n = len(exc.problems)
        click.echo(f"towerwatch: {path}: {n} problem{'s' if n != 1 else ''}", err=True)
        sys.exit(EXIT_USAGE)


def tool_logging(level: str = "warning") -> None:
    """Field tools print their result on stdout: driver logs go to stderr, warnings and up."""
    from edge.logs import setup_logging

    setup_logging(level, "console")
