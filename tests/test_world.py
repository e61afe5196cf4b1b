"""The simulated world: geometry, surface physics, sensor noise, occlusion and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.geo import REFRACTION_K, apparent_elevation_deg, horizon_dip_deg
from simulators.scenario import ScenarioError, parse_scenario
from simulators.surfaces import class_temperatures_k
from simulators.terrain import ASPHALT, DIRT_ROAD, REED
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
    # algorithms.md §8 #16: 40 m tower, sea-level point at 10 km, k = 0.13 → 0.2683° down.
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
