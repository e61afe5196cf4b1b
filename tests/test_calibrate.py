"""`towerwatch calibrate` against the simulated head with planted mount errors."""

from __future__ import annotations

import difflib
import json
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from drivers.ptz_calibration import PtzCalibration
from edge.calibration import true_pose
from edge.cli import cli
from edge.commands.calibrate import backups_of, thermal_lens, tower_site, with_calibration
from edge.config import load_config
from edge.geodesy import destination, geodesic_inverse
from edge.geolocation import (
    Lens,
    Pose,
    TowerSite,
    bearing_elevation_pixel,
    bearing_elevation_to,
    geolocate_pixel,
)
from simulators.clock import SimClock
from simulators.head import MountErrors, SimulatedHead

ROOT = Path(__file__).resolve().parent.parent
PLANTED = MountErrors(north_deg=1.234, tilt_deg=-0.3, level_a_deg=0.05, level_b_deg=-0.03,
                      roll_deg=0.4)  # fmt: skip
NOISE_DEG = 0.01
TOLERANCE_DEG = 0.02
# (bearing, distance, height above the tower's ground) of six surveyed landmarks.
LAYOUT = ((15.0, 6200.0, 60.0), (80.0, 9400.0, 120.0), (140.0, 4100.0, 35.0),
          (205.0, 12800.0, 150.0), (260.0, 7300.0, 80.0), (320.0, 3300.0, 45.0))  # fmt: skip


def _wrap180(angle_deg: float) -> float:
    return (angle_deg + 180.0) % 360.0 - 180.0


class Technician:
    """Centres landmarks on the simulated head and reads its raw angles, as in the field."""

    def __init__(self, head: SimulatedHead, rng: np.random.Generator) -> None:
        self.head = head
        self.rng = rng

    def _settle(self) -> None:
        deadline = time.monotonic() + 10.0
        while self.head.state().moving:
            assert time.monotonic() < deadline, "the simulated head never settled"
            time.sleep(0.001)

    def centre(self, azimuth_deg: float, elevation_deg: float) -> tuple[float, float]:
        """Raw angles that put the direction on the image centre (found by looking)."""
        raw_pan, raw_tilt = azimuth_deg, elevation_deg
        for _ in range(5):
            self.head.command_absolute(raw_pan % 360.0, raw_tilt)
            self._settle()
            pan, tilt, _ = self.head.true_pose()
            raw_pan += _wrap180(azimuth_deg - pan)
            raw_tilt += elevation_deg - tilt
        return self.read()

    def read(self) -> tuple[float, float]:
        state = self.head.state()
        noise = self.rng.normal(0.0, NOISE_DEG, 2)
        return state.raw_pan_deg + float(noise[0]), state.raw_tilt_deg + float(noise[1])

    def look(self, raw_pan_deg: float, raw_tilt_deg: float) -> None:
        self.head.command_absolute(raw_pan_deg % 360.0, raw_tilt_deg)
        self._settle()


def _landmark_file(tmp_path: Path, cfg_path: Path, rng: np.random.Generator) -> Path:
    cfg = load_config(cfg_path)
    site = tower_site(cfg)
    lens = thermal_lens(cfg)
    k = cfg.geolocation.refraction_k
    # No backlash: the test measures the fit, not the gears (the patrol's one-sided
    # approach makes backlash a constant offset that calibration absorbs).
    head = SimulatedHead(SimClock(0.0, speed=2000.0), backlash_deg=0.0, mount=PLANTED)
    tech = Technician(head, rng)
    entries = []
    for bearing, distance_m, height_m in LAYOUT:
        lat, lon = destination(site.lat, site.lon, bearing, distance_m)
        lat, lon = float(lat), float(lon)
        height = cfg.tower.ground_elevation_m + height_m
        azimuth, elevation = bearing_elevation_to(site, lat, lon, height, k)
        raw_pan, raw_tilt = tech.centre(azimuth, elevation)
        off_centre = []
        # The landmark seen near the image's corners (as the automatic sweep collects it).
        for dx, dy in [
            (x, y) for x in np.linspace(-2.7, 2.7, 16) for y in np.linspace(-2.1, 2.1, 12)
        ]:
            tech.look(raw_pan - dx, raw_tilt + dy)
            read_pan, read_tilt = tech.read()
            pan, tilt, _ = head.true_pose()
            u, v = bearing_elevation_pixel(
                azimuth, elevation, Pose(pan, tilt, PLANTED.roll_deg), lens
            )
            u_px, v_px = float(u) + rng.normal(0, 0.1), float(v) + rng.normal(0, 0.1)
            if 0 <= u_px < cfg.camera.width_px and 0 <= v_px < cfg.camera.height_px:
                off_centre.append({"pan_raw_deg": float(read_pan), "tilt_raw_deg": float(read_tilt),
                                   "u_px": float(u_px), "v_px": float(v_px)})  # fmt: skip
        entries.append({"name": f"mast {bearing:g}", "lat": lat, "lon": lon, "height_m": float(height),
                        "pan_raw_deg": float(raw_pan), "tilt_raw_deg": float(raw_tilt),
                        "off_centre": off_centre})  # fmt: skip
    path = tmp_path / "landmarks.yaml"
    path.write_text(yaml.safe_dump({"landmarks": entries}, sort_keys=False))
    return path


