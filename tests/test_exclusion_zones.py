"""Exclusion zones: ground circles turned into angles; a candidate on one is rejected as `masked`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.pipeline import DetectionParams, FramePipeline, pan_tilt_to_pixel
from detectors.suppression import in_exclusion_zone
from edge.config import ExclusionZone
from edge.detection import angular_zones
from edge.geodesy import destination
from edge.geolocation import TowerSite, bearing_elevation_to

SITE = TowerSite(46.9, 20.1, 125.0)  # 40 m mast on 85 m ground
GROUND_M = 85.0
ZONE_BEARING_DEG, ZONE_RANGE_M, ZONE_RADIUS_M = 120.0, 3000.0, 250.0
H, W = 96, 128
HFOV = 2.0
NOON = {"sun_az_deg": 300.0, "sun_el_deg": 40.0, "is_day": True}


def _zone() -> ExclusionZone:
    lat, lon = destination(SITE.lat, SITE.lon, ZONE_BEARING_DEG, ZONE_RANGE_M)
    return ExclusionZone(
        name="kiln yard", lat=lat, lon=lon, radius_m=ZONE_RADIUS_M, reason="kiln exhaust"
    )


def _ground_direction(heading_deg: float, offset_m: float) -> tuple[float, float]:
    """(azimuth, elevation) of the ground ``offset_m`` from the zone's centre along a heading."""
    zone = _zone()
    lat, lon = destination(zone.lat, zone.lon, heading_deg, offset_m)
    return bearing_elevation_to(SITE, lat, lon, GROUND_M)


@pytest.mark.parametrize("heading_deg", np.arange(0.0, 360.0, 22.5))
def test_ground_inside_the_circle_is_masked_and_just_outside_is_not(heading_deg: float) -> None:
    zones = angular_zones(SITE, GROUND_M, (_zone(),))
    inside = _ground_direction(heading_deg, 0.95 * ZONE_RADIUS_M)
    outside = _ground_direction(heading_deg, 1.05 * ZONE_RADIUS_M)
    assert in_exclusion_zone(*inside, zones) is zones[0]
    assert in_exclusion_zone(*outside, zones) is None


def test_the_sky_above_a_zone_and_ground_far_behind_it_are_not_masked() -> None:
    zones = angular_zones(SITE, GROUND_M, (_zone(),))
    centre_az, centre_el = _ground_direction(0.0, 0.0)
    assert in_exclusion_zone(centre_az, 0.5, zones) is None
    behind = bearing_elevation_to(
        SITE, *destination(SITE.lat, SITE.lon, ZONE_BEARING_DEG, 2 * ZONE_RANGE_M), GROUND_M
    )
    assert in_exclusion_zone(*behind, zones) is None
    assert in_exclusion_zone(centre_az + 180.0, centre_el, zones) is None


def test_a_zone_around_the_tower_masks_the_ground_out_to_its_far_edge() -> None:
    around = ExclusionZone(name="compound", lat=SITE.lat, lon=SITE.lon, radius_m=500.0)
    zones = angular_zones(SITE, GROUND_M, (around,))
    for bearing in (0.0, 90.0, 200.0):
        near = bearing_elevation_to(
            SITE, *destination(SITE.lat, SITE.lon, bearing, 400.0), GROUND_M
        )
        far = bearing_elevation_to(SITE, *destination(SITE.lat, SITE.lon, bearing, 700.0), GROUND_M)
        assert in_exclusion_zone(*near, zones) is zones[0]
        assert in_exclusion_zone(*far, zones) is None


def _spot(frame_index: int, x: float, y: float) -> np.ndarray:
    f = (290.0 + np.random.default_rng(frame_index).normal(0.0, 0.3, (H, W))).astype(np.float32)
    j, i = math.floor(x), math.floor(y)
    fx, fy = x - j, y - i
    for di, dj, w in (
        (0, 0, (1 - fx) * (1 - fy)),
        (0, 1, fx * (1 - fy)),
        (1, 0, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        f[i + di, j + dj] += np.float32(40.0 * w)
    return f


def _decide(heading_deg: float, offset_m: float) -> list[tuple[str, str | None, str | None]]:
    """The pipeline's decisions on a steady hotspot on the ground near the zone."""
    zones = angular_zones(SITE, GROUND_M, (_zone(),))
    az, el = _ground_direction(heading_deg, offset_m)
    pan, tilt = az + 0.2, el + 0.3  # the spot sits left of and below the image centre
    x, y = pan_tilt_to_pixel(az, el, pan, tilt, HFOV, W, H)
    pipe = FramePipeline(DetectionParams(), W, H)
    out = []
    for k in range(20):
        for d in pipe.process(
            _spot(k, x, y), k / 10.0, pan, tilt, HFOV, **NOON, exclusion_zones=zones
        ):
            out.append((d.event, d.reason, d.source))
    return out


def test_a_candidate_inside_a_zone_is_rejected_as_masked() -> None:
    assert _decide(0.0, 0.5 * ZONE_RADIUS_M) == [("rejected", "masked", "kiln yard")]
    assert _decide(90.0, 0.8 * ZONE_RADIUS_M) == [("rejected", "masked", "kiln yard")]


def test_a_candidate_just_outside_a_zone_is_a_candidate() -> None:
    assert _decide(ZONE_BEARING_DEG + 90.0, 1.2 * ZONE_RADIUS_M) == [("candidate", None, None)]
    assert _decide(ZONE_BEARING_DEG, 1.2 * ZONE_RADIUS_M) == [("candidate", None, None)]
