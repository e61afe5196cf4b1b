"""The ``towerwatch`` command: one entry point, subcommands loaded only when used.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from edge import __version__

# subcommand → "module:attribute" of its click command; imported only when it runs, so
# `towerwatch --help` never pays for numba, OpenCV or zeep.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("edge.commands.run", "command"),
    "config": ("edge.commands.config", "group"),
    "simulate": ("edge.commands.simulate", "group"),
    "record": ("edge.commands.record", "command"),
    "replay": ("edge.commands.replay", "command"),
    "linkbudget": ("edge.commands.linkbudget", "command"),
    "coverage": ("edge.commands.coverage", "command"),
    "doctor": ("edge.commands.doctor", "command"),
    "status": ("edge.commands.status", "command"),
    "calibrate": ("edge.commands.calibrate", "group"),
    "ptz": ("edge.commands.ptz", "group"),
    "test-alarm": ("edge.commands.test_alarm", "command"),
    "relay": ("edge.commands.relay", "group"),
    "snapshot": ("edge.commands.snapshot", "command"),
    "hub": ("edge.commands.hub", "group"),
}

SUMMARIES: dict[str, str] = {
    "run": "Run the tower daemon.",
    "config": "Check or show a tower config.",
    "simulate": "Simulated tower and world (for tests and demonstrations).",
    "record": "Record thermal frames (from a scenario) in the recording format.",
    "replay": "Run detection and suppression over a recording; JSON line per decision.",
    "linkbudget": "Detection range of the mission fires for this camera and weather.",
    "coverage": "Coverage map (GeoJSON for QGIS, PNG): sector, horizon, ranges, sources, roads.",
    "doctor": "Check the installation: config, files, secrets, devices, broker, disk, time.",
    "status": "Health of the running daemon (through its control socket).",
    "calibrate": "Head calibration from landmarks; known sources; exclusion masks; undo.",
    "ptz": "Read and move the pan-tilt head (where, goto, jog, release).",
    "test-alarm": "Send a test alarm through the running daemon to the hub.",
    "relay": "Test the alarm relay (siren) with read-back.",
    "snapshot": "PNG of the view now: thermal with colour bar, bearings and pixels; visible.",
    "hub": "County hub: fuse tower alarms, triangulate, serve the map and API.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target
        module = importlib.import_module(module_name)
        command = getattr(module, attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}.{attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUMMARIES.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="towerwatch")
def cli() -> None:
    """towerwatch: fire-watchtower gateway daemon and field tools."""


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="towerwatch", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
