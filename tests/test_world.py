"""The simulated world: geometry, surface physics, sensor noise, occlusion and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.radiometry import band_radiance
from simulators.geo import (
    REFRACTION_K,
    apparent_elevation_deg,
    bearing_range_to_local,
    horizon_dip_deg,
)
from simulators.scenario import ScenarioError, parse_scenario
from simulators.surfaces import EMISSIVITY, class_temperatures_k, sky_brightness_k
from simulators.terrain import ASPHALT, DIRT_ROAD, REED, SKY
from simulators.world import SimWorld

BASE = """
name: test
start_utc: 2024-04-10T10:30:00Z
seed: 7
tower: {lat: 47.0, lon: 20.0, mast_height_m: 40}
weather: {air_temp_c: 10, relative_humidity_pct: 50, wind_speed_m_s: 2}
world: {extent_m: 25000, cell_m: 50}
"""


def _world(extra: str = "", **kw: object) -> SimWorld:
    return SimWorld(parse_scenario(BASE + extra, "test.yaml"), **kw)  # type: ignore[arg-type]


def test_horizon_dip_from_a_40_m_tower_is_019_deg() -> None:
    assert horizon_dip_deg(40.0) == pytest.approx(0.1894, abs=5e-4)
    assert horizon_dip_deg(40.0, k=0.0) == pytest.approx(
        math.degrees(math.sqrt(80.0 / 6_371_000.0)), rel=1e-9
    )


def test_flat_ground_point_at_10_km_appears_at_the_reference_depression() -> None:
    # docs/algorithms/test-scenarios.md #16: 40 m tower, sea-level point at 10 km, k = 0.13 → 0.2683° down.
    assert apparent_elevation_deg(40.0, 0.0, 10_000.0, REFRACTION_K) == pytest.approx(
        -0.2683, abs=5e-4
    )


def test_rendered_horizon_row_matches_the_dip() -> None:
    w = _world()
    pose = w.pose_for(0.0, 0.0)
    thermal, _, _ = w.render(0.0, 0.0, None, w.scenario.start_unix)
    ranges = w._cache(pose).ground_range[:, 320]
    first_ground_row = int(np.argmax(ranges >= 0))
    el_at_row = -(first_ground_row - (pose.height_px - 1) / 2) / pose.focal_px
    assert math.degrees(el_at_row) == pytest.approx(-horizon_dip_deg(40.0), abs=0.01)
    assert thermal.shape == (512, 640) and thermal.dtype == np.float32


def test_road_is_hotter_than_reed_at_noon_and_dirt_road_cooler_at_night() -> None:
    noon = 1_712_746_800.0  # 2024-04-10 11:00 UTC ≈ 12:20 local solar time at 20° E
    night = noon - 10 * 3600.0  # 01:20 local solar time
    day_t = class_temperatures_k(noon, 47.0, 20.0, 10.0, 8.0, 0.0)
    night_t = class_temperatures_k(night, 47.0, 20.0, 10.0, 8.0, 0.0)
    assert 10.0 <= day_t[DIRT_ROAD] - day_t[REED] <= 35.0
    assert 10.0 <= day_t[ASPHALT] - day_t[REED] <= 35.0
    assert night_t[DIRT_ROAD] < night_t[REED]
    # Clouds shrink the day contrast.
    cloudy = class_temperatures_k(noon, 47.0, 20.0, 10.0, 8.0, 1.0)
    assert cloudy[DIRT_ROAD] - cloudy[REED] < 0.5 * (day_t[DIRT_ROAD] - day_t[REED])


def test_frame_noise_standard_deviation_equals_netd() -> None:
    w = _world("camera: {netd_mk: 50, fixed_pattern_k: 0.0, drift_k_per_min: 0.0}\n")
    t = w.scenario.start_unix + 5.0
    a, _, _ = w.render(0.0, 1.0, None, t)  # all sky: smooth scene
    b, _, _ = w.render(0.0, 1.0, None, t + 0.04)
    noise = (a - b).astype(np.float64) / math.sqrt(2.0)
    assert float(noise.std()) == pytest.approx(0.050, rel=0.03)


FIRE_10KM = "fires: [{id: f1, at: {bearing_deg: 90, range_m: 10000}, size_m: 2}]\n"


def test_fire_at_10_km_stands_out_by_roughly_the_link_budget() -> None:
    w = _world(FIRE_10KM)
    pan, tilt = w.main_event_pose()
    thermal, visible, truth = w.render(pan, tilt, None, w.scenario.start_unix)
    assert truth[0]["id"] == "f1" and truth[0]["visible"]
    x, y = round(truth[0]["x"]), round(truth[0]["y"])
    peak = thermal[y - 2 : y + 3, x - 2 : x + 3].max()
    background = np.median(thermal[y - 20 : y + 21, x - 20 : x + 21])
    # Link budget, 12 µm / 75 mm, dry air: 62 K worst, larger at better sub-pixel positions.
    assert peak - background > 40.0
    assert visible.shape == (512, 640, 3) and visible.dtype == np.uint8


def test_hill_hides_the_fire_behind_it() -> None:
    hill = "  hills: [{at: {bearing_deg: 90, range_m: 6000}, height_m: 60, radius_m: 800}]\n"
    text = BASE.replace(
        "world: {extent_m: 25000, cell_m: 50}\n", "world:\n  extent_m: 25000\n  cell_m: 50\n" + hill
    )
    hidden = SimWorld(parse_scenario(text + FIRE_10KM))
    open_w = _world(FIRE_10KM)
    pan, tilt = open_w.main_event_pose()
    t = open_w.scenario.start_unix
    _, _, truth_open = open_w.render(pan, tilt, None, t)
    _, _, truth_hidden = hidden.render(pan, tilt, None, t)
    assert truth_open[0]["visible"]
    assert not truth_hidden[0]["visible"]


def test_same_scenario_and_seed_give_bit_identical_frames() -> None:
    text = BASE + FIRE_10KM
    a = SimWorld(parse_scenario(text))
    b = SimWorld(parse_scenario(text))
    t = a.scenario.start_unix + 12.3
    pan, tilt = a.main_event_pose()
    ta, va, _ = a.render(pan, tilt, None, t)
    tb, vb, _ = b.render(pan, tilt, None, t)
    assert np.array_equal(ta, tb) and np.array_equal(va, vb)
    tc, _, _ = SimWorld(parse_scenario(text), seed=8).render(pan, tilt, None, t)
    assert not np.array_equal(ta, tc)


def test_frames_saturate_at_65535_centikelvin() -> None:
    w = _world(
        "fires: [{id: near, at: {bearing_deg: 90, range_m: 300}, size_m: 4, temperature_k: 1100}]\n"
    )
    pan, tilt = w.main_event_pose()
    thermal, _, _ = w.render(pan, tilt, None, w.scenario.start_unix)
    assert float(thermal.max()) == pytest.approx(655.35)


def test_scenario_errors_name_the_line_and_key() -> None:
    with pytest.raises(ScenarioError, match=r"bad.yaml:5: fires.0.size_m"):
        parse_scenario(
            "name: x\nstart_utc: 2024-01-01T00:00:00Z\nfires:\n  - id: a\n    size_m: -1\n    at: {bearing_deg: 1, range_m: 5}\n",
            "bad.yaml",
        )
    with pytest.raises(ScenarioError, match="weather.colour"):
        parse_scenario("name: x\nstart_utc: 2024-01-01T00:00:00Z\nweather: {colour: red}\n")


ROAD_ACROSS = (
    "camera: {netd_mk: 0, fixed_pattern_k: 0.0, drift_k_per_min: 0.0}\n"
    "world:\n"
    "  extent_m: 25000\n"
    "  cell_m: 50\n"
    "  clutter_k: 0\n"
    "  roads: [{kind: asphalt, width_m: 7, points: [{bearing_deg: 85, range_m: 1450},"
    " {bearing_deg: 95, range_m: 1550}]}]\n"
)


@pytest.mark.parametrize(("zoom", "band_px"), [(1.0, (0.6, 1.0)), (2.0, (1.2, 2.0))])
def test_a_thin_road_renders_as_a_smooth_band_of_its_true_area(
    zoom: float, band_px: tuple[float, float]
) -> None:
    # 7 m of asphalt at 1.5 km seen from 40 m spans ~0.8 px of depression at 75 mm and
    # ~1.6 px at 150 mm: a camera integrates it over each pixel's footprint, so it shows
    # as a band whose fill follows the road, not a staircase of whole pixels.
    text = BASE.replace("world: {extent_m: 25000, cell_m: 50}\n", ROAD_ACROSS)
    w = SimWorld(parse_scenario(text))
    t = w.scenario.start_unix
    tilt = -math.degrees(math.atan2(40.0, 1500.0))
    hfov = w.pose_for(90.0, tilt).hfov_deg / zoom
    pose = w.pose_for(90.0, tilt, hfov)
    thermal, _, _ = w.render(90.0, tilt, hfov, t)
    radiance = band_radiance(thermal.astype(np.float64))
    cache = w._cache(pose)

    # Full contrast of asphalt over reed leaving the ground, from the surface physics.
    temps = class_temperatures_k(t, 47.0, 20.0, 10.0, 8.0, 0.0)
    sky = float(band_radiance([float(sky_brightness_k(temps[SKY], 20.0, 0.0))])[0])

    def leaving(cid: int) -> float:
        eps = float(EMISSIVITY[cid])
        return eps * float(band_radiance([temps[cid]])[0]) + (1.0 - eps) * sky

    a, b = bearing_range_to_local(85.0, 1450.0), bearing_range_to_local(95.0, 1550.0)
    along = np.subtract(b, a) / math.dist(a, b)
    normal = np.array([-along[1], along[0]])
    cols = np.arange(40, 600)
    area, expected, centroid, pixel_centroid, heights, peaks = [], [], [], [], [], []
    for col in cols:
        # Where this column's line of sight crosses the road's two edges, in pixel rows.
        az = math.atan2(*cache.dirs[pose.height_px // 2, col, :2])
        ray = np.array([math.sin(az), math.cos(az)])
        edges = []
        for side in (-3.5, 3.5):
            s = (np.dot(a, normal) + side) / np.dot(ray, normal)
            uv = w._ground_pixel(pose, *(s * ray), 0.0)
            assert uv is not None
            edges.append(uv[1])
        lo, hi = sorted(edges)
        centre = int(round(0.5 * (lo + hi)))
        heights.append(hi - lo)
        expected.append(
            float(cache.tau[centre, col]) * (leaving(ASPHALT) - leaving(REED)) * (hi - lo)
        )
        # The centroid a camera measures: rows weighted by their overlap with the band.
        rows = np.arange(math.floor(lo), math.ceil(hi) + 1)
        overlap = np.clip(np.minimum(rows + 0.5, hi) - np.maximum(rows - 0.5, lo), 0.0, None)
        pixel_centroid.append(float((rows * overlap).sum() / overlap.sum()))
        # Excess over the background, which drifts with range (τ, path): a line in row.
        band = radiance[:, col]
        rows = np.arange(centre - 6, centre + 7)
        outside = np.r_[centre - 20 : centre - 8, centre + 9 : centre + 21]
        excess = band[rows] - np.polyval(np.polyfit(outside, band[outside], 1), rows)
        area.append(excess.sum())
        centroid.append(float((rows * excess).sum() / excess.sum()))
        peaks.append(int(rows[np.argmax(excess)]))
    ratio = np.array(area) / np.array(expected)
    assert band_px[0] < float(np.mean(heights)) < band_px[1]

    # Integrated across the road, the excess is its width × footprint, column by column,
    # and it changes by a few per cent from one column to the next, never a full step.
    assert float(np.mean(ratio)) == pytest.approx(1.0, abs=0.02)
    assert float(np.max(np.abs(ratio - 1.0))) < 0.06
    assert float(np.max(np.abs(np.diff(area)))) < 0.06 * float(np.mean(area))
    # The band's centre follows the road to a few hundredths of a pixel, and its peak row
    # moves one row at a time, always the same way.
    assert float(np.max(np.abs(np.array(centroid) - pixel_centroid))) < 0.05
    assert np.ptp(centroid) > 3.0
    assert set(np.diff(peaks).tolist()) <= {-1, 0}