@pytest.fixture
def tower_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "tower.yaml"
    shutil.copy(ROOT / "config" / "simulated.yaml", path)
    return path


def test_calibrate_north_recovers_every_planted_mount_error(
    tmp_path: Path, tower_yaml: Path
) -> None:
    landmarks = _landmark_file(tmp_path, tower_yaml, np.random.default_rng(7))
    before = tower_yaml.read_text()
    result = CliRunner().invoke(
        cli,
        [
            "calibrate",
            "north",
            "--config",
            str(tower_yaml),
            "--landmarks",
            str(landmarks),
            "--json",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accepted"] and report["residual_rms_deg"] < TOLERANCE_DEG
    assert len(report["landmarks"]) == 6
    assert report["roll"]["sightings"] > 100
    written = load_config(tower_yaml).ptz.calibration  # type: ignore[attr-defined]
    assert written.pan_offset_deg == pytest.approx(PLANTED.north_deg, abs=TOLERANCE_DEG)
    assert written.tilt_offset_deg == pytest.approx(PLANTED.tilt_deg, abs=TOLERANCE_DEG)
    assert written.level_a_deg == pytest.approx(PLANTED.level_a_deg, abs=TOLERANCE_DEG)
    assert written.level_b_deg == pytest.approx(PLANTED.level_b_deg, abs=TOLERANCE_DEG)
    assert written.roll_deg == pytest.approx(PLANTED.roll_deg, abs=TOLERANCE_DEG)
    # Only the calibration block was added; every other line (comments included) is kept.
    changes = [ln for ln in difflib.ndiff(before.splitlines(), tower_yaml.read_text().splitlines())
               if ln[:2] in ("+ ", "- ")]  # fmt: skip
    assert changes and all(re.match(r"\+ (  calibration:|    \w+: -?[\d.]+)$", c) for c in changes)
    (backup,) = backups_of(tower_yaml)
    assert backup.read_text() == before

    undo = CliRunner().invoke(cli, ["calibrate", "undo", "--config", str(tower_yaml), "--yes"])
    assert undo.exit_code == 0, undo.output
    assert tower_yaml.read_text() == before
    assert backups_of(tower_yaml) == []


def test_calibrate_level_keeps_the_pan_offset(tmp_path: Path, tower_yaml: Path) -> None:
    landmarks = _landmark_file(tmp_path, tower_yaml, np.random.default_rng(11))
    result = CliRunner().invoke(
        cli,
        [
            "calibrate",
            "level",
            "--config",
            str(tower_yaml),
            "--landmarks",
            str(landmarks),
            "--yes",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    written = load_config(tower_yaml).ptz.calibration  # type: ignore[attr-defined]
    assert written.pan_offset_deg == 0.0
    assert written.tilt_offset_deg == pytest.approx(PLANTED.tilt_deg, abs=TOLERANCE_DEG)
    assert "(kept)" in result.stdout


def test_a_bad_sighting_is_refused_naming_the_landmark(tmp_path: Path, tower_yaml: Path) -> None:
    landmarks = _landmark_file(tmp_path, tower_yaml, np.random.default_rng(3))
    doc = yaml.safe_load(landmarks.read_text())
    doc["landmarks"][2]["pan_raw_deg"] += 0.3  # centred on the wrong mast
    landmarks.write_text(yaml.safe_dump(doc))
    before = tower_yaml.read_text()
    result = CliRunner().invoke(
        cli,
        [
            "calibrate",
            "north",
            "--config",
            str(tower_yaml),
            "--landmarks",
            str(landmarks),
            "--yes",
        ],  # fmt: skip
    )
    assert result.exit_code == 1
    assert "refused" in result.stderr and "mast 140" in result.stderr
    assert tower_yaml.read_text() == before


def test_too_few_landmarks_and_unknown_keys_are_usage_errors(
    tmp_path: Path, tower_yaml: Path
) -> None:
    path = tmp_path / "few.yaml"
    path.write_text(yaml.safe_dump({"landmarks": [
        {"name": "a", "lat": 46.95, "lon": 20.1, "height_m": 100, "pan_raw_deg": 1.0, "tilt_raw_deg": 0.0},
        {"name": "b", "lat": 46.85, "lon": 20.1, "height_m": 100},
    ]}))  # fmt: skip
    runner = CliRunner()
    few = runner.invoke(
        cli, ["calibrate", "north", "--config", str(tower_yaml), "--landmarks", str(path)]
    )
    assert few.exit_code == 2
    assert "need at least 3 centred landmarks" in few.stderr and "not yet sighted: b" in few.stderr
    path.write_text(
        yaml.safe_dump({"landmarks": [{"name": "a", "lat": 95, "lon": 0, "height_m": 1}]})
    )
    bad = runner.invoke(
        cli, ["calibrate", "north", "--config", str(tower_yaml), "--landmarks", str(path)]
    )
    assert bad.exit_code == 2
    assert "landmarks.0.lat" in bad.stderr
    assert "Traceback" not in bad.output


def test_with_calibration_adds_a_missing_block_and_keeps_comments() -> None:
    text = "schema_version: 1\nptz:   # the head\n  type: onvif\n  host: h  # camera\n\nlidar:\n  type: serial\n"
    out = with_calibration(text, "t.yaml", {"pan_offset_deg": 1.5, "pan_sign": 1})
    assert (
        "  host: h  # camera\n  calibration:\n    pan_offset_deg: 1.5000\n    pan_sign: 1\n" in out
    )
    assert out.endswith("\nlidar:\n  type: serial\n")
    again = with_calibration(out, "t.yaml", {"pan_offset_deg": -2.0, "roll_deg": 0.25})
    assert "pan_offset_deg: -2.0000" in again and "    roll_deg: 0.2500" in again
    assert math.isclose(yaml.safe_load(again)["ptz"]["calibration"]["roll_deg"], 0.25)


def _locate_fire(calibration: PtzCalibration, site: TowerSite, lens: Lens, ground_m: float
                 ) -> float:  # fmt: skip
    """Error in metres of a fire 6 km away at 118°, located through ``calibration``."""
    fire_lat, fire_lon = (float(x) for x in destination(site.lat, site.lon, 118.0, 6000.0))
    azimuth, elevation = bearing_elevation_to(site, fire_lat, fire_lon, ground_m)
    # The patrol stop that sees it, commanded through the calibration the daemon holds.
    raw_pan, raw_tilt = calibration.to_device(116.5, elevation + 0.4)
    actual = PtzCalibration(pan_offset_deg=PLANTED.north_deg, tilt_offset_deg=PLANTED.tilt_deg,
                            level_a_deg=PLANTED.level_a_deg, level_b_deg=PLANTED.level_b_deg,
                            roll_deg=PLANTED.roll_deg)  # fmt: skip
    looks_az, looks_el = actual.to_true(raw_pan, raw_tilt)
    u, v = bearing_elevation_pixel(azimuth, elevation, Pose(looks_az, looks_el, PLANTED.roll_deg),
                                   lens)  # fmt: skip
    located = geolocate_pixel(site, float(u), float(v), true_pose(calibration, raw_pan, raw_tilt),
                              lens, ground_elevation_m=ground_m, max_range_sigma_m=1e9)  # fmt: skip
    bearing_error = abs(_wrap180(located.bearing_deg - azimuth))
    if located.lat is None or located.lon is None:
        return bearing_error, math.inf
    distance, _, _ = geodesic_inverse(fire_lat, fire_lon, located.lat, located.lon)
    return bearing_error, float(distance)


def test_a_planted_fire_is_located_after_calibration(tmp_path: Path, tower_yaml: Path) -> None:
    landmarks = _landmark_file(tmp_path, tower_yaml, np.random.default_rng(7))
    cfg = load_config(tower_yaml)
    site, lens = tower_site(cfg), thermal_lens(cfg)
    ground = cfg.tower.ground_elevation_m
    before_deg, before_m = _locate_fire(PtzCalibration(), site, lens, ground)
    result = CliRunner().invoke(
        cli,
        [
            "calibrate",
            "north",
            "--config",
            str(tower_yaml),
            "--landmarks",
            str(landmarks),
            "--yes",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    calibrated = load_config(tower_yaml).ptz.calibration  # type: ignore[attr-defined]
    after_deg, after_m = _locate_fire(calibrated, site, lens, ground)
    print(
        f"fire at 6 km, 118°: before calibration bearing off {before_deg:.3f}° "
        f"({6000 * math.radians(before_deg):.0f} m sideways), position {before_m:.0f} m off; "
        f"after: bearing off {after_deg:.4f}°, position {after_m:.1f} m off"
    )
    assert before_deg > 1.0 and before_m > 1000.0  # the ray misses the ground entirely
    assert after_deg < 0.02 and after_m < 100.0
