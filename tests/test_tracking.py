"""Tracks: association across frames, motion, flicker and growth cues."""

from __future__ import annotations

import math

import pytest

from detectors.blobs import Blob
from detectors.tracking import Tracker


def blob(x: float, y: float, excess: float = 10.0, a_eq: float = 1e-8) -> Blob:
    return Blob(
        x=x,
        y=y,
        peak_x=int(x),
        peak_y=int(y),
        peak_k=330.0,
        bg_k=290.0,
        delta_t_k=40.0,
        z=20.0,
        area_px=1,
        excess_radiance=excess,
        a_eq_m2_per_range2=a_eq,
        compact=True,
        saturated=False,
        absolute=False,
    )


def test_blob_moving_3_px_per_frame_stays_one_track_with_its_speed() -> None:
    tracker = Tracker()
    fps = 10.0
    for k in range(10):
        touched, ended = tracker.update(k / fps, [blob(20.0 + 3.0 * k, 40.0)])
        assert not ended
    assert len(tracker.tracks) == 1
    track = tracker.tracks[0]
    assert track.hits == 10
    vx, vy = track.velocity_px_s()
    assert vx == pytest.approx(30.0, rel=1e-6) and abs(vy) < 1e-9
    assert track.net_displacement_px() == pytest.approx(27.0, rel=1e-6)


def test_jittering_fixed_source_does_not_look_like_motion() -> None:
    tracker = Tracker()
    jitter = [0.3, -0.25, 0.1, -0.35, 0.2, -0.1, 0.3, -0.3, 0.05, -0.2]
    for k, dx in enumerate(jitter):
        tracker.update(k * 0.1, [blob(50.0 + dx, 50.0 - dx)])
    track = tracker.tracks[0]
    assert track.net_displacement_px() < 1.5


def test_two_separate_blobs_make_two_tracks_and_a_missed_one_ends() -> None:
    tracker = Tracker(max_missed_frames=2)
    tracker.update(0.0, [blob(10, 10), blob(60, 60)])
    ended_all = []
    for k in range(1, 5):
        _, ended = tracker.update(k * 0.1, [blob(10, 10)])
        ended_all.extend(ended)
    assert [t.first.x for t in ended_all] == [60]
    assert len(tracker.tracks) == 1 and tracker.tracks[0].hits == 5
    assert tracker.tracks[0].persistence == 1.0


def test_track_ids_are_unique_across_a_reset() -> None:
    tracker = Tracker()
    tracker.update(0.0, [blob(10, 10)])
    first = tracker.reset()
    tracker.update(1.0, [blob(10, 10)])
    assert first[0].track_id != tracker.tracks[0].track_id


def test_flickering_source_has_a_high_coefficient_of_variation() -> None:
    steady, flicker = Tracker(), Tracker()
    for k in range(50):
        t = k * 0.1
        steady.update(t, [blob(30, 30, excess=10.0)])
        flicker.update(t, [blob(30, 30, excess=10.0 * (1 + 0.4 * math.sin(2 * math.pi * 1.0 * t)))])
    assert steady.tracks[0].flicker_cv() < 0.02
    assert flicker.tracks[0].flicker_cv() > 0.1


def test_growth_slope_and_its_t_statistic() -> None:
    tracker = Tracker()
    for k in range(20):
        tracker.update(k * 1.0, [blob(30, 30, a_eq=1e-8 * (1 + 0.1 * k))])
    track = tracker.tracks[0]
    slope, t_stat = track.slope_per_s([o.a_eq_m2_per_range2 for o in track.observations])
    assert slope == pytest.approx(1e-9, rel=1e-6)
    assert t_stat > 100
