"""`towerwatch replay` decides exactly as the daemon's thermal stage on the same frames."""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from drivers.base import Frame
from drivers.recording import open_recording
from edge.config import load_config
from edge.daemon import TowerDaemon
from edge.geodesy import destination
from edge.replay import replay
from simulators.recording import record_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "benchmarks" / "scenarios"


def tower_config(tmp_path: Path) -> Path:
    """The simulated tower with the scenario's road mapped and the parked van as a known source."""
    data = yaml.safe_load((ROOT / "config" / "simulated.yaml").read_text(encoding="utf-8"))
    lat, lon = data["tower"]["lat"], data["tower"]["lon"]

    def point(bearing_deg: float, range_m: float) -> dict[str, float]:
        p_lat, p_lon = destination(lat, lon, bearing_deg, range_m)
        return {"lat": float(p_lat), "lon": float(p_lon)}

    data["roads"] = [
        {"name": "dirt", "width_m": 5.0, "points": [point(45, 10_000), point(45, 2000)]}
    ]
    van = point(45, 3550)
    data["known_sources"] = [{"name": "depot", "kind": "building", **van, "radius_m": 60.0}]
    data["storage"] = {"state_dir": str(tmp_path / "state")}
    path = tmp_path / "tower.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("scenario", "duration_s", "expect"),
    [("truck-toward-tower", 20.0, "known_source"), ("mission-2m-10km", 8.0, "candidate")],
)
def test_replay_gives_the_daemons_decisions(
    tmp_path: Path, scenario: str, duration_s: float, expect: str
) -> None:
    record_scenario(SCENARIOS / f"{scenario}.yaml", tmp_path / "rec", duration_s=duration_s,
                    fps=3.0)  # fmt: skip
    cfg = load_config(tower_config(tmp_path))

    # the daemon's own thermal stage, built as the daemon builds it, fed frame by frame
    stage = TowerDaemon(cfg, stop=threading.Event()).thermal_stage
    daemon_candidates = []
    for seq, (kelvin, meta) in enumerate(open_recording(tmp_path / "rec")):
        frame = Frame(kelvin, meta.t, seq, True, meta.pan_deg, meta.tilt_deg, meta.hfov_deg)
        pose = (meta.pan_deg, meta.tilt_deg, meta.hfov_deg)
        for c in stage.process(frame, pose, meta.t):
            daemon_candidates.append((c.t, round(c.x, 3), round(c.y, 3)))

    out = io.StringIO()
    replay(str(tmp_path / "rec"), cfg, out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    replay_candidates = [(d["t"], d["x"], d["y"]) for d in lines if d["event"] == "candidate"]
    replay_rejections = Counter(d["reason"] for d in lines if d["event"] == "rejected")

    assert replay_candidates == daemon_candidates
    assert replay_rejections == stage.rejections
    if expect == "candidate":
        assert replay_candidates, "the fire must be a candidate"
        assert np.isfinite([t for t, _, _ in replay_candidates]).all()
    else:
        # the tower's own knowledge decided it: a replay without it would differ
        assert replay_rejections[expect] > 0, replay_rejections
