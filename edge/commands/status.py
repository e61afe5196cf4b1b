"""`towerwatch status`: the running daemon's state, read through its control socket."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from edge.cli_support import EXIT_FAILURE, EXIT_USAGE, echo_json, fail, json_option
from edge.control import ControlClient, ControlError, DaemonNotRunning, socket_path

EXIT_UNHEALTHY = EXIT_FAILURE


def runtime_dir_option(func: Any) -> Any:
    return click.option(
        "--runtime-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder of the daemon's control socket "
        "(default: $TOWERWATCH_RUNTIME_DIR, $RUNTIME_DIRECTORY or /run/towerwatch).",
    )(func)


def client_for(runtime_dir: Path | None, timeout_s: float = 10.0) -> ControlClient:
    return ControlClient(socket_path(runtime_dir), timeout_s=timeout_s)


def call_or_exit(client: ControlClient, command: str, **args: Any) -> dict[str, Any]:
    """The daemon's answer, or one line on stderr: exit 2 without a daemon, 1 if refused."""
    try:
        return client.call(command, **args)
    except DaemonNotRunning as exc:
        fail(str(exc), EXIT_USAGE)
    except ControlError as exc:
        fail(f"{command}: {exc}", EXIT_FAILURE)


@click.command("status")
@json_option
@runtime_dir_option
def command(as_json: bool, runtime_dir: Path | None) -> None:
    """Show the running daemon's health; exit 0 when online, 1 otherwise, 2 if none runs."""
    doc = call_or_exit(client_for(runtime_dir), "status")
    if as_json:
        echo_json(doc)
    else:
        for line in render(doc):
            click.echo(line)
    if doc.get("state") != "online":
        raise SystemExit(EXIT_UNHEALTHY)


def _age(t: Any) -> str:
    if not isinstance(t, int | float):
        return ""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M:%SZ")


def _num(value: Any, fmt: str, unit: str = "") -> str:
    return "-" if not isinstance(value, int | float) else f"{value:{fmt}}{unit}"


def render(doc: dict[str, Any]) -> list[str]:
    """The readable table of a status document."""
    lines = [
        f"tower {doc.get('tower_id', '?')}: {str(doc.get('state', '?')).upper()}"
        f"   version {doc.get('version', '?')}, up {_num(doc.get('uptime_s'), '.0f', ' s')}"
    ]
    lines += [f"  reason: {r}" for r in doc.get("reasons", [])]
    lines.append("")
    lines.append(f"{'device':<10}{'state':<12}last error")
    for name, dev in sorted(doc.get("devices", {}).items()):
        error = dev.get("last_error") or ""
        when = _age(dev.get("last_error_at"))
        lines.append(f"{name:<10}{dev.get('state', '?'):<12}{error}{f' ({when})' if when else ''}")
    broker = doc.get("broker", {})
    link = "connected" if broker.get("connected") else "DISCONNECTED"
    lines.append("")
    lines.append(
        f"broker     {link}{'  ' + broker['last_error'] if broker.get('last_error') else ''}"
    )
    lines.append(f"outbox     {doc.get('outbox_depth', '-')} message(s) waiting")
    patrol = doc.get("patrol", {})
    lines.append(
        f"patrol     pan {_num(patrol.get('pan_deg'), '.2f', '°')}, tilt "
        f"{_num(patrol.get('tilt_deg'), '.2f', '°')}, cycle {_num(patrol.get('cycle_s'), '.0f', ' s')}"
        f"{'  (paused)' if patrol.get('paused') else ''}"
    )
    rng = doc.get("detection_range_m")
    lines.append(f"range      {_num(None if rng is None else rng / 1000, '.1f', ' km')} today")
    lines.append(f"frames     {_num(doc.get('frame_rate_hz'), '.1f', ' Hz')}")
    lines.append(
        f"process    CPU {_num(doc.get('cpu_s'), '.0f', ' s')}, "
        f"memory {_num(doc.get('memory_mb'), '.0f', ' MB')}"
    )
    drift = doc.get("drift")
    if drift:
        lines.append(
            f"drift      pan {_num(drift.get('pan_offset_deg'), '+.3f', '°')}, tilt "
            f"{_num(drift.get('tilt_offset_deg'), '+.3f', '°')} from "
            f"{drift.get('sightings', 0)} sightings{'  DEGRADED' if drift.get('degraded') else ''}"
        )
    alarms = doc.get("open_alarms", [])
    lines.append(f"alarms     {len(alarms)} open")
    for alarm in alarms:
        lines.append(
            f"  {alarm.get('alarm_id', '?')}: bearing {_num(alarm.get('bearing_deg'), '.2f', '°')}"
            f"{'  ' + str(alarm.get('state')) if alarm.get('state') else ''}"
        )
    return lines
