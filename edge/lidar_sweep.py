"""The lidar's own background sweep: find smoke that rises where the camera sees no flame.

While no cued fan holds the lidar, the sweep shoots a priority sector row by row (the
lowest elevation first, just above the skyline) and analyses each profile against its
own clear-air trend (detectors.lidar_returns). A plume-like excess is then checked the
way an operator would: the same direction is shot again (smoke persists over shots, a
bird or a noise burst does not), and the beam walks outward to both sides until it
leaves the excess. What lies across no more than a plume's width is reported as one
``SmokeFix`` at the direction of its strongest return; an excess wider than any plume is
a haze layer or fog, counted and not reported. A reported plume or a seen layer is not
chased again for ``quiet_after_fix_s``.

No per-direction reference profiles are kept: a 360° sector at 0.2° and two
elevations would take ~0.6 GB of float32 bins; each profile carries its own trend.

The caller polls once per frame with ``paused`` true while a cued fan owns the lidar:
the sweep then neither asks nor reads (the fan reads every profile that arrives and
ignores the sweep's; a sweep scan unanswered for ``SCAN_TIMEOUT_S`` is forgotten).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import structlog

from detectors.geometry import angle_diff_deg, signed_delta_deg
from detectors.lidar_returns import LidarReturn, ProfileAnalysis, analyse_profile
from drivers.base import DriverError, LidarProfile, SmokeLidar
from edge.lidar_probe import ProbeResult

log = structlog.get_logger(__name__)

# Two scans in flight keep the lidar busy without queueing more than it accepts.
SWEEP_IN_FLIGHT = 2
# A scan asked for and not answered in this long (tower seconds) is forgotten: a fan
# that took the lidar meanwhile has read its profile.
SCAN_TIMEOUT_S = 10.0
_DIRECTION_MATCH_DEG = 0.01
_MAX_PROFILES_PER_POLL = 16
# A plume is at most this wide across the beam; wider is a layer (haze, fog, a cloud
# base). Reed-fire plumes a few km downwind are 50-200 m across. The width is taken
# where the return is at least half its strongest: a dense plume's faint edges reach
# well beyond its body.
MAX_PLUME_ACROSS_M = 300.0
# ... and an excess this wide in azimuth is a layer whatever its range.
MIN_LAYER_SPAN_DEG = 2.0
# The sweep may raise an alarm with no camera behind it, so the return that starts a
# chase must stand out further than the cued fan's (5 σ of shot noise): the faint,
# wandering near edge of a haze layer reaches 5-16 σ here and there. The walk follows
# returns down to 5 σ, which is how it finds that such an edge goes on sideways.
SWEEP_MIN_Z = 20.0
# The walk to each side stops this far from where it began.
MAX_WALK_DEG = 3.0
# A return in a neighbouring direction is the same excess when it overlaps the first
# one's extent widened by this: a layer's near edge wanders by hundreds of metres.
SAME_EXCESS_MARGIN_M = 150.0


@dataclass(frozen=True)
class SmokeFix:
    """A plume the sweep found: the direction of its strongest return and its range."""

    t: float
    azimuth_deg: float
    elevation_deg: float  # of the beam that met it
    range_m: float
    across_m: float  # the plume's width across the beam, from the directions that met it
    directions: int
    peak_z: float
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_probe_result(self) -> ProbeResult:
        """The fix in the cued fan's form, for geolocation's range check and evidence."""
        return ProbeResult(
            bearing_deg=self.azimuth_deg,
            tilt_deg=self.elevation_deg,
            done=True,
            range_m=self.range_m,
            evidence=self.evidence,
            beam_elevation_deg=self.elevation_deg,
            beam_azimuth_deg=self.azimuth_deg,
        )


@dataclass(frozen=True)
class SweepSettings:
    azimuth_start_deg: float
    azimuth_span_deg: float
    elevations_deg: tuple[float, ...]
    azimuth_step_deg: float
    shots: int
    quiet_after_fix_s: float
    min_range_m: float = 500.0


def sweep_directions(settings: SweepSettings) -> list[tuple[float, float]]:
    """(azimuth, elevation) of one sweep cycle: row by row, lowest elevation first."""
    steps = max(1, math.floor(settings.azimuth_span_deg / settings.azimuth_step_deg + 1e-9))
    if settings.azimuth_span_deg < 360.0:
        steps += 1  # both edges of a sector; a full circle would shoot north twice
    return [
        ((settings.azimuth_start_deg + k * settings.azimuth_step_deg) % 360.0, elevation)
        for elevation in settings.elevations_deg
        for k in range(steps)
    ]


class _Stage(Enum):
    SWEEP = "sweep"
    REPEAT = "repeat"  # the first hit's direction shot again
    LEFT = "left"  # walking counter-clockwise from it
    RIGHT = "right"  # then clockwise


@dataclass
class _Shot:
    azimuth_deg: float
    elevation_deg: float
    asked_at: float
    stage: _Stage


@dataclass
class _Hit:
    azimuth_deg: float
    range_m: float
    peak_z: float
    width_m: float
    plume_like: bool  # not an extended return (longer along the beam than any plume)

    @classmethod
    def of(cls, azimuth_deg: float, found: LidarReturn) -> _Hit:
        return cls(azimuth_deg, found.range_m, found.peak_z, found.width_m, found.kind == "plume")


@dataclass
class _Chase:
    elevation_deg: float
    origin_deg: float
    range_m: float
    hits: list[_Hit]
    start_m: float = 0.0  # the first return's extent along the beam
    end_m: float = math.inf
    step: int = 1  # how many azimuth steps out from the origin the next shot is

    def continued_by(self, analysis: ProfileAnalysis) -> LidarReturn | None:
        """The return of ``analysis`` that continues this excess (a plume or a layer):
        the strongest aerosol return overlapping the first one's extent, widened."""
        near = [
            r
            for r in analysis.returns
            if r.kind != "hard_target"
            and r.end_m >= self.start_m - SAME_EXCESS_MARGIN_M
            and r.start_m <= self.end_m + SAME_EXCESS_MARGIN_M
        ]
        return max(near, key=lambda r: r.peak_z) if near else None

    @property
    def strongest(self) -> _Hit:
        return max(self.hits, key=lambda h: h.peak_z)

    def offsets_deg(self, hits: Iterable[_Hit]) -> list[float]:
        """Each hit's azimuth from where the chase began, signed."""
        return [signed_delta_deg(self.origin_deg, h.azimuth_deg) for h in hits]

    def body_span_deg(self, step_deg: float) -> float:
        """Azimuth span of the directions whose return is at least half the strongest."""
        floor = 0.5 * self.strongest.peak_z
        offsets = self.offsets_deg(h for h in self.hits if h.peak_z >= floor)
        return max(offsets) - min(offsets) + step_deg


