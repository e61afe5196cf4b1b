"""Drift watch against a head whose true calibration moved; frozen-camera detection."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.ptz_calibration import PtzCalibration
from edge.drift import DriftSighting, DriftWatch, FrozenFrameCheck, KnownPoint, known_points
from edge.geodesy import destination
from edge.geolocation import Lens, Pose, TowerSite, bearing_elevation_pixel, bearing_elevation_to

SITE = TowerSite(46.9, 20.1, 125.0)
LENS = Lens.from_physical(75.0, 12.0, 640, 512)
CONFIGURED = PtzCalibration(pan_offset_deg=10.0, tilt_offset_deg=0.1, level_a_deg=0.02)
# A storm turned the head by 0.15° and tipped it down by 0.08°.
ACTUAL = CONFIGURED.model_copy(update={"pan_offset_deg": 10.15, "tilt_offset_deg": 0.02})


def _point(name: str, bearing: float, distance_m: float, height_m: float) -> KnownPoint:
    lat, lon = destination(SITE.lat, SITE.lon, bearing, distance_m)
    return KnownPoint(name, float(lat), float(lon), height_m)


POINTS = [_point("flare", 100.0, 8000.0, 115.0), _point("chimney", 150.0, 5000.0, 130.0),
          _point("mast", 200.0, 11000.0, 160.0)]  # fmt: skip


def _sighting(point: KnownPoint, rng: np.random.Generator, t: float) -> DriftSighting:
    """Where the source really appears when the patrol stops near it."""
    azimuth, elevation = bearing_elevation_to(SITE, point.lat, point.lon, point.height_m)
    head_az = azimuth + rng.uniform(-2.0, 2.0)  # the patrol stop is not centred on it
    head_el = -0.3
    raw_pan, raw_tilt = ACTUAL.to_device(head_az, head_el)
    true_az, true_el = ACTUAL.to_true(raw_pan, raw_tilt)
    u, v = bearing_elevation_pixel(azimuth, elevation, Pose(true_az, true_el), LENS)
    return DriftSighting(point.name, t, raw_pan, raw_tilt, float(u) + rng.normal(0, 0.2),
                         float(v) + rng.normal(0, 0.2))  # fmt: skip


def test_a_moved_head_is_measured_reported_and_corrected() -> None:
    rng = np.random.default_rng(1)
    watch = DriftWatch(SITE, CONFIGURED, LENS, POINTS)
    assert not watch.report().ready
    for i in range(12):
        assert watch.add(_sighting(POINTS[i % 3], rng, float(i)))
    report = watch.report()
    assert report.ready and report.degraded
    assert report.pan_offset_deg == pytest.approx(0.15, abs=0.01)
    assert report.tilt_offset_deg == pytest.approx(-0.08, abs=0.01)
    fixed = report.corrected(CONFIGURED)
    assert fixed.pan_offset_deg == pytest.approx(ACTUAL.pan_offset_deg, abs=0.01)
    assert fixed.tilt_offset_deg == pytest.approx(ACTUAL.tilt_offset_deg, abs=0.01)
    assert fixed.level_a_deg == CONFIGURED.level_a_deg
    assert report.as_dict()["degraded"] is True

    watch.recalibrated(fixed)
    for i in range(6):
        watch.add(_sighting(POINTS[i % 3], rng, 100.0 + i))
    after = watch.report()
    assert after.ready and not after.degraded
    assert abs(after.pan_offset_deg or 1.0) < 0.01


def test_one_source_is_not_enough_and_strangers_are_gated_out() -> None:
    rng = np.random.default_rng(2)
    watch = DriftWatch(SITE, CONFIGURED, LENS, POINTS)
    for i in range(5):
        watch.add(_sighting(POINTS[0], rng, float(i)))
    assert not watch.report().ready  # one flare alone could itself have moved
    stranger = _sighting(POINTS[1], rng, 9.0)
    assert not watch.add(DriftSighting("flare", 9.0, stranger.pan_raw_deg, stranger.tilt_raw_deg,
                                       stranger.u_px, stranger.v_px))  # fmt: skip
    assert not watch.add(DriftSighting("unknown", 9.0, 0.0, 0.0, 320.0, 256.0))
    assert watch.report().rejected == 2
    with pytest.raises(ValueError):
        watch.report().corrected(CONFIGURED)


def test_known_points_take_heights_above_the_ground() -> None:
    class Source:
        name, lat, lon, height_m = "stack", 46.95, 20.2, 30.0

    (point,) = known_points([Source()], 85.0)
    assert point.height_m == 115.0


def test_identical_frames_across_poses_mean_a_frozen_camera() -> None:
    rng = np.random.default_rng(3)
    check = FrozenFrameCheck()
    stuck = (290.0 + rng.normal(0, 0.05, (64, 80))).astype(np.float32)
    assert not check.observe(stuck, 90.0, -0.3)
    assert not check.observe(stuck, 90.0, -0.3)  # same pose: no evidence
    assert not check.observe(stuck, 95.5, -0.3)
    assert check.observe(stuck, 101.0, -0.3)
    assert check.frozen
    live = stuck + rng.normal(0, 0.05, stuck.shape).astype(np.float32)
    assert not check.observe(live, 106.5, -0.3)  # the picture changed again


def test_a_live_camera_is_never_frozen() -> None:
    rng = np.random.default_rng(4)
    check = FrozenFrameCheck()
    scene = 290.0 + rng.normal(0, 1.0, (64, 80))
    for i in range(20):
        frame = (scene + rng.normal(0, 0.05, scene.shape)).astype(np.float32)  # NETD noise
        assert not check.observe(frame, 90.0 + 5.5 * i, -0.3)


def test_a_frame_differing_only_between_the_sampled_pixels_is_a_new_picture() -> None:
    check = FrozenFrameCheck()
    stuck = np.full((64, 80), 290.0, np.float32)
    check.observe(stuck, 90.0, -0.3)
    changed = stuck.copy()
    changed[0, 1] += 0.5  # pixel 1: the sample looks at pixels 0, 97, 194, ...
    assert not check.observe(changed, 95.5, -0.3)
    assert not check.observe(changed, 101.0, -0.3)
    assert not check.frozen  # two poses of the new picture, not three


def test_8_bit_agc_frames_are_checked_the_same_way() -> None:
    check = FrozenFrameCheck()
    dark = np.zeros((64, 80), np.uint8)
    bright = np.full((64, 80), 255, np.uint8)
    for k, frame in enumerate((dark, bright, dark, bright)):
        assert not check.observe(frame, 90.0 + 5.5 * k, -0.3)
    for k in range(3):
        frozen = check.observe(bright, 120.0 + 5.5 * k, -0.3)
    assert frozen


def test_sightings_in_frame_measure_a_planted_pointing_offset() -> None:
    site = TowerSite(41.1, 121.9, 45.0)
    lens = Lens.from_physical(25.0, 12.0, 640, 512)
    actual = PtzCalibration(pan_offset_deg=0.25, tilt_offset_deg=-0.15)  # the head moved
    points = []
    for name, bearing in (("flare", 100.0), ("chimney", 103.0)):
        lat, lon = destination(site.lat, site.lon, bearing, 6000.0)
        points.append(KnownPoint(name, float(lat), float(lon), 30.0))
    watch = DriftWatch(site, PtzCalibration(), lens, points)
    raw_pan, raw_tilt = actual.to_device(101.5, -0.3)
    image = np.full((512, 640), 290.0)
    for p in points:
        az, el = bearing_elevation_to(site, p.lat, p.lon, p.height_m)
        u, v = bearing_elevation_pixel(az, el, Pose(*actual.to_true(raw_pan, raw_tilt)), lens)
        image[int(round(float(v))), int(round(float(u)))] = 600.0
    for t in range(3):
        for sighting in watch.sightings_in_frame(image, float(t), raw_pan, raw_tilt):
            assert watch.add(sighting)
    report = watch.report()
    assert report.ready and report.degraded
    assert report.pan_offset_deg is not None and report.tilt_offset_deg is not None
    # one-pixel quantisation: 12 µm / 25 mm ≈ 0.03° per pixel
    assert abs(report.pan_offset_deg - 0.25) < 0.04
    assert abs(report.tilt_offset_deg + 0.15) < 0.04
    assert watch.sightings_in_frame(np.full((512, 640), 290.0), 9.0, raw_pan, raw_tilt) == []
