"""The look scheduler: which look the head does next, with no devices, threads or clocks.

A *look* is move → settle → dwell at one pose. The scheduler owns what comes next:
queued looks (a recheck asked by the hub first, undecided confirmations again once
`revisit_after_s` has passed), revisits of open alarms, then the patrol clear of the sun.
It also keeps the dismissed-spot memory and decides whether a candidate deserves a
confirmation look. Every method is given `now` (tower seconds) and the sun's position,
so tests drive it step by step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from detectors.geometry import line_of_sight_gap, signed_delta_deg
from edge.config import TowerConfig
from edge.detection import Candidate
from edge.messages import Command
from edge.patrol import PatrolPlan, Stop, sun_in_view, tile_sector

if TYPE_CHECKING:
    from edge.alarms import OpenAlarm
    from edge.confirm import ConfirmationScan
    from edge.lidar_probe import LidarProbe
    from edge.lidar_sweep import SmokeFix

# A candidate this close (pan and tilt) to a dismissed spot is the same spot ...
DISMISSED_SPOT_DEG = 0.3
# ... unless it has grown to this many times the dismissed blob's A_eq/R².
DISMISSED_GROWTH_RATIO = 2.0
# Looks waiting beyond this many are refused: a flood of commands must not starve the patrol.
MAX_PENDING_LOOKS = 16


class LookKind(StrEnum):
    PATROL = "patrol"
    CONFIRM = "confirm"  # a candidate from the patrol, measured zoomed in
    REVISIT = "revisit"  # an open alarm, measured again zoomed in
    RECHECK = "recheck"  # asked by the hub
    HOLD = "hold"  # a `goto`: point and stay, no detection


# Looks that run a confirmation scan on their candidate.
SCANNED_KINDS = frozenset({LookKind.CONFIRM, LookKind.REVISIT})


@dataclass
class Look:
    kind: LookKind
    pan_deg: float
    tilt_deg: float
    hfov_deg: float
    dwell_s: float
    settle_s: float
    not_before: float = -math.inf  # a queued look waits until then (tower seconds)
    waypoints: list[float] = field(default_factory=list)
    request_id: int | None = None
    started_at: float = 0.0
    arrived_at: float | None = None
    stop: Stop | None = None
    candidate: Candidate | None = None
    scan: ConfirmationScan | None = None
    probe: LidarProbe | None = None
    alarm_id: str | None = None
    smoke: SmokeFix | None = None  # the lidar sweep's plume this look is checking
    revisit_count: int = 0
    frames_used: int = 0
    asked_by: Command | None = None  # the hub's command this look carries out, answered at its end

    def rewind(self, step_s: float) -> None:
        """Tower time stepped back by ``step_s``: the look's start and arrival move with it."""
        self.started_at -= step_s
        if self.arrived_at is not None:
            self.arrived_at -= step_s


@dataclass(frozen=True)
class Dismissed:
    pan_deg: float
    tilt_deg: float
    reason: str
    until: float
    a_eq_m2_per_range2: float

    def covers(self, candidate: Candidate, now: float) -> bool:
        return (
            self.until > now
            and abs(signed_delta_deg(self.pan_deg, candidate.pan_deg)) < DISMISSED_SPOT_DEG
            and abs(self.tilt_deg - candidate.tilt_deg) < DISMISSED_SPOT_DEG
            and candidate.a_eq_m2_per_range2 < DISMISSED_GROWTH_RATIO * self.a_eq_m2_per_range2
        )


