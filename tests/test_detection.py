"""The daemon's thermal stage context: the tower's map turned into angles and masks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from detectors.pipeline import pan_tilt_to_pixel, pixel_to_pan_tilt
from edge.config import KnownSource, MappedRoad, MapPoint, load_config
from edge.detection import DetectionContext, angular_sources, road_mask, road_points
from edge.geodesy import destination
from edge.geolocation import TowerSite, bearing_elevation_to

ROOT = Path(__file__).resolve().parent.parent
SITE = TowerSite(46.9, 20.1, 125.0)
GROUND_M = 85.0


def _point(bearing_deg: float, range_m: float) -> MapPoint:
    lat, lon = destination(SITE.lat, SITE.lon, bearing_deg, range_m)
    return MapPoint(lat=lat, lon=lon)


def test_a_road_across_the_view_is_masked_from_surface_to_roof_and_nowhere_else() -> None:
    road = MappedRoad(
        name="dyke", width_m=8.0, points=(_point(80.0, 5000.0), _point(100.0, 5000.0))
    )
    lines = road_points(SITE, GROUND_M, (road,))
    mask = road_mask(lines, 90.0, -0.45, 5.862, 640, 512)
    assert mask is not None
    _, ground_el = bearing_elevation_to(
        SITE, *destination(SITE.lat, SITE.lon, 90.0, 5000.0), GROUND_M
    )
    x, y = pan_tilt_to_pixel(90.0, ground_el, 90.0, -0.45, 5.862, 640, 512)
    assert mask[round(y), round(x)]
    # a road at 5 km is a thin band: far above (the horizon) and far below are clear
    assert not mask[round(y) - 60, round(x)]
    assert not mask[min(round(y) + 60, 511), round(x)]
    assert mask.sum() < 0.1 * mask.size


def test_a_road_behind_the_tower_leaves_the_view_unmasked() -> None:
    road = MappedRoad(name="behind", points=(_point(260.0, 4000.0), _point(280.0, 4000.0)))
    assert road_mask(road_points(SITE, GROUND_M, (road,)), 90.0, -0.45, 5.862, 640, 512) is None


def test_known_sources_become_directions_with_a_drift_tolerance() -> None:
    lat, lon = destination(SITE.lat, SITE.lon, 30.0, 7000.0)
    source = KnownSource(name="flare", kind="flare", lat=lat, lon=lon, height_m=25.0, radius_m=20.0)
    (angular,) = angular_sources(SITE, GROUND_M, (source,))
    assert angular.pan_deg == pytest.approx(30.0, abs=1e-6)
    assert angular.tilt_deg > -0.5  # the flame stands above the ground at 7 km
    assert angular.radius_deg == pytest.approx(0.1637 + 0.3, abs=1e-3)  # 20 m at 7 km + drift


def test_the_example_config_roads_load() -> None:
    cfg = load_config(ROOT / "config" / "tower.example.yaml")
    assert cfg.roads and len(cfg.roads[0].points) >= 2


def _context(roll_deg: float) -> DetectionContext:
    return replace(DetectionContext.bare(46.9, 20.1, 640, 512, True), roll_deg=roll_deg)


def test_the_pixel_model_is_the_pipelines_pinhole_without_roll() -> None:
    ctx = _context(0.0)
    rng = np.random.default_rng(3)
    for x, y in rng.uniform(0.0, 640.0, (50, 2)):
        pose = (float(rng.uniform(0, 360)), float(rng.uniform(-5, 5)), 5.862)
        az, el = ctx.pixel_direction(x, y, pose, 640, 512)
        ref_az, ref_el = pixel_to_pan_tilt(x, y, *pose, 640, 512)
        assert abs((az - ref_az + 180.0) % 360.0 - 180.0) < 1e-9 and el == pytest.approx(ref_el)
        assert ctx.direction_pixel(az, el, pose, 640, 512) == pytest.approx((x, y), abs=1e-6)


def test_the_pixel_model_honours_the_cameras_roll() -> None:
    pose = (90.0, 0.0, 5.862)
    level = _context(0.0).pixel_direction(619.5, 255.5, pose, 640, 512)
    rolled = _context(2.0).pixel_direction(619.5, 255.5, pose, 640, 512)
    # 300 px right of centre at 2° roll: the point moves ~0.1° in elevation
    assert abs(rolled[1] - level[1]) == pytest.approx(0.1, abs=0.02)
    ctx = _context(2.0)
    assert ctx.direction_pixel(*rolled, pose, 640, 512) == pytest.approx((619.5, 255.5), abs=1e-6)


def test_the_roll_comes_from_the_heads_calibration() -> None:
    cfg = load_config(ROOT / "config" / "simulated.yaml", ["ptz.calibration.roll_deg=1.5"])
    assert DetectionContext.from_config(cfg).roll_deg == 1.5
