"""The run deadline: `--duration` ends on time whatever the frames do."""

from __future__ import annotations

from edge.clock import CameraClock, RunDeadline, SystemClock, clock_for

T0 = 1_750_000_000.0


def test_without_frames_the_deadline_is_monotonic() -> None:
    d = RunDeadline(10.0, started_mono=100.0)
    assert not d.over(0.0, 109.9)
    assert d.over(0.0, 110.0)


def test_tower_time_counts_from_the_first_frame() -> None:
    d = RunDeadline(60.0, started_mono=0.0)
    # a simulated tower at 3x: 60 tower seconds in 20 wall seconds
    for k in range(20):
        d.frame(T0 + 3.0 * k, 5.0 + k)
        assert not d.over(T0 + 3.0 * k, 5.0 + k)
    d.frame(T0 + 60.0, 25.0)
    assert d.over(T0 + 60.0, 25.0)


def test_a_camera_clock_frozen_by_stopped_frames_still_ends_on_time() -> None:
    d = RunDeadline(60.0, started_mono=0.0)
    d.frame(T0, 1.0)
    d.frame(T0 + 20.0, 21.0)  # frames stop here: 40 s were left
    assert not d.over(T0 + 20.0, 60.9)
    assert d.over(T0 + 20.0, 61.0)


def test_a_system_clock_does_not_end_early_when_frames_stop() -> None:
    d = RunDeadline(60.0, started_mono=0.0)
    d.frame(T0, 0.0)
    d.frame(T0 + 30.0, 30.0)
    # the wall clock runs on: the end is still 60 s after the first frame
    assert not d.over(T0 + 45.0, 45.0)
    assert not d.over(T0 + 59.0, 59.0)
    assert d.over(T0 + 60.0, 60.0)


def test_no_duration_never_ends() -> None:
    d = RunDeadline(None, started_mono=0.0)
    d.frame(T0, 0.0)
    assert not d.over(T0 + 1e9, 1e9)


def test_the_config_picks_the_clock() -> None:
    assert isinstance(clock_for("camera"), CameraClock)
    assert isinstance(clock_for("system"), SystemClock)
    camera = CameraClock()
    camera.observe_frame(T0)
    camera.observe_frame(T0 - 5.0)  # a late frame does not rewind it
    assert camera.now() == T0