@dataclass
class _Quiet:
    low_deg: float
    span_deg: float
    until: float

    def covers(self, azimuth_deg: float, now: float) -> bool:
        return now < self.until and (azimuth_deg - self.low_deg) % 360.0 <= self.span_deg


class LidarSweep:
    """The background sweep; one thread (the daemon's) calls ``poll``."""

    def __init__(self, lidar: SmokeLidar, settings: SweepSettings) -> None:
        self.lidar = lidar
        self.settings = settings
        self.directions = sweep_directions(settings)
        self._cursor = 0
        self._in_flight: list[_Shot] = []
        self._chase: _Chase | None = None
        self._stage = _Stage.SWEEP
        self._quiet: list[_Quiet] = []
        self.counters = {
            "scans": 0,
            "cycles": 0,
            "plumes": 0,
            "layers": 0,
            "transients": 0,
            "lost": 0,
            "errors": 0,
            "unmatched": 0,
        }

    # ----------------------------------------------------------------- driving

    def poll(self, now: float, *, paused: bool) -> SmokeFix | None:
        """Read what arrived and ask for more; a plume found and walked across, or None."""
        if paused:
            return None
        self._forget_unanswered(now)
        fix: SmokeFix | None = None
        for _ in range(_MAX_PROFILES_PER_POLL):
            profile = self.lidar.read_profile(timeout_s=0.0)
            if profile is None:
                break
            shot = self._match(profile)
            if shot is None:
                self.counters["unmatched"] += 1
                continue
            self.counters["scans"] += 1
            fix = self._on_profile(shot, self._analyse(profile), profile.t, now) or fix
        self._ask(now)
        return fix

    def _forget_unanswered(self, now: float) -> None:
        kept = []
        for shot in self._in_flight:
            if now - shot.asked_at <= SCAN_TIMEOUT_S:
                kept.append(shot)
            elif shot.stage is not _Stage.SWEEP and self._chase is not None:
                self.counters["lost"] += 1
                self._end_chase()
        self._in_flight = kept

    def _match(self, profile: LidarProfile) -> _Shot | None:
        for shot in self._in_flight:
            if (
                angle_diff_deg(profile.azimuth_deg, shot.azimuth_deg) <= _DIRECTION_MATCH_DEG
                and abs(profile.elevation_deg - shot.elevation_deg) <= _DIRECTION_MATCH_DEG
            ):
                self._in_flight.remove(shot)
                return shot
        return None

    def _analyse(self, profile: LidarProfile) -> ProfileAnalysis:
        return analyse_profile(profile.bins, profile.first_bin_m, profile.bin_m,
                               shots=self.settings.shots,
                               min_range_m=self.settings.min_range_m)  # fmt: skip

    def _ask(self, now: float) -> None:
        while True:
            direction = self._next_direction(now)
            if direction is None:
                return
            azimuth, elevation = direction
            try:
                self.lidar.request_scan(azimuth, elevation, self.settings.shots)
            except DriverError as exc:
                # asked again on the next poll: the cursor moves on only once asked
                self.counters["errors"] += 1
                log.warning("lidar sweep scan not requested", error=str(exc))
                return
            self._in_flight.append(_Shot(azimuth, elevation, now, self._stage))
            if self._chase is None:
                self._advance_cursor()

    def _next_direction(self, now: float) -> tuple[float, float] | None:
        """The next direction to shoot now, or None (enough in flight)."""
        if self._chase is not None:
            # A chase shoots one direction at a time: each next step depends on the last.
            if any(s.stage is not _Stage.SWEEP for s in self._in_flight):
                return None
            return self._chase_direction()
        if len(self._in_flight) >= SWEEP_IN_FLIGHT:
            return None
        for _ in range(len(self.directions)):
            azimuth, elevation = self.directions[self._cursor]
            if not any(q.covers(azimuth, now) for q in self._quiet):
                return azimuth, elevation
            self._advance_cursor()
        return None  # the whole sector is quiet

    def _advance_cursor(self) -> None:
        self._cursor += 1
        if self._cursor == len(self.directions):
            self._cursor = 0
            self.counters["cycles"] += 1

    def _chase_direction(self) -> tuple[float, float]:
        chase = self._chase
        assert chase is not None
        offset = {_Stage.REPEAT: 0, _Stage.LEFT: -chase.step, _Stage.RIGHT: chase.step}[self._stage]
        azimuth = (chase.origin_deg + offset * self.settings.azimuth_step_deg) % 360.0
        return azimuth, chase.elevation_deg

    # ----------------------------------------------------------------- judging

    def _on_profile(
        self, shot: _Shot, analysis: ProfileAnalysis, profile_t: float, now: float
    ) -> SmokeFix | None:
        plume = analysis.plume
        if shot.stage is _Stage.SWEEP:
            if self._chase is None and plume is not None and plume.peak_z >= SWEEP_MIN_Z:
                self._chase = _Chase(shot.elevation_deg, shot.azimuth_deg, plume.range_m,
                                     [_Hit.of(shot.azimuth_deg, plume)],
                                     plume.start_m, plume.end_m)  # fmt: skip
                self._stage = _Stage.REPEAT
            return None
        chase = self._chase
        if chase is None:
            return None
        same = chase.continued_by(analysis)
        if self._stage is _Stage.REPEAT:
            # smoke persists over shots; a bird or a burst of noise does not
            if plume is None or same is None:
                self.counters["transients"] += 1
                self._end_chase()
                return None
            chase.hits.append(_Hit.of(shot.azimuth_deg, same))
            self._stage = _Stage.LEFT
            return None
        if same is not None:
            chase.hits.append(_Hit.of(shot.azimuth_deg, same))
            chase.step += 1
            if chase.step * self.settings.azimuth_step_deg <= MAX_WALK_DEG:
                return None
        if self._stage is _Stage.LEFT:
            self._stage = _Stage.RIGHT
            chase.step = 1
            return None
        self._quiet_around(chase, now)
        self._end_chase()
        if self._is_layer(chase):
            self.counters["layers"] += 1
            log.info("lidar sweep: a layer, not smoke", range_m=round(chase.range_m),
                     span_deg=round(chase.body_span_deg(self.settings.azimuth_step_deg), 2))  # fmt: skip
            return None
        fix = self._fix(chase, profile_t)
        self.counters["plumes"] += 1
        log.info("lidar sweep: smoke", azimuth_deg=round(fix.azimuth_deg, 2),
                 range_m=round(fix.range_m), across_m=round(fix.across_m))  # fmt: skip
        return fix

    def _is_layer(self, chase: _Chase) -> bool:
        if not chase.strongest.plume_like:
            return True  # its core is longer along the beam than a plume is deep
        span = chase.body_span_deg(self.settings.azimuth_step_deg)
        return span >= MIN_LAYER_SPAN_DEG or _across_m(span, chase.range_m) > MAX_PLUME_ACROSS_M

    def _fix(self, chase: _Chase, t: float) -> SmokeFix:
        strongest = chase.strongest
        span = chase.body_span_deg(self.settings.azimuth_step_deg)
        directions = len({round(h.azimuth_deg, 6) for h in chase.hits})
        evidence: dict[str, Any] = {
            "found_by": "sweep",
            "shots": self.settings.shots,
            "beam_azimuth_deg": round(strongest.azimuth_deg, 3),
            "beam_elevation_deg": round(chase.elevation_deg, 3),
            "plume_range_m": round(strongest.range_m, 1),
            "plume_width_m": round(strongest.width_m, 1),
            "plume_z": round(strongest.peak_z, 1),
            "across_m": round(_across_m(span, strongest.range_m), 1),
            "directions": directions,
        }
        return SmokeFix(t, strongest.azimuth_deg, chase.elevation_deg, strongest.range_m,
                        _across_m(span, strongest.range_m), directions, strongest.peak_z,
                        evidence)  # fmt: skip

    def _quiet_around(self, chase: _Chase, now: float) -> None:
        step = self.settings.azimuth_step_deg
        offsets = chase.offsets_deg(chase.hits)
        low = (chase.origin_deg + min(offsets) - 2 * step) % 360.0
        span = max(offsets) - min(offsets) + 4 * step
        self._quiet = [q for q in self._quiet if q.until > now]
        self._quiet.append(_Quiet(low, span, now + self.settings.quiet_after_fix_s))

    def _end_chase(self) -> None:
        self._chase = None
        self._stage = _Stage.SWEEP

    @property
    def chasing(self) -> bool:
        return self._chase is not None


def _across_m(span_deg: float, range_m: float) -> float:
    return math.radians(span_deg) * range_m
