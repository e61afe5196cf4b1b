"""`towerwatch simulate`: the simulated world and tower (``render`` draws one view of a scenario)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import click
import cv2
import numpy as np

from edge.cli_support import EXIT_USAGE, fail, load_or_exit
from edge.commands import sim_county, sim_tower, sim_watch
from simulators.scenario import Scenario, ScenarioError, load_scenario
from simulators.world import SimWorld


@click.group("simulate")
def group() -> None:
    """Simulated world: one tower, a county of towers, a rendered view; what the broker carries."""


def _parse_time(text: str) -> float:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--t: {text!r} is not an ISO 8601 time (e.g. 2024-04-10T11:00:00Z)", EXIT_USAGE)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


# Fire markers: a ring wide enough to find a fire of one or two pixels in a 640 px frame.
_MARK_RADIUS_PX = 9
_MARK_BGR = (255, 255, 0)  # cyan: apart from every colour of the inferno map


def _bar_labels(lo_k: float, hi_k: float, frame_min_k: float, frame_max_k: float) -> list[str]:
    """Six labels from the top of the bar down; an end that clips the frame says so."""
    labels = [f"{hi_k - i * (hi_k - lo_k) / 5:.1f}K" for i in range(6)]
    if frame_max_k > hi_k + 0.05:
        labels[0] = f">={hi_k:.1f}K"
    if frame_min_k < lo_k - 0.05:
        labels[-1] = f"<={lo_k:.1f}K"
    return labels


def side_by_side(
    thermal_k: np.ndarray, visible_bgr: np.ndarray, marks: Sequence[tuple[float, float, str]] = ()
) -> np.ndarray:
    """Colour-mapped thermal frame, a labelled temperature bar and the visible frame.

    The colours stretch over the 0.5–99.9 % of the frame's temperatures, so a fire would
    otherwise flatten the ground to one colour; when the frame goes beyond the bar, the
    bar's end says so and the frame's own range is written under it. ``marks`` are
    (x, y, label) rings drawn on both frames.
    """
    lo, hi = (float(v) for v in np.percentile(thermal_k, [0.5, 99.9]))
    hi = max(hi, lo + 1.0)
    grey = np.clip((thermal_k - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    colour = cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)
    visible = visible_bgr.copy()
    for x, y, label in marks:
        for image in (colour, visible):
            centre = (int(round(x)), int(round(y)))
            cv2.circle(image, centre, _MARK_RADIUS_PX, _MARK_BGR, 1, cv2.LINE_8)
            cv2.putText(image, label, (centre[0] + _MARK_RADIUS_PX + 3, centre[1] + 4),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, _MARK_BGR, 1, cv2.LINE_AA)  # fmt: skip
    h = thermal_k.shape[0]
    bar = np.zeros((h, 96, 3), dtype=np.uint8)
    ramp = np.linspace(255, 0, h).astype(np.uint8)[:, None]
    bar[:, 8:28] = cv2.applyColorMap(np.repeat(ramp, 20, axis=1), cv2.COLORMAP_INFERNO)
    frame_min, frame_max = float(thermal_k.min()), float(thermal_k.max())
    for i, text in enumerate(_bar_labels(lo, hi, frame_min, frame_max)):
        y = int(i * (h - 1) / 5)
        cv2.putText(bar, text, (30, min(h - 4, max(12, y + 4))), cv2.FONT_HERSHEY_SIMPLEX,
                    0.36, (255, 255, 255), 1)  # fmt: skip
    if frame_max > hi + 0.05 or frame_min < lo - 0.05:
        # between the top two labels: the frame's own range, which the bar clips
        for j, text in enumerate(("frame:", f"{frame_min:.1f}-", f"{frame_max:.1f}K")):
            y = int(h / 5 * (j + 1) / 4) + 12
            cv2.putText(bar, text, (30, y), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (200, 200, 200), 1)
    return np.hstack([colour, bar, visible])


def burning_moment(scn: Scenario) -> float:
    """A time the first fire burns: a minute after it ignites, or halfway through a shorter life."""
    if not scn.fires:
        return scn.start_unix
    fire = scn.fires[0]
    after_s = 60.0 if fire.stop_s is None else min(60.0, (fire.stop_s - fire.start_s) / 2.0)
    return scn.start_unix + fire.start_s + after_s


def _tower_view(path: str, tower_id: str | None) -> Scenario:
    """A tower scenario, or one tower's view of a county scenario (``--tower``, else its first)."""
    from simulators.county import is_county, load_county
    from simulators.scenario import Tower, read_text

    if not is_county(read_text(path)):
        if tower_id is not None:
            fail(f"--tower {tower_id}: {path} is a one-tower scenario", EXIT_USAGE)
        return load_scenario(path)
    county = load_county(path)
    ids = [t.id for t in county.towers]
    index = ids.index(tower_id) if tower_id in ids else 0 if tower_id is None else -1
    if index < 0:
        fail(f"--tower {tower_id}: {path} has towers {', '.join(ids)}", EXIT_USAGE)
    cfg = load_or_exit(county.towers[index].config)
    t = cfg.tower
    where = Tower(id=t.id, lat=t.lat, lon=t.lon, ground_elevation_m=t.ground_elevation_m,
                  mast_height_m=t.mast_height_m)  # fmt: skip
    cam = cfg.camera
    scenario = county.tower_scenario(index, where)
    camera = scenario.camera.model_copy(
        update={"width_px": cam.width_px, "height_px": cam.height_px,
                "pixel_pitch_um": cam.pixel_pitch_um, "focal_length_mm": cam.focal_length_mm,
                "f_number": cam.f_number, "netd_mk": cam.netd_mk}
    )  # fmt: skip
    return scenario.model_copy(update={"camera": camera})


