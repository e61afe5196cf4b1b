"""Suppression rules through the per-frame pipeline: each nuisance rejected with its reason, fires kept."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from detectors.pipeline import (
    AngularSource,
    Decision,
    DetectionParams,
    FramePipeline,
    ground_range_by_row,
    pan_tilt_to_pixel,
    pixel_to_pan_tilt,
)
from detectors.suppression import PoseMemory, VisitAccumulator, from_centikelvin, to_centikelvin

H, W = 96, 128
HFOV = 6.0
PAN, TILT = 120.0, -1.0
FPS = 10.0
NOON = {"sun_az_deg": 300.0, "sun_el_deg": 40.0, "is_day": True}  # sun behind the camera


def frame(seed: int, level_k: float = 290.0) -> np.ndarray:
    return (level_k + np.random.default_rng(seed).normal(0.0, 0.3, (H, W))).astype(np.float32)


def point(f: np.ndarray, x: float, y: float, amplitude_k: float) -> np.ndarray:
    j, i = int(math.floor(x)), int(math.floor(y))
    fx, fy = x - j, y - i
    for di, dj, w in (
        (0, 0, (1 - fx) * (1 - fy)),
        (0, 1, fx * (1 - fy)),
        (1, 0, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        f[i + di, j + dj] += np.float32(amplitude_k * w)
    return f


def run(
    pipe: FramePipeline,
    n: int,
    draw: Callable[[int], np.ndarray],
    t0: float = 0.0,
    pan: float = PAN,
    **kwargs: object,
) -> list[Decision]:
    out: list[Decision] = []
    for k in range(n):
        out += pipe.process(draw(k), t0 + k / FPS, pan, TILT, HFOV, **{**NOON, **kwargs})  # type: ignore[arg-type]
    return out


def new_pipe() -> FramePipeline:
    return FramePipeline(DetectionParams(), W, H)


def test_stationary_fire_is_one_candidate_near_its_pixel() -> None:
    decisions = run(new_pipe(), 20, lambda k: point(frame(k), 60.4, 50.6, 40.0))
    assert [d.event for d in decisions] == ["candidate"]
    d = decisions[0]
    assert d.reason is None and d.compact
    assert abs(d.x - 60.4) < 0.1 and abs(d.y - 50.6) < 0.1
    assert 0.0 < d.score <= 1.0 and d.delta_t_k > 10.0
    pan, tilt = pixel_to_pan_tilt(d.x, d.y, PAN, TILT, HFOV, W, H)
    assert (d.pan_deg, d.tilt_deg) == pytest.approx((pan, tilt))


def test_vehicle_crossing_is_rejected_for_motion() -> None:
    decisions = run(new_pipe(), 20, lambda k: point(frame(k), 20.0 + 3.0 * k, 50.0, 40.0))
    assert [(d.event, d.reason) for d in decisions] == [("rejected", "vehicle")]


def test_known_source_is_rejected_despite_pointing_drift() -> None:
    x, y = 60.0, 50.0
    pan, tilt = pixel_to_pan_tilt(x, y, PAN, TILT, HFOV, W, H)
    flare = AngularSource("flare-1", pan + 0.25, tilt - 0.1, radius_deg=0.05)
    decisions = run(new_pipe(), 10, lambda k: point(frame(k), x, y, 80.0), known_sources=[flare])
    assert [(d.event, d.reason, d.source) for d in decisions] == [
        ("rejected", "known_source", "flare-1")
    ]


def test_sun_glint_cone_rejects_a_hotspot_opposite_a_low_sun() -> None:
    decisions = run(
        new_pipe(),
        10,
        lambda k: point(frame(k), 60.0, 50.0, 80.0),
        sun_az_deg=PAN + 3.0,
        sun_el_deg=4.0,
    )
    assert [(d.event, d.reason) for d in decisions] == [("rejected", "glint")]


def test_blob_touching_the_static_mask_is_rejected_as_static() -> None:
    static = np.zeros((H, W), dtype=bool)
    static[48:51, 62:65] = True  # a chimney; the hotspot's PSF spills next to it
    decisions = run(new_pipe(), 10, lambda k: point(frame(k), 60.6, 50.0, 60.0), static_mask=static)
    assert [(d.event, d.reason) for d in decisions] == [("rejected", "static")]


def test_chimney_on_the_static_mask_does_not_hide_a_fire_three_pixels_away() -> None:
    static = np.zeros((H, W), dtype=bool)
    static[49:52, 59:62] = True

    def draw(k: int) -> np.ndarray:
        f = frame(k)
        f[50, 60] += 120.0  # chimney
        return point(f, 64.0, 50.0, 40.0)

    decisions = run(new_pipe(), 15, draw, static_mask=static)
    assert [(d.event, round(d.x)) for d in decisions] == [("candidate", 64)]


def test_sunlit_extended_surface_is_rejected_as_solar() -> None:
    def draw(k: int) -> np.ndarray:
        f = frame(k)
        f[46:51, 58:63] += 28.0  # a small sunlit roof, 5 × 5 px
        return f

    decisions = run(new_pipe(), 15, draw)
    assert decisions, "the roof edge should be seen and judged"
    assert {(d.event, d.reason) for d in decisions} == {("rejected", "solar")}


def test_moving_van_with_a_warm_engine_is_a_vehicle_not_solar() -> None:
    def draw(k: int) -> np.ndarray:
        f = frame(k)
        x = 20 + 3 * k
        f[47:50, x : x + 6] += 45.0  # a van's body and engine, about 335 K, 3 px per frame
        return f

    decisions = run(new_pipe(), 20, draw)
    assert [(d.event, d.reason) for d in decisions] == [("rejected", "vehicle")]


def test_slowly_warming_rock_is_rejected_as_solar_on_a_revisit() -> None:
    pipe = new_pipe()
    rock = lambda k, amp: point(frame(k), 60.0, 50.0, amp)  # noqa: E731
    first = run(pipe, 15, lambda k: rock(k, 30.0), t0=0.0)
    assert [d.event for d in first] == ["candidate"]  # no memory yet: confirm it
    run(pipe, 5, lambda k: frame(100 + k), t0=60.0, pan=PAN + 30.0)  # patrol elsewhere
    second = run(pipe, 15, lambda k: rock(k, 31.0), t0=300.0)  # +1 K in 5 min
    assert [(d.event, d.reason) for d in second] == [("rejected", "solar")]


def test_new_fire_at_a_remembered_pose_is_a_candidate_with_a_step_rise() -> None:
    pipe = new_pipe()
    run(pipe, 10, lambda k: frame(k), t0=0.0)
    run(pipe, 5, lambda k: frame(50 + k), t0=60.0, pan=PAN + 30.0)
    decisions = run(pipe, 15, lambda k: point(frame(200 + k), 60.0, 50.0, 40.0), t0=180.0)
    cold = run(new_pipe(), 15, lambda k: point(frame(200 + k), 60.0, 50.0, 40.0), t0=180.0)
    assert [d.event for d in decisions] == ["candidate"]
    assert decisions[0].score > cold[0].score  # the step rise adds to the score


def test_hotspot_on_a_mapped_road_needs_revisits_and_is_reported_as_road() -> None:
    road = np.zeros((H, W), dtype=bool)
    road[45:56, :] = True
    pipe = new_pipe()
    during = run(pipe, 20, lambda k: point(frame(k), 60.0, 50.0, 40.0), road_mask=road)
    assert during == []  # held: a truck driving at the tower brightens like a fire
    after = run(pipe, 2, lambda k: frame(k), t0=10.0, pan=PAN + 30.0, road_mask=road)
    assert [(d.event, d.reason) for d in after] == [("rejected", "road")]


def test_transient_hotspot_is_rejected_when_it_vanishes() -> None:
    decisions = run(
        new_pipe(), 12, lambda k: point(frame(k), 60.0, 50.0, 40.0) if k < 3 else frame(k)
    )
    assert [(d.event, d.reason) for d in decisions] == [("rejected", "transient")]


def test_horizon_sky_mask_keeps_a_fire_at_the_horizon_detectable() -> None:
    horizon_row = 40
    horizon_el = pixel_to_pan_tilt(W / 2, horizon_row - 0.5, PAN, TILT, HFOV, W, H)[1]

    def draw(k: int) -> np.ndarray:
        f = frame(k)
        f[:horizon_row, :] = 250.0 + np.random.default_rng(k).normal(0, 3.0, (horizon_row, W))
        return point(f, 60.0, horizon_row + 1.0, 25.0)

    unmasked = run(new_pipe(), 15, draw)
    masked = run(FramePipeline(DetectionParams(), W, H, horizon_elevation_deg=horizon_el), 15, draw)
    assert [d.event for d in masked] == ["candidate"]
    assert "candidate" not in [d.event for d in unmasked]


def test_pixel_and_direction_conversions_invert_each_other() -> None:
    for x, y in [(0.0, 0.0), (63.5, 47.5), (127.0, 95.0), (10.3, 80.9)]:
        az, el = pixel_to_pan_tilt(x, y, 359.0, -2.0, HFOV, W, H)
        assert pan_tilt_to_pixel(az, el, 359.0, -2.0, HFOV, W, H) == pytest.approx((x, y), abs=1e-9)


def test_visit_mean_matches_numpy_and_ignores_nan_pixels() -> None:
    rng = np.random.default_rng(7)
    frames = [rng.normal(290.0, 2.0, (12, 16)).astype(np.float32) for _ in range(5)]
    frames[2][3, 4] = np.nan
    for frame in frames:
        frame[0, 0] = np.nan
    acc = VisitAccumulator()
    for k, frame in enumerate(frames):
        acc.add(frame, float(k))
    mean = acc.take_mean()
    assert mean is not None and acc.last_t == 4.0
    stack = np.stack(frames).astype(np.float64)
    finite = np.isfinite(stack)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(finite, stack, 0.0).sum(axis=0) / finite.sum(axis=0)
    np.testing.assert_allclose(mean[1:, 1:], expected[1:, 1:], rtol=1e-6)
    assert mean[3, 4] == pytest.approx(expected[3, 4], rel=1e-6)  # mean of the 4 finite
    assert np.isnan(mean[0, 0])  # never finite
    assert acc.take_mean() is None  # a new visit starts empty


def test_centikelvin_keeps_a_hundredth_of_a_kelvin_saturates_and_marks_unknown() -> None:
    kelvin = np.array([[290.004, 290.006], [700.0, np.nan]], dtype=np.float32)
    stored = to_centikelvin(kelvin)
    assert stored.dtype == np.uint16
    back = from_centikelvin(stored)
    assert back[0, 0] == pytest.approx(290.0, abs=1e-4)
    assert back[0, 1] == pytest.approx(290.01, abs=1e-4)
    assert back[1, 0] == pytest.approx(655.35, abs=1e-3)  # as the 16-bit stream saturates
    assert np.isnan(back[1, 1])


def test_pose_memory_at_full_resolution_blends_visits_in_uint16() -> None:
    first = np.full((4, 6), 290.0, np.float32)
    first[0, 0] = np.nan  # a dead pixel on the first visit
    second = np.full((4, 6), 300.0, np.float32)
    second[1, 1] = np.nan  # and another on the second
    memory = PoseMemory(PAN, TILT, HFOV, block_px=1)
    assert not memory.remembers and math.isnan(memory.background_max_k(2.0, 2.0, 1))
    memory.fold_visit(first, t=0.0, tau_s=600.0)
    memory.fold_visit(second, t=600.0, tau_s=600.0)
    alpha = 1.0 - math.exp(-1.0)
    assert memory.remembers and memory.visits == 2 and memory.last_visit_t == 600.0
    assert memory.nbytes == 2 * first.size * 2  # two uint16 frames
    background = from_centikelvin(memory.background_ck)  # type: ignore[arg-type]
    assert background[3, 5] == pytest.approx(290.0 + 10.0 * alpha, abs=0.006)
    assert background[0, 0] == pytest.approx(300.0)  # unknown before: the visit's value
    assert background[1, 1] == pytest.approx(290.0)  # unseen this visit: kept
    assert math.isnan(memory.last_visit_max_k(1.0, 1.0, 0))  # unseen on the last visit
    assert memory.last_visit_max_k(1.0, 1.0, 1) == pytest.approx(300.0)  # a neighbour's
    assert math.isnan(memory.background_max_k(50.0, 50.0, 1))  # off the frame


def test_pose_memory_in_blocks_keeps_each_blocks_warmest_pixel_in_an_eighth_of_the_bytes() -> None:
    scene = np.full((512, 640), 290.0, np.float32)
    scene[101, 203] = 340.0  # one warm pixel: a pumping unit's motor
    scene[300:, 600:] = np.nan  # never seen (sky mask)
    memory = PoseMemory(PAN, TILT, HFOV, block_px=2)
    memory.fold_visit(scene, t=0.0, tau_s=600.0)
    assert memory.nbytes * 8 == 2 * scene.nbytes  # float32 → uint16, 4 px → 1
    # the warm pixel is found from every position whose window covers it, as at full
    # resolution, and at most one pixel (block_px - 1) further
    assert memory.background_max_k(203.0, 101.0, 0) == pytest.approx(340.0)
    assert memory.last_visit_max_k(204.0, 102.0, 1) == pytest.approx(340.0)
    assert memory.last_visit_max_k(205.0, 101.0, 1) == pytest.approx(290.0)
    # columns 200–202 asked; column 202's block also holds column 203
    assert memory.last_visit_max_k(201.0, 101.0, 1) == pytest.approx(340.0)
    assert memory.last_visit_max_k(200.0, 101.0, 1) == pytest.approx(290.0)
    assert memory.background_max_k(210.0, 110.0, 1) == pytest.approx(290.0)
    assert math.isnan(memory.background_max_k(620.0, 400.0, 1))  # unknown stays unknown
    assert math.isnan(memory.background_max_k(700.0, 100.0, 1))  # off the frame


def test_pose_memory_in_blocks_covers_a_partial_edge_block() -> None:
    scene = np.full((5, 7), 290.0, np.float32)
    scene[4, 6] = 330.0  # the corner pixel sits alone in its 2 × 2 block
    memory = PoseMemory(PAN, TILT, HFOV, block_px=2)
    memory.fold_visit(scene, t=0.0, tau_s=600.0)
    assert memory.background_ck is not None and memory.background_ck.shape == (3, 4)
    assert memory.background_max_k(6.0, 4.0, 0) == pytest.approx(330.0)
    assert memory.background_max_k(2.0, 1.0, 1) == pytest.approx(290.0)


@pytest.mark.parametrize(("ground_range_m", "expected"), [(10_000.0, ["candidate"]), (1_000.0, [])])
def test_on_a_road_only_a_hotspot_too_large_for_a_vehicle_skips_the_revisits(
    ground_range_m: float, expected: list[str]
) -> None:
    road = np.zeros((H, W), dtype=bool)
    road[45:56, :] = True
    ranges = np.full(H, ground_range_m)
    decisions = run(new_pipe(), 20, lambda k: point(frame(k), 60.0, 50.0, 40.0),
                    road_mask=road, ground_range_m=ranges)  # fmt: skip
    # the same spot is a fire-sized source at 10 km, an engine-sized one at 1 km
    assert [d.event for d in decisions] == expected


def test_ground_range_by_row_meets_the_curved_earth_and_spares_the_sky() -> None:
    ranges = ground_range_by_row(-0.2683, 5.862, 640, 512, 40.0)
    centre = ranges[255] * 0.5 + ranges[256] * 0.5
    assert centre == pytest.approx(10_000.0, rel=0.01)  # docs/algorithms/test-scenarios.md case 16
    assert np.all(np.isnan(ranges[:20]))  # rows above the horizon see sky
    finite = ranges[np.isfinite(ranges)]
    assert np.all(np.diff(finite) < 0)  # lower rows, nearer ground