@dataclass(frozen=True)
class LookSettings:
    """The config values the scheduler needs, taken once from the tower config."""

    wide_hfov_deg: float
    zoom_hfov_deg: float
    wide_vfov_deg: float
    vfov_per_hfov: float  # height/width of the sensor: a view's vfov for its hfov
    patrol_tilt_deg: float
    patrol_dwell_s: float
    patrol_settle_s: float
    confirm_dwell_s: float
    confirm_settle_s: float
    revisit_after_s: float
    max_revisits: int
    dismissed_memory_s: float
    merge_bearing_deg: float
    merge_elevation_deg: float
    sun_margin_deg: float

    @classmethod
    def from_config(cls, cfg: TowerConfig) -> LookSettings:
        return cls(
            wide_hfov_deg=cfg.camera.hfov_deg,
            zoom_hfov_deg=cfg.camera.zoom_hfov_deg,
            wide_vfov_deg=cfg.camera.vfov_deg,
            vfov_per_hfov=cfg.camera.height_px / cfg.camera.width_px,
            patrol_tilt_deg=cfg.patrol.tilt_deg,
            patrol_dwell_s=cfg.patrol.dwell_s,
            patrol_settle_s=cfg.patrol.settle_s,
            confirm_dwell_s=cfg.confirmation.dwell_s,
            confirm_settle_s=cfg.confirmation.settle_s,
            revisit_after_s=cfg.confirmation.revisit_after_s,
            max_revisits=cfg.confirmation.max_revisits,
            dismissed_memory_s=cfg.confirmation.dismissed_memory_s,
            merge_bearing_deg=cfg.alarm.merge_bearing_deg,
            merge_elevation_deg=cfg.alarm.merge_elevation_deg,
            sun_margin_deg=cfg.patrol.sun_avoidance_margin_deg,
        )


def patrol_stops(cfg: TowerConfig) -> list[Stop]:
    """The patrol's stops: the configured head presets, else the sector tiled for the lens."""
    p = cfg.patrol
    if p.presets:
        return [
            Stop(i, p.azimuth_start_deg, p.tilt_deg, cfg.camera.hfov_deg, preset)
            for i, preset in enumerate(p.presets)
        ]
    return tile_sector(
        p.azimuth_start_deg, p.azimuth_span_deg, p.tilt_deg, cfg.camera.hfov_deg,
        p.overlap_fraction,
    )  # fmt: skip


