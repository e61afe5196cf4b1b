"""`towerwatch simulate`: the simulated world and tower (``render`` draws one view of a scenario)."""

from __future__ import annotations

import datetime as dt

import click
import cv2
import numpy as np

from edge.cli_support import EXIT_USAGE, fail
from edge.commands import sim_county, sim_tower, sim_watch
from simulators.scenario import ScenarioError, load_scenario
from simulators.world import SimWorld


@click.group("simulate")
def group() -> None:
    """Simulated world and tower."""


def _parse_time(text: str) -> float:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--t: {text!r} is not an ISO 8601 time (e.g. 2024-04-10T11:00:00Z)", EXIT_USAGE)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def side_by_side(thermal_k: np.ndarray, visible_bgr: np.ndarray) -> np.ndarray:
    """Colour-mapped thermal frame, visible frame and a labelled temperature colour bar."""
    lo, hi = np.percentile(thermal_k, [0.5, 99.9])
    hi = max(float(hi), float(lo) + 1.0)
    grey = np.clip((thermal_k - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    colour = cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)
    h = thermal_k.shape[0]
    bar = np.zeros((h, 90, 3), dtype=np.uint8)
    ramp = np.linspace(255, 0, h).astype(np.uint8)[:, None]
    bar[:, 8:28] = cv2.applyColorMap(np.repeat(ramp, 20, axis=1), cv2.COLORMAP_INFERNO)
    for i in range(6):
        y = int(i * (h - 1) / 5)
        kelvin = hi - i * (hi - lo) / 5
        cv2.putText(
            bar,
            f"{kelvin:.1f}K",
            (30, min(h - 4, max(12, y + 4))),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.38,
            (255, 255, 255),
            1,
        )
    return np.hstack([colour, bar, visible_bgr])


@group.command("render")
@click.option(
    "--scenario",
    "scenario",
    required=True,
    type=click.Path(dir_okay=False),
    help="Scenario YAML file.",
)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--t", "when", default=None, help="UTC time, ISO 8601 (default: the scenario start).")
@click.option(
    "--pan",
    "pan_deg",
    default=None,
    type=float,
    help="Pan in degrees (default: at the main event).",
)
@click.option(
    "--tilt",
    "tilt_deg",
    default=None,
    type=float,
    help="Tilt in degrees (default: at the main event).",
)
@click.option(
    "--hfov", "hfov_deg", default=None, type=float, help="Horizontal field of view in degrees."
)
def render(
    scenario: str,
    out: str,
    when: str | None,
    pan_deg: float | None,
    tilt_deg: float | None,
    hfov_deg: float | None,
) -> None:
    """Write the thermal (colour-mapped, with a temperature bar) and visible frames side by side."""
    try:
        scn = load_scenario(scenario)
    except ScenarioError as exc:
        fail(str(exc), EXIT_USAGE)
    world = SimWorld(scn)
    auto_pan, auto_tilt = world.main_event_pose()
    t = scn.start_unix if when is None else _parse_time(when)
    pan = auto_pan if pan_deg is None else pan_deg
    tilt = auto_tilt if tilt_deg is None else tilt_deg
    thermal, visible, truth = world.render(pan, tilt, hfov_deg, t)
    if not cv2.imwrite(out, side_by_side(thermal, visible)):
        fail(f"--out {out}: could not write the PNG (check the folder and the .png extension)")
    click.echo(
        f"{out}: pan {pan:.3f}°, tilt {tilt:.3f}°, {thermal.min():.1f}–{thermal.max():.1f} K, {len(truth)} objects in view"
    )
    for obj in truth:
        click.echo(
            f"  {obj['kind']} {obj['id']} at x={obj['x']} y={obj['y']} range {obj['range_m'] / 1000:.2f} km visible={obj['visible']}"
        )


group.add_command(sim_tower.tower)
group.add_command(sim_county.county)
group.add_command(sim_watch.watch)
