"""The simulated PTZ head: slew speed, acceleration, wrap, limits, backlash, settle, presets."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.head import HeadCommandRefused, SimulatedHead


class StepClock:
    """A tower clock the test moves by hand."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def advance(self, dt_s: float) -> None:
        self.t += dt_s


def make_head(clock: StepClock, **kwargs: float) -> SimulatedHead:
    return SimulatedHead(clock, **kwargs)  # type: ignore[arg-type]


def test_absolute_pan_follows_a_trapezoidal_profile_and_lands_exactly() -> None:
    clock = StepClock()
    head = make_head(clock, pan_speed_deg_s=40.0, accel_deg_s2=80.0, settle_s=0.4)
    head.command_absolute(90.0, None)
    # 0.5 s ramp to 40 deg/s covers 10 deg, 1.75 s cruise covers 70 deg, 0.5 s brake 10 deg.
    clock.advance(0.5)
    assert head.state().raw_pan_deg == pytest.approx(10.0)
    clock.advance(1.0)
    assert head.state().raw_pan_deg == pytest.approx(50.0)
    clock.advance(1.25)
    state = head.state()
    assert state.raw_pan_deg == pytest.approx(90.0, abs=1e-9)
    assert state.moving, "the head reports moving until it has settled"
    clock.advance(0.39)
    assert head.state().moving
    clock.advance(0.02)
    assert not head.state().moving


def test_pan_takes_the_shortest_way_across_north() -> None:
    clock = StepClock()
    head = make_head(clock, initial_raw_pan_deg=350.0)
    head.command_absolute(10.0, None)
    seen = []
    for _ in range(20):
        clock.advance(0.05)
        seen.append(head.state().raw_pan_deg)
    assert all(p >= 350.0 or p <= 10.0 for p in seen)
    clock.advance(5.0)
    assert head.state().raw_pan_deg == pytest.approx(10.0)


def test_relative_pan_may_turn_more_than_half_a_circle() -> None:
    clock = StepClock()
    head = make_head(clock)
    head.command_relative(270.0, 0.0)
    clock.advance(3.0)
    assert 90.0 < head.state().raw_pan_deg < 270.0, "went the long way round as commanded"
    clock.advance(10.0)
    assert head.state().raw_pan_deg == pytest.approx(270.0)


def test_tilt_is_clamped_to_its_mechanical_limits() -> None:
    clock = StepClock()
    head = make_head(clock, tilt_min_deg=-30.0, tilt_max_deg=30.0)
    head.command_absolute(None, 75.0)
    clock.advance(10.0)
    assert head.state().raw_tilt_deg == pytest.approx(30.0)
    head.command_velocity(0.0, -1.0)
    clock.advance(10.0)
    state = head.state()
    assert state.raw_tilt_deg == pytest.approx(-30.0)


def test_continuous_pan_wraps_and_stop_brakes_to_rest() -> None:
    clock = StepClock()
    head = make_head(clock, pan_speed_deg_s=40.0, accel_deg_s2=80.0, settle_s=0.4)
    head.command_velocity(0.5, 0.0)
    clock.advance(0.25)  # ramp to 20 deg/s: 2.5 deg
    clock.advance(20.0)  # 400 deg at 20 deg/s
    assert head.state().raw_pan_deg == pytest.approx((2.5 + 400.0) % 360.0)
    assert head.state().moving
    head.stop()
    before = head.state().raw_pan_deg
    clock.advance(0.25)  # brakes from 20 deg/s at 80 deg/s²: 2.5 deg
    assert head.state().raw_pan_deg == pytest.approx((before + 2.5) % 360.0)
    clock.advance(0.5)
    assert not head.state().moving


def test_reversing_a_continuous_move_brakes_through_zero() -> None:
    clock = StepClock()
    head = make_head(clock, pan_speed_deg_s=40.0, accel_deg_s2=80.0)
    head.command_velocity(1.0, 0.0)
    clock.advance(2.0)
    p0 = head.state().raw_pan_deg
    head.command_velocity(-1.0, 0.0)
    clock.advance(0.5)  # still braking: keeps going forward by 10 deg
    assert head.state().raw_pan_deg == pytest.approx(p0 + 10.0)
    clock.advance(1.0)
    assert head.state().raw_pan_deg == pytest.approx(p0 + 10.0 - 10.0 - 20.0)


def test_backlash_leaves_an_error_that_depends_on_the_approach_side() -> None:
    clock = StepClock()
    head = make_head(clock, backlash_deg=0.2, initial_raw_pan_deg=80.0)
    head.command_absolute(100.0, None)
    clock.advance(10.0)
    from_below = head.true_pose()[0]
    head.command_absolute(120.0, None)
    clock.advance(10.0)
    head.command_absolute(100.0, None)
    clock.advance(10.0)
    from_above = head.true_pose()[0]
    assert head.state().raw_pan_deg == pytest.approx(100.0)
    assert from_above - from_below == pytest.approx(0.2)