class LookScheduler:
    """What the head does next; one thread calls it."""

    def __init__(
        self, settings: LookSettings, patrol: PatrolPlan, *, max_pending: int = MAX_PENDING_LOOKS
    ) -> None:
        self.settings = settings
        self.patrol = patrol
        self.max_pending = max_pending
        self.pending: list[Look] = []
        self.dismissed: list[Dismissed] = []
        self.cycle_started_t: float | None = None
        self.patrol_cycle_s: float | None = None

    # --- building looks ------------------------------------------------------------

    def confirm_look(self, candidate: Candidate, *, revisit_count: int = 0) -> Look:
        s = self.settings
        return Look(LookKind.CONFIRM, candidate.pan_deg, candidate.tilt_deg, s.zoom_hfov_deg,
                    dwell_s=s.confirm_dwell_s, settle_s=s.confirm_settle_s, candidate=candidate,
                    revisit_count=revisit_count)  # fmt: skip

    def smoke_look(self, smoke: SmokeFix, ground_elevation_deg: float) -> Look:
        """A confirmation look at the ground under a plume the lidar sweep found."""
        s = self.settings
        expected = Candidate.expected_at(smoke.azimuth_deg, ground_elevation_deg, s.wide_hfov_deg)
        return Look(LookKind.CONFIRM, expected.pan_deg, ground_elevation_deg, s.zoom_hfov_deg,
                    dwell_s=s.confirm_dwell_s, settle_s=s.confirm_settle_s, candidate=expected,
                    smoke=smoke)  # fmt: skip

    def revisit_look(self, alarm: OpenAlarm) -> Look:
        s = self.settings
        obs = alarm.observation
        expected = Candidate.expected_at(obs.bearing_deg, obs.elevation_deg, s.wide_hfov_deg)
        return Look(LookKind.REVISIT, obs.bearing_deg, obs.elevation_deg, s.zoom_hfov_deg,
                    dwell_s=s.confirm_dwell_s, settle_s=s.confirm_settle_s, candidate=expected,
                    alarm_id=alarm.alarm_id)  # fmt: skip

    def recheck_look(self, pan_deg: float, tilt_deg: float | None) -> Look:
        s = self.settings
        tilt = s.patrol_tilt_deg if tilt_deg is None else tilt_deg
        return Look(LookKind.RECHECK, pan_deg % 360.0, tilt, s.wide_hfov_deg,
                    dwell_s=s.patrol_dwell_s, settle_s=s.patrol_settle_s)  # fmt: skip

    def hold_look(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None,
                  hold_s: float) -> Look:  # fmt: skip
        hfov = self.settings.wide_hfov_deg if hfov_deg is None else hfov_deg
        return Look(LookKind.HOLD, pan_deg % 360.0, tilt_deg, hfov, dwell_s=hold_s, settle_s=0.0)

    # --- the queue -----------------------------------------------------------------

    def queue(self, look: Look, *, first: bool = False) -> bool:
        """Queue a look (first: ahead of the others); False when the queue is full."""
        if len(self.pending) >= self.max_pending:
            return False
        if first:
            self.pending.insert(0, look)
        else:
            self.pending.append(look)
        return True

    def next_look(
        self, now: float, due_revisits: Sequence[OpenAlarm], sun_az_deg: float, sun_el_deg: float
    ) -> Look | None:
        """The look to start now: a ready queued look, an alarm's revisit, else the patrol."""
        for index, look in enumerate(self.pending):
            if look.not_before <= now:
                return self.pending.pop(index)
        if due_revisits:
            return self.revisit_look(due_revisits[0])
        s = self.settings
        before = self.patrol.cycles_completed
        stop = self.patrol.take_next_clear_of_sun(
            s.wide_vfov_deg, sun_az_deg, sun_el_deg, s.sun_margin_deg
        )
        if self.cycle_started_t is None:
            self.cycle_started_t = now
        elif self.patrol.cycles_completed > before:
            self.patrol_cycle_s = now - self.cycle_started_t
            self.cycle_started_t = now
        if stop is None:
            return None
        return Look(LookKind.PATROL, stop.pan_deg, stop.tilt_deg, stop.hfov_deg,
                    dwell_s=s.patrol_dwell_s, settle_s=s.patrol_settle_s, stop=stop)  # fmt: skip

    def sun_blocks(self, look: Look, sun_az_deg: float, sun_el_deg: float) -> bool:
        """Would this look put the sun in view? (The patrol plan already avoids it.)"""
        if look.kind == LookKind.PATROL:
            return False
        s = self.settings
        return sun_in_view(look.pan_deg, look.tilt_deg, look.hfov_deg,
                           look.hfov_deg * s.vfov_per_hfov, sun_az_deg, sun_el_deg,
                           s.sun_margin_deg)  # fmt: skip

    # --- candidates and verdicts ---------------------------------------------------

    def on_candidate(
        self, candidate: Candidate, current: Look, open_alarms: Sequence[OpenAlarm], now: float
    ) -> Look | None:
        """The confirmation look a candidate deserves, or None (a known fire, a dismissed spot).

        A known fire seen again from the patrol is measured by its scheduled revisit; no
        confirmation is spent on it. Known means on an open alarm's line of sight: its
        bearing and its elevation, so a second fire on the same bearing at another range
        is confirmed on its own. An interrupted patrol resumes at its stop afterwards.
        """
        s = self.settings
        for alarm in open_alarms:
            seen = alarm.observation
            gap = line_of_sight_gap(seen.bearing_deg, seen.elevation_deg, candidate.pan_deg,
                                    candidate.tilt_deg, s.merge_bearing_deg,
                                    s.merge_elevation_deg)  # fmt: skip
            if gap <= 1.0:
                return None
        if any(d.covers(candidate, now) for d in self.dismissed):
            return None
        look = self.confirm_look(candidate, revisit_count=current.revisit_count)
        look.alarm_id = current.alarm_id
        if current.kind == LookKind.PATROL and current.stop is not None:
            self.patrol.resume_at(current.stop.index)
        return look

    def undecided(self, look: Look, now: float) -> bool:
        """An undecided confirmation: queue it again after revisit_after_s; False when spent."""
        assert look.candidate is not None
        if look.revisit_count >= self.settings.max_revisits:
            return False
        again = self.confirm_look(look.candidate, revisit_count=look.revisit_count + 1)
        again.not_before = now + self.settings.revisit_after_s
        return self.queue(again)

    def dismiss(self, candidate: Candidate, reason: str, now: float) -> None:
        """Remember a dismissed spot for dismissed_memory_s; expired ones are forgotten."""
        self.dismissed = [d for d in self.dismissed if d.until > now]
        self.dismissed.append(
            Dismissed(candidate.pan_deg, candidate.tilt_deg, reason,
                      now + self.settings.dismissed_memory_s, candidate.a_eq_m2_per_range2)
        )  # fmt: skip
