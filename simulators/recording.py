"""Record a scenario's simulated camera into the DESIGN recording format, with ground truth beside it."""

from __future__ import annotations

import json
from pathlib import Path

from drivers.recording import CameraMeta, RecordingWriter, TowerMeta
from simulators.scenario import load_scenario
from simulators.world import SimWorld


def record_scenario(
    scenario_path: str | Path,
    out_dir: str | Path,
    *,
    duration_s: float,
    fps: float,
    seed: int | None = None,
    pan_deg: float | None = None,
    tilt_deg: float | None = None,
    hfov_deg: float | None = None,
) -> int:
    """Render ``duration_s`` of the scenario at ``fps`` from its start; returns the frame count.

    Without a pose the camera points at the scenario's main event (its view, first fire,
    or first distractor). ``truth.jsonl`` holds one line per frame: the frame's file and
    time and every fire and distractor in view with kind, id and pixel x/y.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    scenario = load_scenario(scenario_path)
    world = SimWorld(scenario, seed=seed)
    auto_pan, auto_tilt = world.main_event_pose()
    pan = auto_pan if pan_deg is None else pan_deg
    tilt = auto_tilt if tilt_deg is None else tilt_deg
    if hfov_deg is None and scenario.view is not None:
        hfov_deg = scenario.view.hfov_deg
    pose = world.pose_for(pan, tilt, hfov_deg)
    camera = CameraMeta(pose.width_px, pose.height_px, pose.hfov_deg, pose.vfov_deg, True)
    tower = TowerMeta(
        scenario.tower.lat,
        scenario.tower.lon,
        scenario.tower.ground_elevation_m + scenario.tower.mast_height_m,
    )
    out = Path(out_dir)
    n_frames = max(1, int(round(duration_s * fps)))
    with (
        RecordingWriter(out, camera, tower) as writer,
        (out / "truth.jsonl").open("w", encoding="utf-8") as truth_file,
    ):
        for i in range(n_frames):
            t = scenario.start_unix + i / fps
            thermal, _, truth = world.render(pose.pan_deg, pose.tilt_deg, pose.hfov_deg, t)
            name = writer.write(thermal, t, pose.pan_deg, pose.tilt_deg, pose.hfov_deg)
            line = {
                "frame": i,
                "file": name,
                "t": t,
                "nuc": world.sensor.in_nuc(t),
                "objects": truth,
            }
            truth_file.write(json.dumps(line) + "\n")
    return n_frames
