"""`towerwatch relay test`: close the alarm relay (siren, strobe) briefly and confirm it.

Through the running daemon when there is one (its driver owns the port); otherwise the
relay's driver is opened here. Every state is confirmed by reading the output back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from edge.cli_support import (
    EXIT_FAILURE,
    EXIT_USAGE,
    config_options,
    echo_json,
    fail,
    json_option,
    load_or_exit,
    tool_logging,
)
from edge.commands.status import call_or_exit, client_for, runtime_dir_option
from edge.control import MAX_RELAY_TEST_S, ControlError, DaemonNotRunning, relay_pulse


@click.group("relay")
def group() -> None:
    """The alarm relay (siren, strobe)."""


@group.command("test")
@config_options
@json_option
@runtime_dir_option
@click.option(
    "--seconds",
    "on_s",
    type=click.FloatRange(0.1, MAX_RELAY_TEST_S),
    default=2.0,
    show_default=True,
    help="How long the relay stays closed.",
)
@click.option("--yes", "assume_yes", is_flag=True, help="Do not ask (the siren will sound).")
def test(
    config: str,
    sets: tuple[str, ...],
    as_json: bool,
    runtime_dir: Path | None,
    on_s: float,
    assume_yes: bool,
) -> None:
    """Close the relay for --seconds and open it again, confirming both on read-back."""
    tool_logging()
    cfg = load_or_exit(config, sets)
    if cfg.relay is None:
        fail("no relay is configured (relay section)", EXIT_USAGE)
    if not assume_yes and not click.confirm(
        f"the siren will sound for {on_s:g} s; go on?", err=True
    ):
        fail("not tested", EXIT_FAILURE)
    client = client_for(runtime_dir, timeout_s=on_s + 15.0)
    try:
        client.call("ping")
        result = call_or_exit(client, "relay.test", on_s=on_s)
    except DaemonNotRunning:
        result = _direct(cfg, on_s)
    if as_json:
        echo_json(result)
    else:
        click.echo(
            f"relay ok: closed (confirmed in {result['closed_confirmed_s']:.2f} s), "
            f"held {on_s:g} s, opened (confirmed in {result['opened_confirmed_s']:.2f} s)"
        )


def _direct(cfg: Any, on_s: float) -> dict[str, Any]:
    from drivers.base import DriverError
    from drivers.registry import driver_module
    from edge.secrets import FileSecretStore

    settings: Any = cfg.relay
    try:
        driver = driver_module("relay", settings.type).Driver(
            settings, FileSecretStore.from_config(cfg)
        )
        driver.open()
    except DriverError as exc:
        fail(str(exc), EXIT_FAILURE)
    try:
        deadline = time.monotonic() + 10.0
        while driver.output() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if driver.output() is None:
            error = driver.health().last_error or "no read-back"
            fail(f"relay: not answering in 10 s: {error}", EXIT_FAILURE)
        return relay_pulse(driver, on_s)
    except ControlError as exc:
        fail(f"relay: {exc}", EXIT_FAILURE)
    finally:
        driver.close()
