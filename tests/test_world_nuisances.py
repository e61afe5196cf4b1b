"""The world's nuisances are physical and visible: vehicle hot spots, low-sun glint, road map, sunlit objects."""

from __future__ import annotations

import numba
import numpy as np

from detectors.pipeline import DetectionParams, FramePipeline
from simulators.scenario import parse_scenario
from simulators.world import SimWorld

TOWER = "tower: {id: t, lat: 46.9, lon: 20.1, ground_elevation_m: 85, mast_height_m: 40}\n"


def _world(body: str, start: str = "2024-04-10T11:00:00Z") -> SimWorld:
    return SimWorld(parse_scenario(f"name: t\nstart_utc: {start}\n{TOWER}{body}"))


def _excess_k(frame: np.ndarray, x: float, y: float) -> float:
    i, j = int(round(y)), int(round(x))
    peak = float(np.max(frame[i - 3 : i + 4, j - 3 : j + 4]))
    ring = np.concatenate([frame[i - 15 : i + 16, j - 15], frame[i - 15 : i + 16, j + 15]])
    return peak - float(np.median(ring))


def test_a_running_truck_at_5_km_is_a_10_to_40_k_hot_spot_day_and_night() -> None:
    body = (
        "weather: {air_temp_c: 15, relative_humidity_pct: 50}\n"
        "vehicles: [{id: v, kind: truck, speed_kmh: 10, park_s: 600, "
        "route: [{bearing_deg: 90, range_m: 5000}, {bearing_deg: 90.001, range_m: 5000}]}]\n"
    )
    for start in ("2024-04-10T11:00:00Z", "2024-04-10T22:00:00Z"):
        w = _world(body, start)
        pan, tilt = w.main_event_pose()
        frame, _, truth = w.render(pan, tilt, None, w.scenario.start_unix + 0.1)
        (obj,) = truth
        assert 10.0 <= _excess_k(frame, obj["x"], obj["y"] - 2) <= 40.0, start


def test_low_sun_glint_off_calm_water_is_bright_and_only_toward_the_sun() -> None:
    body = (
        "weather: {air_temp_c: 12, relative_humidity_pct: 50, wind_speed_m_s: 1}\n"
        "world: {patches: [{kind: water, at: {bearing_deg: 277, range_m: 4000}, radius_m: 400},"
        " {kind: water, at: {bearing_deg: 97, range_m: 4000}, radius_m: 400}]}\n"
    )
    w = _world(body, "2024-04-10T16:45:00Z")  # sun ≈ 5° high at azimuth ≈ 276°
    toward, _, _ = w.render(277.0, -0.5, None, w.scenario.start_unix)
    away, _, _ = w.render(97.0, -0.5, None, w.scenario.start_unix)
    cache = w._cache(w.pose_for(277.0, -0.5))
    water = cache.cls == 3
    assert water.sum() > 100
    assert float(np.max(toward[water])) > 330.0  # Cox–Munk glint at grazing view
    assert float(np.max(away)) < 300.0  # back to the sun: no glint


def test_the_road_map_covers_a_vehicle_on_the_road() -> None:
    body = (
        "world: {roads: [{kind: dirt, points: [{bearing_deg: 85, range_m: 3000},"
        " {bearing_deg: 95, range_m: 3000}]}]}\n"
        "vehicles: [{id: v, kind: car, speed_kmh: 30, "
        "route: [{bearing_deg: 89, range_m: 3000}, {bearing_deg: 91, range_m: 3000}]}]\n"
        "view: {pan_deg: 90, tilt_deg: -0.6}\n"
    )
    w = _world(body)
    pose = w.pose_for(90.0, -0.6)
    mask = w.road_mask(pose)
    _, _, truth = w.render(90.0, -0.6, None, w.scenario.start_unix + 3.0)
    (car,) = truth
    assert mask[int(round(car["y"])), int(round(car["x"]))]
    assert mask.mean() < 0.1  # a band, not the frame


def test_sunlit_boulders_are_warmer_than_the_reed_by_day_and_not_at_night() -> None:
    body = "world: {objects: [{kind: rock, at: {bearing_deg: 180, range_m: 2000}, width_m: 4, height_m: 2}]}\n"
    noon = _world(body, "2024-06-21T10:40:00Z")
    night = _world(body, "2024-06-21T23:00:00Z")
    out = []
    for w in (noon, night):
        pan, tilt = w.main_event_pose()
        frame, _, truth = w.render(pan, tilt, None, w.scenario.start_unix)
        (rock,) = truth
        out.append(_excess_k(frame, rock["x"], rock["y"]))
    assert out[0] > 10.0
    assert out[1] < 4.0


def test_the_pipeline_runs_its_kernel_on_the_configured_threads_and_ends_visits() -> None:
    pipe = FramePipeline(DetectionParams(), 64, 64)
    frame = np.full((64, 64), 290.0, dtype=np.float32)
    frame[30, 30] = 340.0
    road = np.zeros((64, 64), dtype=bool)
    road[28:33, :] = True
    decisions = []
    for k in range(12):
        decisions += pipe.process(
            frame,
            1.7e9 + k * 0.1,
            10.0,
            -1.0,
            6.0,
            sun_az_deg=0.0,
            sun_el_deg=-20.0,
            is_day=False,
            road_mask=road,
        )
    assert numba.get_num_threads() == 1
    assert decisions == []  # on a mapped road: waits for revisit evidence
    ended = pipe.end_visit(1.7e9 + 1.2, road)
    assert [(d.event, d.reason) for d in ended] == [("rejected", "road")]
    assert pipe.end_visit(1.7e9 + 1.3, road) == []
