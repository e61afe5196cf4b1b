"""`towerwatch record`: write a simulated scenario as a recording (DESIGN format) with ground truth."""

from __future__ import annotations

import click

from edge.cli_support import EXIT_USAGE, fail
from simulators.recording import record_scenario
from simulators.scenario import ScenarioError


@click.command("record")
@click.option(
    "--scenario",
    "scenario",
    required=True,
    type=click.Path(dir_okay=False),
    help="Scenario YAML file.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Recording folder to write.",
)
@click.option(
    "--duration",
    "duration_s",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds of scenario time.",
)
@click.option(
    "--fps",
    "fps",
    default=9.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Frames per second.",
)
@click.option("--seed", "seed", default=None, type=int, help="Override the scenario's seed.")
@click.option(
    "--pan", "pan_deg", default=None, type=float, help="Camera pan (default: at the main event)."
)
@click.option(
    "--tilt", "tilt_deg", default=None, type=float, help="Camera tilt (default: at the main event)."
)
@click.option(
    "--hfov",
    "hfov_deg",
    default=None,
    type=float,
    help="Horizontal field of view (default: patrol lens).",
)
def command(
    scenario: str,
    out: str,
    duration_s: float,
    fps: float,
    seed: int | None,
    pan_deg: float | None,
    tilt_deg: float | None,
    hfov_deg: float | None,
) -> None:
    """Render the scenario and write recording.json, frames.jsonl, frames/*.png and truth.jsonl."""
    try:
        n = record_scenario(
            scenario,
            out,
            duration_s=duration_s,
            fps=fps,
            seed=seed,
            pan_deg=pan_deg,
            tilt_deg=tilt_deg,
            hfov_deg=hfov_deg,
        )
    except ScenarioError as exc:
        fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        fail(f"{out}: cannot write the recording: {exc.strerror}")
    click.echo(f"{out}: {n} frames")
