"""Blobs become tracks within one PTZ pose: gated nearest-neighbour association and track cues."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detectors.blobs import Blob


@dataclass(frozen=True)
class Observation:
    """One blob of a track at time ``t`` (unix seconds)."""

    t: float
    x: float
    y: float
    peak_k: float
    delta_t_k: float
    excess_radiance: float
    a_eq_m2_per_range2: float
    area_px: int
    compact: bool
    absolute: bool


@dataclass
class Track:
    """A hotspot followed across the frames of one pose."""

    track_id: int
    observations: list[Observation] = field(default_factory=list)
    frames_since_start: int = 0  # frames processed since the track began, itself included
    missed_frames: int = 0
    last_seen_t: float = math.nan
    qualified: bool = False
    rejected_reason: str | None = None

    @property
    def hits(self) -> int:
        return len(self.observations)

    @property
    def first(self) -> Observation:
        return self.observations[0]

    @property
    def last(self) -> Observation:
        return self.observations[-1]

    @property
    def duration_s(self) -> float:
        return self.last.t - self.first.t

    @property
    def persistence(self) -> float:
        """Fraction of the frames since the track began in which it was seen."""
        return self.hits / max(self.frames_since_start, 1)

    def velocity_px_s(self) -> tuple[float, float]:
        """Least-squares (vx, vy) in px/s over the track; (0, 0) until it spans time."""
        if self.hits < 2:
            return 0.0, 0.0
        t = np.array([o.t for o in self.observations])
        t = t - t.mean()
        denom = float((t * t).sum())
        if denom <= 0.0:
            return 0.0, 0.0
        x = np.array([o.x for o in self.observations])
        y = np.array([o.y for o in self.observations])
        return float((t * x).sum() / denom), float((t * y).sum() / denom)

    def net_displacement_px(self) -> float:
        """Displacement along the fitted straight-line motion over the track's duration.

        A fit rather than last-minus-first: turbulence jitters a fixed source by a few
        tenths of a pixel per frame, which a two-point difference would take for motion.
        """
        vx, vy = self.velocity_px_s()
        return math.hypot(vx, vy) * self.duration_s

    def predicted(self, t: float) -> tuple[float, float]:
        """Where the track should be at ``t`` (constant velocity from its last position)."""
        vx, vy = self.velocity_px_s()
        dt = t - self.last.t
        return self.last.x + vx * dt, self.last.y + vy * dt

    def flicker_cv(self) -> float:
        """Coefficient of variation of the excess radiance (s_t / mean); NaN when undefined."""
        if self.hits < 3:
            return math.nan
        v = np.array([o.excess_radiance for o in self.observations])
        mean = float(v.mean())
        if mean <= 0.0:
            return math.nan
        return float(v.std(ddof=1)) / mean

    def slope_per_s(self, values: Sequence[float]) -> tuple[float, float]:
        """(slope per second, t statistic of the slope) of a series over the track's times."""
        n = len(values)
        if n < 3:
            return 0.0, 0.0
        t = np.array([o.t for o in self.observations[-n:]])
        v = np.asarray(values, dtype=np.float64)
        t = t - t.mean()
        denom = float((t * t).sum())
        if denom <= 0.0:
            return 0.0, 0.0
        slope = float((t * (v - v.mean())).sum() / denom)
        resid = v - v.mean() - slope * t
        s2 = float((resid * resid).sum()) / (n - 2)
        if s2 <= 0.0:
            return slope, math.copysign(math.inf, slope) if slope != 0 else 0.0
        return slope, slope / math.sqrt(s2 / denom)


class Tracker:
    """Associates each frame's blobs with the open tracks of the current pose.

    ``gate_px`` is the association radius around a track's predicted position; it
    grows with the distance the track moved per frame so a vehicle crossing 3 px per
    frame stays one track (and is then rejected for its motion, not split into many
    transient ones). A track missed for more than ``max_missed_frames`` ends.
    """

    def __init__(self, gate_px: float = 4.0, max_missed_frames: int = 3) -> None:
        self.gate_px = gate_px
        self.max_missed_frames = max_missed_frames
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> list[Track]:
        """End every open track (a new pose); returns them."""
        ended = self.tracks
        self.tracks = []
        return ended

    def update(self, t: float, blobs: Sequence[Blob]) -> tuple[list[Track], list[Track]]:
        """Add one frame; returns (tracks updated or created this frame, tracks that ended)."""
        pairs: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self.tracks):
            vx, vy = track.velocity_px_s()  # one fit per track and frame
            px, py = track.last.x + vx * (t - track.last.t), track.last.y + vy * (t - track.last.t)
            frame_dt = (t - track.last_seen_t) if track.hits else 0.0
            gate = self.gate_px + math.hypot(vx, vy) * max(frame_dt, 0.0) * 0.5
            for bi, blob in enumerate(blobs):
                d = math.hypot(blob.x - px, blob.y - py)
                if d <= gate:
                    pairs.append((d, ti, bi))
        pairs.sort()
        used_tracks: set[int] = set()
        used_blobs: set[int] = set()
        touched: list[Track] = []
        for _, ti, bi in pairs:
            if ti in used_tracks or bi in used_blobs:
                continue
            used_tracks.add(ti)
            used_blobs.add(bi)
            track = self.tracks[ti]
            self._observe(track, t, blobs[bi])
            touched.append(track)
        ended: list[Track] = []
        still_open: list[Track] = []
        for ti, track in enumerate(self.tracks):
            if ti not in used_tracks:
                track.missed_frames += 1
                track.frames_since_start += 1
                if track.missed_frames > self.max_missed_frames:
                    ended.append(track)
                    continue
            still_open.append(track)
        for bi, blob in enumerate(blobs):
            if bi in used_blobs:
                continue
            track = Track(track_id=self._next_id)
            self._next_id += 1
            self._observe(track, t, blob)
            still_open.append(track)
            touched.append(track)
        self.tracks = still_open
        return touched, ended

    @staticmethod
    def _observe(track: Track, t: float, blob: Blob) -> None:
        track.observations.append(
            Observation(
                t=t,
                x=blob.x,
                y=blob.y,
                peak_k=blob.peak_k,
                delta_t_k=blob.delta_t_k,
                excess_radiance=blob.excess_radiance,
                a_eq_m2_per_range2=blob.a_eq_m2_per_range2,
                area_px=blob.area_px,
                compact=blob.compact,
                absolute=blob.absolute,
            )
        )
        track.frames_since_start += 1
        track.missed_frames = 0
        track.last_seen_t = t
