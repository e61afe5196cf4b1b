"""Patrol planning: tiling for the lens, same-side approach, sun avoidance."""

from __future__ import annotations

import pytest

from edge.patrol import (
    APPROACH_MARGIN_DEG,
    PatrolPlan,
    approach_waypoints,
    signed_delta_deg,
    sun_in_view,
    tile_sector,
)


def test_full_circle_is_tiled_with_overlap_and_no_gap() -> None:
    stops = tile_sector(0.0, 360.0, -0.3, 5.86, 0.1)
    assert len(stops) == 69  # ceil(360 / (5.86 × 0.9))
    spacing = 360.0 / len(stops)
    assert spacing < 5.86  # neighbours overlap
    for a, b in zip(stops, stops[1:], strict=False):
        assert signed_delta_deg(a.pan_deg, b.pan_deg) == pytest.approx(spacing)
    assert all(s.tilt_deg == -0.3 for s in stops)


def test_sector_stops_are_flush_with_its_edges() -> None:
    stops = tile_sector(80.0, 30.0, 0.0, 5.0, 0.1)
    assert stops[0].pan_deg - 2.5 == pytest.approx(80.0)
    assert stops[-1].pan_deg + 2.5 == pytest.approx(110.0)
    gaps = [b.pan_deg - a.pan_deg for a, b in zip(stops, stops[1:], strict=False)]
    assert max(gaps) <= 5.0 * 0.9 + 1e-9


def test_a_sector_narrower_than_the_lens_is_one_centred_stop() -> None:
    (stop,) = tile_sector(350.0, 3.0, 0.0, 5.9, 0.1)
    assert stop.pan_deg == pytest.approx(351.5)


def test_plan_wraps_and_counts_cycles() -> None:
    plan = PatrolPlan(tile_sector(0.0, 20.0, 0.0, 5.0, 0.0))
    seen = [plan.take_next().index for _ in range(len(plan.stops) + 1)]
    assert seen == [*range(len(plan.stops)), 0]
    assert plan.cycles_completed == 1


def test_approach_is_always_clockwise() -> None:
    assert approach_waypoints(10.0, 20.0) == [20.0]
    assert approach_waypoints(30.0, 20.0) == [20.0 - APPROACH_MARGIN_DEG, 20.0]
    # across north: 355 → 5 is a clockwise turn of 10°
    assert approach_waypoints(355.0, 5.0) == [5.0]
    assert approach_waypoints(5.0, 355.0) == [353.0, 355.0]


def test_sun_in_the_widened_field_of_view_is_detected() -> None:
    assert sun_in_view(100.0, 0.0, 6.0, 4.7, 104.0, 3.0, 5.0)
    assert not sun_in_view(100.0, 0.0, 6.0, 4.7, 120.0, 3.0, 5.0)
    assert not sun_in_view(100.0, 0.0, 6.0, 4.7, 100.0, 30.0, 5.0)
    assert not sun_in_view(100.0, 0.0, 6.0, 4.7, 100.0, -5.0, 5.0)  # set


def test_patrol_skips_stops_that_would_look_into_the_sun() -> None:
    plan = PatrolPlan(tile_sector(90.0, 30.0, 0.0, 6.0, 0.0))
    stops = [plan.take_next_clear_of_sun(4.7, 105.0, 2.0, 5.0) for _ in range(len(plan.stops))]
    assert all(s is not None for s in stops)
    for s in stops:
        assert s is not None and abs(signed_delta_deg(s.pan_deg, 105.0)) > 3.0 + 5.0
    assert plan.skipped_for_sun > 0
    blocked = PatrolPlan(tile_sector(100.0, 4.0, 0.0, 6.0, 0.0))
    assert blocked.take_next_clear_of_sun(4.7, 102.0, 1.0, 5.0) is None


def test_patrol_resumes_at_the_interrupted_stop() -> None:
    plan = PatrolPlan(tile_sector(0.0, 40.0, 0.0, 5.0, 0.0))
    plan.take_next()
    interrupted = plan.take_next()
    plan.resume_at(interrupted.index)
    assert plan.take_next() == interrupted
    with pytest.raises(IndexError):
        plan.resume_at(len(plan.stops))
