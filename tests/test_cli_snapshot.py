"""`towerwatch snapshot` against the simulated tower: PNG with colour bar, bearings and visible."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np

from edge.commands.snapshot import bearing_ticks
from edge.config import load_config
from tests.towers import ROOT, SIM_CONFIG, SimTowerRun, _env, free_port, towerwatch

SCENARIO = ROOT / "benchmarks" / "scenarios" / "mission-2m-10km.yaml"


def test_bearing_ticks_follow_the_pose() -> None:
    cfg = load_config(SIM_CONFIG)
    ticks = bearing_ticks(cfg, 359.5, -0.3, 640, 512)
    bearings = [b for b, _ in ticks]
    assert 0.0 in bearings and 357.0 in bearings and 2.0 in bearings  # across north
    centre = dict(ticks)
    assert abs(centre[0.0] - (319.5 + 0.5 / (5.862 / 640))) < 2.0  # 0.5° right of centre


def test_snapshot_of_the_simulated_tower(tmp_path: Path) -> None:
    run = SimTowerRun(tmp_path, SCENARIO, free_port(), speed=1.0)
    png = tmp_path / "view.png"
    try:
        run.start_tower()
        result = subprocess.run(
            towerwatch(
                "snapshot",
                "--config",
                str(SIM_CONFIG),
                *run.sets(),
                "--output",
                str(png),
                "--runtime-dir",
                str(tmp_path / "no-daemon"),
                "--json",
            ),  # fmt: skip
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        run.stop()
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    lo_k, hi_k = doc["colour_bar_k"]
    assert 200.0 < lo_k < hi_k < 400.0
    image = cv2.imread(str(png))
    assert image.shape[0] == doc["height_px"] and image.shape[1] == doc["width_px"]
    # thermal (enlarged to ≥ 480 rows), colour bar, visible beside it
    assert image.shape[1] > 2 * 640
    green = np.all(image == (0, 255, 0), axis=2)
    assert green.sum() > 200  # centre cross, pixel ticks and bearing labels
