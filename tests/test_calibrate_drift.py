"""`towerwatch calibrate apply-drift`: the daemon's drift measurement written into the config."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.ptz_calibration import PtzCalibration
from edge.commands.calibrate import backups_of, thermal_lens, tower_site
from edge.config import load_config
from edge.control import ControlServer, socket_path, status_document
from edge.drift import DriftSighting, DriftWatch, KnownPoint
from edge.geodesy import destination
from edge.geolocation import Pose, bearing_elevation_pixel, bearing_elevation_to
from tests.towers import ROOT, SIM_CONFIG, _env, towerwatch


def test_apply_drift_writes_the_measured_offset(tmp_path: Path) -> None:
    config = tmp_path / "tower.yaml"
    shutil.copy(SIM_CONFIG, config)
    cfg = load_config(config)
    site, lens = tower_site(cfg), thermal_lens(cfg)
    configured = PtzCalibration()
    actual = PtzCalibration(pan_offset_deg=0.2, tilt_offset_deg=-0.12)  # the head moved
    points = []
    for name, bearing in (("flare", 100.0), ("chimney", 160.0)):
        lat, lon = destination(site.lat, site.lon, bearing, 7000.0)
        points.append(KnownPoint(name, float(lat), float(lon), 120.0))
    watch = DriftWatch(site, configured, lens, points)
    rng = np.random.default_rng(5)
    for i in range(8):
        p = points[i % 2]
        az, el = bearing_elevation_to(site, p.lat, p.lon, p.height_m)
        raw_pan, raw_tilt = actual.to_device(az + rng.uniform(-2, 2), -0.3)
        u, v = bearing_elevation_pixel(az, el, Pose(*actual.to_true(raw_pan, raw_tilt)), lens)
        assert watch.add(DriftSighting(p.name, float(i), raw_pan, raw_tilt, float(u), float(v)))

    def status(_args: dict[str, Any]) -> dict[str, Any]:
        return status_document(tower_id="sim-tower-01", state="degraded", reasons=["drift"],
                               uptime_s=1.0, devices={}, broker={"connected": True},
                               outbox_depth=0, patrol={}, detection_range_m=None,
                               open_alarms=[], frame_rate_hz=None,
                               drift=watch.report().as_dict())  # fmt: skip

    folder = Path(tempfile.mkdtemp(prefix="tw-", dir="/tmp"))
    try:
        with ControlServer(socket_path(folder), {"status": status}):
            result = subprocess.run(
                towerwatch(
                    "calibrate",
                    "apply-drift",
                    "--config",
                    str(config),
                    "--yes",
                    "--runtime-dir",
                    str(folder),
                ),  # fmt: skip
                cwd=ROOT,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    written = load_config(config).ptz.calibration  # type: ignore[attr-defined]
    assert written.pan_offset_deg == pytest.approx(0.2, abs=0.005)
    assert written.tilt_offset_deg == pytest.approx(-0.12, abs=0.005)
    assert len(backups_of(config)) == 1
    assert "drift measured from 8 sightings of 2 sources" in result.stderr