@group.command("render")
@click.option(
    "--scenario",
    "scenario",
    required=True,
    type=click.Path(dir_okay=False),
    help="Scenario YAML file (a tower's, or a county's with --tower).",
)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--t", "when", default=None,
              help="UTC time, ISO 8601 (default: a minute after the first fire ignites).")  # fmt: skip
@click.option("--tower", "tower_id", default=None,
              help="Which tower of a county scenario looks (default: its first).")  # fmt: skip
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
    tower_id: str | None,
    pan_deg: float | None,
    tilt_deg: float | None,
    hfov_deg: float | None,
) -> None:
    """Write the thermal (colour-mapped, with a temperature bar) and visible frames side by side.

    Fires in view are ringed and named on both frames, however few pixels they cover.
    """
    try:
        scn = _tower_view(scenario, tower_id)
    except ScenarioError as exc:
        fail(str(exc), EXIT_USAGE)
    world = SimWorld(scn)
    auto_pan, auto_tilt = world.main_event_pose()
    t = burning_moment(scn) if when is None else _parse_time(when)
    pan = auto_pan if pan_deg is None else pan_deg
    tilt = auto_tilt if tilt_deg is None else tilt_deg
    thermal, visible, truth = world.render(pan, tilt, hfov_deg, t)
    fires = [(o["x"], o["y"], str(o["id"])) for o in truth if o["kind"] == "fire"]
    if not cv2.imwrite(out, side_by_side(thermal, visible, fires)):
        fail(f"--out {out}: could not write the PNG (check the folder and the .png extension)")
    moment = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    click.echo(
        f"{out}: {scn.tower.id} at {moment}, pan {pan:.2f}°, tilt {tilt:.2f}°, "
        f"{thermal.min():.1f}–{thermal.max():.1f} K, {len(truth)} objects in view"
    )
    for obj in truth:
        click.echo(
            f"  {obj['kind']} {obj['id']} at x={obj['x']} y={obj['y']} range {obj['range_m'] / 1000:.2f} km visible={obj['visible']}"
        )


group.add_command(sim_tower.tower)
group.add_command(sim_county.county)
group.add_command(sim_watch.watch)