def test_true_pose_includes_the_mount_offset() -> None:
    clock = StepClock()
    head = make_head(clock, mount_pan_offset_deg=37.5, mount_tilt_offset_deg=-0.8, backlash_deg=0.0)
    head.command_absolute(340.0, 2.0)
    clock.advance(20.0)
    azimuth, elevation, _ = head.true_pose()
    assert azimuth == pytest.approx((340.0 + 37.5) % 360.0)
    assert elevation == pytest.approx(1.2)


def test_zoom_moves_between_its_limits_at_the_zoom_speed() -> None:
    clock = StepClock()
    head = make_head(clock, hfov_min_deg=3.0, hfov_max_deg=24.0, zoom_full_travel_s=3.0)
    assert head.state().hfov_deg == pytest.approx(24.0)
    head.command_absolute(None, None, hfov_deg=6.0)  # two of three octaves: 2 s
    clock.advance(1.0)
    assert head.state().hfov_deg == pytest.approx(12.0)
    clock.advance(1.0)
    assert head.state().hfov_deg == pytest.approx(6.0)
    head.command_velocity(0.0, 0.0, zoom_frac=1.0)
    clock.advance(5.0)
    assert head.state().hfov_deg == pytest.approx(3.0)
    head.command_absolute(None, None, hfov_deg=1.0)
    clock.advance(5.0)
    assert head.state().hfov_deg == pytest.approx(3.0)


def test_presets_store_recall_and_remove_poses() -> None:
    clock = StepClock()
    head = make_head(clock)
    head.command_absolute(45.0, -5.0, 10.0)
    with pytest.raises(HeadCommandRefused, match="moving"):
        head.set_preset("reed bed")
    clock.advance(10.0)
    token = head.set_preset("reed bed")
    assert head.presets() == {token: "reed bed"}
    head.command_absolute(200.0, 10.0, 20.0)
    clock.advance(10.0)
    head.goto_preset(token)
    clock.advance(10.0)
    state = head.state()
    assert (state.raw_pan_deg, state.raw_tilt_deg, state.hfov_deg) == pytest.approx(
        (45.0, -5.0, 10.0)
    )
    assert head.set_preset("renamed", token) == token
    assert head.presets() == {token: "renamed"}
    head.remove_preset(token)
    assert head.presets() == {}
    with pytest.raises(HeadCommandRefused, match="no preset"):
        head.goto_preset(token)


def test_preset_memory_is_bounded() -> None:
    clock = StepClock()
    head = make_head(clock)
    for i in range(SimulatedHead.MAX_PRESETS):
        head.set_preset(f"p{i}")
    with pytest.raises(HeadCommandRefused, match="full"):
        head.set_preset("one too many")


def test_commands_from_many_threads_leave_a_consistent_head() -> None:
    clock = StepClock()
    head = make_head(clock)

    def hammer(offset: float) -> None:
        for i in range(200):
            head.command_absolute((offset + i) % 360.0, (i % 40) - 20.0)
            head.state()
            head.true_pose()

    threads = [threading.Thread(target=hammer, args=(k * 90.0,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    clock.advance(60.0)
    state = head.state()
    assert not state.moving
    assert 0.0 <= state.raw_pan_deg < 360.0


command = st.one_of(
    st.tuples(st.just("abs"), st.floats(-720, 720), st.floats(-90, 90), st.floats(0.5, 60)),
    st.tuples(st.just("rel"), st.floats(-400, 400), st.floats(-90, 90), st.just(0.0)),
    st.tuples(st.just("vel"), st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1)),
    st.tuples(st.just("stop"), st.just(0.0), st.just(0.0), st.just(0.0)),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(command, st.floats(0.0, 3.0)), max_size=12),
    st.floats(-180, 540),
    st.floats(-30, 30),
)
def test_any_command_sequence_stays_in_limits_and_settles_on_the_last_target(
    steps: list[tuple[tuple[str, float, float, float], float]],
    final_pan: float,
    final_tilt: float,
) -> None:
    clock = StepClock()
    head = make_head(clock)
    for (kind, a, b, c), dt_s in steps:
        if kind == "abs":
            head.command_absolute(a, b, c)
        elif kind == "rel":
            head.command_relative(a, b)
        elif kind == "vel":
            head.command_velocity(a, b, c)
        else:
            head.stop()
        clock.advance(dt_s)
        state = head.state()
        assert 0.0 <= state.raw_pan_deg < 360.0
        assert -30.0 - 1e-9 <= state.raw_tilt_deg <= 30.0 + 1e-9
        assert 3.0 - 1e-9 <= state.hfov_deg <= 25.0 + 1e-9
        assert all(math.isfinite(v) for v in head.true_pose())
    head.command_absolute(final_pan, final_tilt, 8.0)
    clock.advance(30.0)
    state = head.state()
    assert not state.moving
    assert (state.raw_pan_deg - final_pan % 360.0 + 180.0) % 360.0 - 180.0 == pytest.approx(
        0.0, abs=1e-6
    )
    assert state.raw_tilt_deg == pytest.approx(final_tilt, abs=1e-9)
    assert state.hfov_deg == pytest.approx(8.0)
