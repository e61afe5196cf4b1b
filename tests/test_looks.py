"""The look scheduler, driven step by step: no threads, no devices, time passed in."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edge.alarms import FireObservation, OpenAlarm
from edge.config import load_config
from edge.detection import Candidate
from edge.looks import (
    MAX_PENDING_LOOKS,
    Look,
    LookKind,
    LookScheduler,
    LookSettings,
    patrol_stops,
)
from edge.messages import Uncertainty
from edge.patrol import PatrolPlan, tile_sector

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_750_000_000.0
NIGHT_SUN = (0.0, -30.0)  # sun az, el: below the horizon, nothing to avoid

SETTINGS = LookSettings(
    wide_hfov_deg=6.0,
    zoom_hfov_deg=1.5,
    wide_vfov_deg=4.8,
    vfov_per_hfov=0.8,
    patrol_tilt_deg=-0.3,
    patrol_dwell_s=2.0,
    patrol_settle_s=0.5,
    confirm_dwell_s=10.0,
    confirm_settle_s=1.0,
    revisit_after_s=60.0,
    max_revisits=2,
    dismissed_memory_s=1800.0,
    merge_bearing_deg=1.0,
    merge_elevation_deg=0.1,
    sun_margin_deg=5.0,
)


def scheduler(span_deg: float = 30.0) -> LookScheduler:
    return LookScheduler(SETTINGS, PatrolPlan(tile_sector(90.0, span_deg, -0.3, 6.0, 0.1)))


def candidate(pan_deg: float, tilt_deg: float = -0.3, a_eq: float = 1e-7) -> Candidate:
    return Candidate(T0, pan_deg, tilt_deg, 6.0, 320.0, 256.0, 5.0, 30.0, 20.0, a_eq, True)


def open_alarm(
    bearing_deg: float, alarm_id: str = "tw-1", elevation_deg: float = -0.3
) -> OpenAlarm:
    fire = FireObservation(
        t=T0, bearing_deg=bearing_deg, bearing_sigma_deg=0.06, elevation_deg=elevation_deg,
        lat=52.0, lon=13.0, range_m=9000.0, range_min_m=8900.0, range_max_m=9100.0,
        range_source="earth", bearing_only=False, uncertainty=Uncertainty(semi_major_m=50.0, semi_minor_m=10.0, orientation_deg=0.0),
        a_eq_m2=3.0, peak_k=30.0,
    )  # fmt: skip
    return OpenAlarm(alarm_id, 1, "confirmed", T0, T0, T0, T0, T0 + 120.0, fire, 0.0, None, False)


def patrol_look(s: LookScheduler, now: float = T0) -> Look:
    look = s.next_look(now, [], *NIGHT_SUN)
    assert look is not None and look.kind == LookKind.PATROL
    return look


def test_patrol_walks_the_stops_and_times_a_full_cycle() -> None:
    s = scheduler()
    stops = s.patrol.stops
    pans = [patrol_look(s, T0 + 10.0 * i).pan_deg for i in range(len(stops) - 1)]
    assert s.patrol_cycle_s is None
    # the cycle ends as its last stop is taken
    pans.append(patrol_look(s, T0 + 10.0 * (len(stops) - 1)).pan_deg)
    assert pans == [stop.pan_deg for stop in stops]
    assert s.patrol_cycle_s == pytest.approx(10.0 * (len(stops) - 1))
    assert patrol_look(s, T0 + 10.0 * len(stops)).pan_deg == stops[0].pan_deg


def test_patrol_skips_stops_with_the_sun_in_view() -> None:
    s = scheduler()
    first = s.patrol.stops[0]
    look = s.next_look(T0, [], first.pan_deg, first.tilt_deg)
    assert look is not None and look.pan_deg != first.pan_deg
    assert s.patrol.skipped_for_sun >= 1


def test_queued_looks_come_first_then_revisits_then_the_patrol() -> None:
    s = scheduler()
    recheck = s.recheck_look(200.0, None)
    assert s.queue(recheck, first=True)
    alarm = open_alarm(150.0)
    assert s.next_look(T0, [alarm], *NIGHT_SUN) is recheck
    revisit = s.next_look(T0, [alarm], *NIGHT_SUN)
    assert revisit is not None and revisit.kind == LookKind.REVISIT
    assert revisit.alarm_id == "tw-1" and revisit.hfov_deg == SETTINGS.zoom_hfov_deg
    assert revisit.candidate is not None and revisit.candidate.pan_deg == 150.0
    assert patrol_look(s).kind == LookKind.PATROL


def test_a_recheck_goes_ahead_of_waiting_looks_and_the_queue_is_bounded() -> None:
    s = scheduler()
    for i in range(MAX_PENDING_LOOKS):
        assert s.queue(s.recheck_look(float(i), None))
    assert not s.queue(s.recheck_look(300.0, None))
    assert len(s.pending) == MAX_PENDING_LOOKS
    s.pending.pop()
    assert s.queue(s.recheck_look(300.0, 1.0), first=True)
    look = s.next_look(T0, [], *NIGHT_SUN)
    assert look is not None and (look.pan_deg, look.tilt_deg) == (300.0, 1.0)


def test_a_candidate_gets_a_zoomed_confirmation_and_the_patrol_resumes_at_its_stop() -> None:
    s = scheduler()
    patrol_look(s)
    current = patrol_look(s)
    assert current.stop is not None
    confirm = s.on_candidate(candidate(current.pan_deg + 1.0), current, [], T0)
    assert confirm is not None and confirm.kind == LookKind.CONFIRM
    assert confirm.hfov_deg == SETTINGS.zoom_hfov_deg
    assert (confirm.dwell_s, confirm.settle_s) == (10.0, 1.0)
    assert patrol_look(s).pan_deg == current.pan_deg  # the interrupted stop again


def test_a_candidate_at_an_open_alarm_is_left_to_its_revisit() -> None:
    s = scheduler()
    current = patrol_look(s)
    alarms = [open_alarm(100.0)]
    assert s.on_candidate(candidate(100.9), current, alarms, T0) is None
    assert s.on_candidate(candidate(101.1), current, alarms, T0) is not None


def test_a_second_fire_on_an_open_alarms_bearing_at_another_range_is_confirmed() -> None:
    s = scheduler()
    current = patrol_look(s)
    # the alarm's fire at 10 km from a 40 m mast (-0.23°); a candidate at 5 km (-0.46°)
    alarms = [open_alarm(100.0, elevation_deg=-0.23)]
    assert s.on_candidate(candidate(100.0, tilt_deg=-0.27), current, alarms, T0) is None
    confirm = s.on_candidate(candidate(100.0, tilt_deg=-0.46), current, alarms, T0)
    assert confirm is not None and confirm.kind == LookKind.CONFIRM


def test_a_dismissed_spot_is_ignored_until_it_grows_or_the_memory_expires() -> None:
    s = scheduler()
    current = patrol_look(s)
    s.dismiss(candidate(120.0, a_eq=1e-7), "solar", T0)
    assert s.on_candidate(candidate(120.2, a_eq=1.9e-7), current, [], T0 + 10.0) is None
    assert s.on_candidate(candidate(120.2, a_eq=2.1e-7), current, [], T0 + 10.0) is not None
    assert s.on_candidate(candidate(120.4), current, [], T0 + 10.0) is not None
    assert s.on_candidate(candidate(120.0), current, [], T0 + 1800.0) is not None


def test_an_undecided_confirmation_waits_revisit_after_s_and_is_spent_after_max_revisits() -> None:
    s = scheduler()
    confirm = s.confirm_look(candidate(130.0))
    assert s.undecided(confirm, T0)
    (again,) = s.pending
    assert again.revisit_count == 1 and again.not_before == T0 + 60.0
    # not ready yet: the patrol goes on
    assert patrol_look(s, T0 + 59.0).kind == LookKind.PATROL
    assert s.next_look(T0 + 60.0, [], *NIGHT_SUN) is again
    again.revisit_count = SETTINGS.max_revisits
    assert not s.undecided(again, T0 + 70.0)
    assert s.pending == []


def test_the_sun_refuses_a_recheck_but_never_a_patrol_stop() -> None:
    s = scheduler()
    recheck = s.recheck_look(200.0, 10.0)
    assert s.sun_blocks(recheck, 202.0, 11.0)
    assert not s.sun_blocks(recheck, 230.0, 11.0)
    assert not s.sun_blocks(recheck, 200.0, -30.0)
    stop = patrol_look(s)
    assert not s.sun_blocks(stop, stop.pan_deg, stop.tilt_deg)


def test_a_hold_uses_the_wide_lens_unless_told() -> None:
    s = scheduler()
    hold = s.hold_look(361.0, 2.0, None, 30.0)
    assert (hold.kind, hold.pan_deg, hold.hfov_deg, hold.dwell_s, hold.settle_s) == (
        LookKind.HOLD, pytest.approx(1.0), 6.0, 30.0, 0.0,
    )  # fmt: skip
    assert s.hold_look(10.0, 0.0, 2.0, 30.0).hfov_deg == 2.0


def test_settings_and_stops_come_from_the_config() -> None:
    cfg = load_config(ROOT / "config" / "simulated.yaml")
    settings = LookSettings.from_config(cfg)
    assert settings.revisit_after_s == cfg.confirmation.revisit_after_s
    assert settings.zoom_hfov_deg == cfg.camera.zoom_hfov_deg
    assert math.isclose(settings.wide_vfov_deg, cfg.camera.vfov_deg)
    stops = patrol_stops(cfg)
    assert stops and all(stop.hfov_deg == cfg.camera.hfov_deg for stop in stops)
