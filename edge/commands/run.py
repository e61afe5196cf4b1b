"""`towerwatch run`: the tower daemon (what systemd starts)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from edge.cli_support import EXIT_FAILURE, config_options, fail, load_or_exit
from edge.logs import setup_logging


@click.command("run")
@config_options
@click.option(
    "--duration",
    "duration_s",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Stop cleanly after this many seconds of tower time (simulated time against a "
    "simulated tower).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="Override logging.level from the config.",
)
def command(
    config: str, sets: tuple[str, ...], duration_s: float | None, log_level: str | None
) -> None:
    """Run the tower daemon until SIGTERM, Ctrl-C or --duration."""
    cfg = load_or_exit(config, sets)
    setup_logging(log_level or cfg.logging.level, cfg.logging.format)
    from drivers.base import DriverError
    from edge.daemon import TowerDaemon

    stop = threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    try:
        code = TowerDaemon(cfg, stop=stop, duration_s=duration_s).run()
    except DriverError as exc:
        fail(str(exc), EXIT_FAILURE)
    except OSError as exc:
        fail(f"{exc.filename or ''}: {exc.strerror or exc}", EXIT_FAILURE)
    raise SystemExit(code)
