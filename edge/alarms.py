"""Alarm lifecycle: one alarm per fire, confirmed → updated (rate-limited) → cleared, persisted."""

from __future__ import annotations

import datetime as dt
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args

import numpy as np
import structlog
from pydantic import ConfigDict, TypeAdapter

from detectors.geometry import angle_diff_deg, line_of_sight_gap
from edge.config import AlarmSettings
from edge.geodesy import distance_bearing, geodetic_to_enu
from edge.geolocation import Geolocation
from edge.messages import AlarmMessage, AlarmState, RangeSource, Uncertainty, build_alarm

log = structlog.get_logger(__name__)

# /2: the ellipse is the contract's Uncertainty object, written by typed models.
STATE_FORMAT: Final = "towerwatch.alarms/2"

# The alarm book file is read back strictly: a value of the wrong type is corruption,
# not something to coerce.
_STRICT: Final = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

EVIDENCE_SENSORS = ("thermal", "visible", "lidar")
_RANGE_SOURCES: tuple[str, ...] = get_args(RangeSource)

# Cleared alarms are remembered this many at a time: their ids stay taken and their
# final message can be queued again after a crash (see AlarmBook.events_for_resend).
_CLOSED_HISTORY = 32

# Growth slopes over less time than this are noise from two frames of one dwell.
_MIN_GROWTH_SPAN_S = 1.0

OpenState = Literal["confirmed", "updated"]


def _finite(name: str, value: float | None, *, allow_none: bool = False) -> None:
    if value is None:
        if not allow_none:
            raise ValueError(f"fire observation {name} is required")
        return
    if not math.isfinite(value):
        raise ValueError(f"fire observation {name} must be finite, got {value}")


@dataclass(frozen=True)
class FireObservation:
    __pydantic_config__ = _STRICT

    """One look at a fire: where (bearing, and a point unless bearing-only), how big, what saw it.

    `evidence` maps a sensor name (thermal, visible, lidar) to its measurements;
    `confidence` is the confirmation stage's belief in [0, 1] that this is a fire;
    `bearing_sigma_deg` is the 1-σ uncertainty of the bearing (> 0).
    """

    t: float
    bearing_deg: float
    bearing_sigma_deg: float
    elevation_deg: float
    lat: float | None
    lon: float | None
    range_m: float | None
    range_min_m: float | None
    range_max_m: float | None
    range_source: RangeSource
    bearing_only: bool
    uncertainty: Uncertainty | None
    a_eq_m2: float
    peak_k: float
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    confidence: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "t", "bearing_deg", "bearing_sigma_deg", "elevation_deg", "a_eq_m2", "peak_k",
            "confidence",
        ):  # fmt: skip
            _finite(name, getattr(self, name))
        if not 0.0 < self.bearing_sigma_deg <= 180.0:
            raise ValueError(
                f"fire observation bearing_sigma_deg must be in (0, 180], got {self.bearing_sigma_deg}"
            )
        for name in ("lat", "lon", "range_m", "range_min_m", "range_max_m"):
            _finite(name, getattr(self, name), allow_none=True)
        object.__setattr__(self, "bearing_deg", self.bearing_deg % 360.0)
        if self.range_source not in _RANGE_SOURCES:
            raise ValueError(
                f"fire observation range_source {self.range_source!r} is not one of {_RANGE_SOURCES}"
            )
        if (self.lat is None) != (self.lon is None):
            raise ValueError("fire observation lat and lon go together")
        if not self.bearing_only and (
            self.lat is None or self.range_m is None or self.uncertainty is None
        ):
            raise ValueError(
                "fire observation needs lat, lon, range_m and uncertainty unless bearing_only"
            )
        if self.a_eq_m2 < 0.0:
            raise ValueError(f"fire observation a_eq_m2 must be >= 0, got {self.a_eq_m2}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(
                f"fire observation confidence must be in [0, 1], got {self.confidence}"
            )
        unknown = set(self.evidence) - set(EVIDENCE_SENSORS)
        if unknown:
            raise ValueError(
                f"fire observation evidence has unknown sensors {sorted(unknown)}; "
                f"known: {EVIDENCE_SENSORS}"
            )

    @property
    def located(self) -> bool:
        """True when the observation gives a point, not just a bearing and a range interval."""
        return not self.bearing_only and self.lat is not None and self.lon is not None

    @classmethod
    def from_geolocation(
        cls,
        geo: Geolocation,
        *,
        t: float,
        bearing_sigma_deg: float,
        a_eq_m2: float,
        peak_k: float,
        evidence: Mapping[str, dict[str, Any]] | None = None,
        confidence: float = 1.0,
    ) -> FireObservation:
        """The observation of a located hotspot.

        A bearing-only fix (flat ground: the range is known only as an interval) states
        its bearing wedge: the bearing with its σ and the range interval, and no point,
        range or ellipse. Its nominal point is a guess along the line of sight that no
        range source supports, so it is not published.
        """
        located = not geo.bearing_only and geo.lat is not None and geo.lon is not None
        return cls(
            t=t,
            bearing_deg=geo.bearing_deg,
            bearing_sigma_deg=bearing_sigma_deg,
            elevation_deg=geo.elevation_deg,
            lat=geo.lat if located else None,
            lon=geo.lon if located else None,
            range_m=geo.range_m if located else None,
            range_min_m=geo.range_min_m,
            range_max_m=geo.range_max_m,
            range_source=geo.range_source,
            bearing_only=not located,
            uncertainty=geo.uncertainty if located else None,
            a_eq_m2=a_eq_m2,
            peak_k=peak_k,
            evidence=dict(evidence or {}),
            confidence=confidence,
        )


@dataclass(frozen=True)
class AlarmEvent:
    """One alarm message to publish: a state change of one alarm, numbered by seq."""

    __pydantic_config__ = _STRICT

    alarm_id: str
    seq: int
    state: AlarmState
    first_seen: float
    confirmed_at: float
    t: float
    observation: FireObservation
    growth_m2_per_min: float
    spread_bearing_deg: float | None
    confidence: float

    def __post_init__(self) -> None:
        if self.seq < 1:
            raise ValueError(f"alarm {self.alarm_id}: seq must be >= 1, got {self.seq}")

    def to_message(self, tower: Mapping[str, Any]) -> AlarmMessage:
        """The validated `towerwatch.alarm/1` message; tower is {"id", "lat", "lon"}.

        Built and validated by edge.messages.build_alarm, so the schema lives there.
        The thermal evidence carries the hotspot's peak contrast (peak_k) besides
        whatever the thermal stage reported.
        """
        obs = self.observation
        thermal = {"peak_k": obs.peak_k, **obs.evidence.get("thermal", {})}
        return build_alarm(
            alarm_id=self.alarm_id,
            seq=self.seq,
            state=self.state,
            first_seen_s=self.first_seen,
            confirmed_at_s=self.confirmed_at,
            sent_at_s=self.t,
            tower_id=str(tower["id"]),
            tower_lat=float(tower["lat"]),
            tower_lon=float(tower["lon"]),
            bearing_deg=obs.bearing_deg,
            bearing_sigma_deg=obs.bearing_sigma_deg,
            elevation_deg=obs.elevation_deg,
            range_source=obs.range_source,
            position=(obs.lat, obs.lon) if obs.lat is not None and obs.lon is not None else None,
            uncertainty=obs.uncertainty,
            range_m=obs.range_m,
            range_min_m=obs.range_min_m,
            range_max_m=obs.range_max_m,
            bearing_only=obs.bearing_only,
            thermal=thermal,
            visible=obs.evidence.get("visible"),
            lidar=obs.evidence.get("lidar"),
            a_eq_m2=obs.a_eq_m2,
            growth_m2_per_min=self.growth_m2_per_min,
            confidence=self.confidence,
        )


@dataclass(frozen=True)
class OpenAlarm:
    """A read-only view of an open alarm, for the patrol (where to look) and for status."""

    alarm_id: str
    seq: int
    state: OpenState
    first_seen: float
    confirmed_at: float
    last_seen: float
    last_looked_at: float
    next_revisit_at: float
    observation: FireObservation
    growth_m2_per_min: float
    spread_bearing_deg: float | None
    update_pending: bool


@dataclass
class _Alarm:
    """Mutable record of one open alarm; owned by AlarmBook's single thread."""

    __pydantic_config__ = _STRICT

    alarm_id: str
    seq: int
    first_seen: float
    confirmed_at: float
    latest: FireObservation
    track: list[FireObservation]
    last_seen: float
    last_looked_at: float
    absent_since: float | None
    update_pending: bool
    last_event: AlarmEvent

    def __post_init__(self) -> None:
        event = self.last_event
        if event.alarm_id != self.alarm_id or event.seq != self.seq:
            raise ValueError(f"alarm {self.alarm_id}: last event does not match its seq")
        if event.state not in ("confirmed", "updated"):
            raise ValueError(f"alarm {self.alarm_id}: open with state {event.state}")


@dataclass
class _BookFile:
    """What alarms.json holds: the open alarms and the last events of recently cleared ones."""

    __pydantic_config__ = _STRICT

    format: Literal["towerwatch.alarms/2"]
    tower_id: str
    open: list[_Alarm]
    closed: list[AlarmEvent]
    # tower time the alarm relay was closed at, None while it is open: a restart
    # restores the siren instead of silencing it mid-alarm
    relay_closed_at: float | None = None


_BOOK_FILE: Final = TypeAdapter(_BookFile)


def _stamp(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s, tz=dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def growth_m2_per_min(track: list[FireObservation]) -> float:
    """Least-squares slope of A_eq over time (m²/min); 0 until the track spans a second."""
    if len(track) < 2:
        return 0.0
    t = np.array([obs.t for obs in track])
    span_s = float(t.max() - t.min())
    if span_s < _MIN_GROWTH_SPAN_S:
        return 0.0
    a = np.array([obs.a_eq_m2 for obs in track])
    t_c = t - t.mean()
    slope_per_s = float(np.dot(t_c, a - a.mean()) / np.dot(t_c, t_c))
    return slope_per_s * 60.0


def spread_bearing_deg(
    track: list[FireObservation], min_displacement_m: float, min_span_s: float
) -> float | None:
    """Direction the fire's centroid moves (least-squares velocity in local ENU), or None.

    Only located observations count; they must span min_span_s and the fitted
    displacement over that span must reach min_displacement_m, so the jitter of a
    still fire, or two looks seconds apart, give no direction.
    """
    points = [obs for obs in track if obs.located]
    if len(points) < 2:
        return None
    t = np.array([obs.t for obs in points])
    span_s = float(t.max() - t.min())
    if span_s <= 0.0 or span_s < min_span_s:
        return None
    t_c = t - t.mean()
    denom = float(np.dot(t_c, t_c))
    origin = points[0]
    assert origin.lat is not None and origin.lon is not None  # located
    lats = np.array([obs.lat for obs in points], dtype=np.float64)
    lons = np.array([obs.lon for obs in points], dtype=np.float64)
    east, north, _ = geodetic_to_enu(lats, lons, 0.0, origin.lat, origin.lon, 0.0)
    v_east = float(np.dot(t_c, east - east.mean()) / denom)
    v_north = float(np.dot(t_c, north - north.mean()) / denom)
    displacement_m = math.hypot(v_east, v_north) * span_s
    if displacement_m < min_displacement_m:
        return None
    return math.degrees(math.atan2(v_east, v_north)) % 360.0


class AlarmBook:
    """The open alarms of one tower and every rule of their life; one thread calls it.

    Times are UTC unix seconds passed in by the caller (`now`, and `t` of each
    observation). Every state change is saved to `state_path` before the method
    returns its event, so a restart (even after kill -9) continues each alarm with
    the same id and the next seq. Save errors (OSError) propagate: an alarm whose
    state cannot be kept must not be announced as if it could.
    """

    def __init__(
        self, state_path: Path, tower_id: str, settings: AlarmSettings | None = None
    ) -> None:
        if not tower_id:
            raise ValueError("alarm book tower_id must not be empty")
        # The tunables are config keys (alarm.*), bounded by the schema.
        a = AlarmSettings() if settings is None else settings
        self.state_path = Path(state_path)
        self.tower_id = tower_id
        self.clear_after_s = a.clear_after_s
        self.update_min_interval_s = a.update_min_interval_s
        self.merge_radius_m = a.merge_radius_m
        self.merge_bearing_deg = a.merge_bearing_deg
        self.merge_elevation_deg = a.merge_elevation_deg
        self.revisit_interval_s = a.revisit_interval_s
        self.update_position_m = a.update_position_m
        self.update_bearing_deg = a.update_bearing_deg
        self.update_size_ratio = a.update_size_ratio
        self.update_growth_m2_per_min = a.update_growth_m2_per_min
        self.update_spread_deg = a.update_spread_deg
        self.spread_min_displacement_m = a.spread_min_displacement_m
        self.spread_min_span_s = a.spread_min_span_s
        self.track_length = a.track_length
        # Why the book could not be read at start (the status reports it), else None.
        self.load_problem: str | None = None
        self._relay_closed_at: float | None = None
        self._open: dict[str, _Alarm] = {}
        self._closed: list[AlarmEvent] = []
        self._load()

    # --- queries -----------------------------------------------------------------

    def open_alarms(self) -> list[OpenAlarm]:
        """Every open alarm, oldest confirmation first."""
        return [self._view(a) for a in sorted(self._open.values(), key=lambda a: a.confirmed_at)]

    def due_revisits(self, now: float) -> list[OpenAlarm]:
        """Open alarms the patrol should look at again now, most overdue first.

        An alarm stays due until observe_seen or observe_absent reports the look.
        """
        due = [a for a in self._open.values() if now >= a.last_looked_at + self.revisit_interval_s]
        due.sort(key=lambda a: a.last_looked_at)
        return [self._view(a) for a in due]

    @property
    def relay_closed_at(self) -> float | None:
        """When the alarm relay was closed (kept across restarts), None while open."""
        return self._relay_closed_at

    def set_relay(self, closed_at: float | None) -> None:
        """Record the relay's state; saved at once."""
        if closed_at != self._relay_closed_at:
            self._relay_closed_at = closed_at
            self._save()

    def is_known(self, fire: FireObservation) -> bool:
        """Would observe_confirmed merge this fire into an open alarm (no new alarm)?"""
        return self._nearest_open(fire) is not None

    def events_for_resend(self) -> list[AlarmEvent]:
        """The newest event of every open and recently cleared alarm, oldest first.

        Queue them again after a start: if the process died between saving this
        book and committing the message to the outbox, this is the only copy; the
        hub drops the duplicates by (alarm_id, seq).
        """
        events = [a.last_event for a in self._open.values()] + list(self._closed)
        return sorted(events, key=lambda e: (e.t, e.alarm_id))

    # --- observations ------------------------------------------------------------

    def observe_confirmed(self, fire: FireObservation, now: float) -> AlarmEvent | None:
        """A fire the confirmation scan has just confirmed.

        Near an open alarm it updates that alarm (an `updated` event, None when
        nothing changed meaningfully or the rate limit holds it back); otherwise it
        opens a new alarm and returns its `confirmed` event.
        """
        alarm = self._nearest_open(fire)
        if alarm is not None:
            log.info("alarm_merged", alarm_id=alarm.alarm_id, bearing_deg=fire.bearing_deg)
            return self._seen(alarm, fire, now)
        alarm_id = self._new_id(now)
        first_seen = min(fire.t, now)
        event = AlarmEvent(
            alarm_id=alarm_id,
            seq=1,
            state="confirmed",
            first_seen=first_seen,
            confirmed_at=now,
            t=now,
            observation=fire,
            growth_m2_per_min=0.0,
            spread_bearing_deg=None,
            confidence=fire.confidence,
        )
        self._open[alarm_id] = _Alarm(
            alarm_id=alarm_id,
            seq=1,
            first_seen=first_seen,
            confirmed_at=now,
            latest=fire,
            track=[fire],
            last_seen=fire.t,
            last_looked_at=now,
            absent_since=None,
            update_pending=False,
            last_event=event,
        )
        self._save()
        log.warning(
            "alarm_confirmed",
            alarm_id=alarm_id,
            bearing_deg=round(fire.bearing_deg, 3),
            lat=fire.lat,
            lon=fire.lon,
            range_m=fire.range_m,
            range_source=fire.range_source,
            bearing_only=fire.bearing_only,
            a_eq_m2=fire.a_eq_m2,
        )
        return event

    def observe_seen(self, alarm_id: str, fire: FireObservation, now: float) -> AlarmEvent | None:
        """A revisit of an open alarm saw the fire again; returns an `updated` or None.

        When the alarm was cleared meanwhile, the sighting is handled as a newly
        confirmed fire (the tower has seen it burning again).
        """
        alarm = self._open.get(alarm_id)
        if alarm is None:
            log.warning("alarm_seen_not_open", alarm_id=alarm_id)
            return self.observe_confirmed(fire, now)
        return self._seen(alarm, fire, now)

    def observe_absent(self, alarm_id: str, now: float) -> None:
        """A revisit of an open alarm did not see the fire; it clears once gone clear_after_s."""
        alarm = self._open.get(alarm_id)
        if alarm is None:
            log.warning("alarm_absent_not_open", alarm_id=alarm_id)
            return
        alarm.last_looked_at = now
        if alarm.absent_since is None:
            alarm.absent_since = now
        self._save()
        log.info(
            "alarm_not_seen",
            alarm_id=alarm_id,
            unseen_for_s=round(now - alarm.last_seen, 1),
        )

    # --- time-driven events ------------------------------------------------------

    def due_updates(self, now: float) -> list[AlarmEvent]:
        """`updated` events the rate limit held back and may go out now."""
        events: list[AlarmEvent] = []
        changed = False
        for alarm in self._open.values():
            if not alarm.update_pending or now < alarm.last_event.t + self.update_min_interval_s:
                continue
            changed = True
            growth, spread = self._estimates(alarm)
            reasons = self._changes(alarm, growth, spread)
            if reasons:
                event = self._emit(alarm, "updated", now, growth, spread)
                events.append(event)
                log.info("alarm_updated", alarm_id=alarm.alarm_id, seq=event.seq, changed=reasons)
            else:
                # The fire went back to what the last message said: nothing to send.
                alarm.update_pending = False
        if changed:
            self._save()
        return events

    def due_clears(self, now: float) -> list[AlarmEvent]:
        """`cleared` events for alarms not seen for clear_after_s.

        Clearing needs a look that did not see the fire (observe_absent) after the
        last sighting: a tower that has not looked, e.g. with its camera down,
        does not call a fire out.
        """
        events: list[AlarmEvent] = []
        for alarm in list(self._open.values()):
            if alarm.absent_since is None or now - alarm.last_seen < self.clear_after_s:
                continue
            growth, spread = self._estimates(alarm)
            event = self._emit(alarm, "cleared", now, growth, spread)
            del self._open[alarm.alarm_id]
            self._closed = [*self._closed, event][-_CLOSED_HISTORY:]
            events.append(event)
            log.warning(
                "alarm_cleared",
                alarm_id=alarm.alarm_id,
                seq=event.seq,
                unseen_for_s=round(now - alarm.last_seen, 1),
            )
        if events:
            self._save()
        return events

    def test_alarm(
        self, now: float, fire: FireObservation | None = None, *, bearing_sigma_deg: float = 0.1
    ) -> AlarmEvent:
        """A `test` alarm with its own id; it opens nothing and is not kept.

        Without a fire it is a bearing-only alarm due north at the horizon, so the
        hub can tell it apart from any real position; it states the tower's own
        bearing_sigma_deg like a real one.
        """
        if fire is None:
            fire = FireObservation(
                t=now,
                bearing_deg=0.0,
                bearing_sigma_deg=bearing_sigma_deg,
                elevation_deg=0.0,
                lat=None,
                lon=None,
                range_m=None,
                range_min_m=None,
                range_max_m=None,
                range_source="none",
                bearing_only=True,
                uncertainty=None,
                a_eq_m2=0.0,
                peak_k=0.0,
                evidence={},
                confidence=0.0,
            )
        alarm_id = self._new_id(now, kind="test")
        log.info("alarm_test", alarm_id=alarm_id)
        return AlarmEvent(
            alarm_id=alarm_id,
            seq=1,
            state="test",
            first_seen=min(fire.t, now),
            confirmed_at=now,
            t=now,
            observation=fire,
            growth_m2_per_min=0.0,
            spread_bearing_deg=None,
            confidence=fire.confidence,
        )

    # --- rules -------------------------------------------------------------------

    def _nearest_open(self, fire: FireObservation) -> _Alarm | None:
        """The open alarm this fire belongs to, by the nearest normalised distance."""
        best: tuple[float, _Alarm] | None = None
        for alarm in self._open.values():
            known = alarm.latest
            if fire.located and known.located:
                assert fire.lat is not None and fire.lon is not None
                assert known.lat is not None and known.lon is not None
                distance_m, _ = distance_bearing(known.lat, known.lon, fire.lat, fire.lon)
                score = distance_m / self.merge_radius_m
            else:
                score = line_of_sight_gap(
                    known.bearing_deg, known.elevation_deg, fire.bearing_deg,
                    fire.elevation_deg, self.merge_bearing_deg, self.merge_elevation_deg,
                )  # fmt: skip
            if score <= 1.0 and (best is None or score < best[0]):
                best = (score, alarm)
        return None if best is None else best[1]

    def _seen(self, alarm: _Alarm, fire: FireObservation, now: float) -> AlarmEvent | None:
        alarm.latest = fire
        alarm.track = [*alarm.track, fire][-self.track_length :]
        alarm.last_seen = max(alarm.last_seen, fire.t)
        alarm.last_looked_at = now
        alarm.absent_since = None
        growth, spread = self._estimates(alarm)
        reasons = self._changes(alarm, growth, spread)
        event = None
        if reasons:
            if now >= alarm.last_event.t + self.update_min_interval_s:
                event = self._emit(alarm, "updated", now, growth, spread)
                log.info("alarm_updated", alarm_id=alarm.alarm_id, seq=event.seq, changed=reasons)
            else:
                alarm.update_pending = True
                log.debug("alarm_update_held", alarm_id=alarm.alarm_id, changed=reasons)
        self._save()
        return event

    def _estimates(self, alarm: _Alarm) -> tuple[float, float | None]:
        return (
            growth_m2_per_min(alarm.track),
            spread_bearing_deg(alarm.track, self.spread_min_displacement_m, self.spread_min_span_s),
        )

    def _changes(self, alarm: _Alarm, growth: float, spread: float | None) -> list[str]:
        """What changed meaningfully since the alarm's last message (empty: nothing)."""
        sent = alarm.last_event
        before, now_obs = sent.observation, alarm.latest
        reasons: list[str] = []
        if before.located != now_obs.located or before.range_source != now_obs.range_source:
            reasons.append("position")
        elif before.located and now_obs.located:
            assert before.lat is not None and before.lon is not None
            assert now_obs.lat is not None and now_obs.lon is not None
            moved_m, _ = distance_bearing(before.lat, before.lon, now_obs.lat, now_obs.lon)
            if moved_m >= self.update_position_m:
                reasons.append("position")
        elif angle_diff_deg(before.bearing_deg, now_obs.bearing_deg) >= self.update_bearing_deg:
            reasons.append("position")
        small, large = sorted((before.a_eq_m2, now_obs.a_eq_m2))
        if large > 0.0 and (small == 0.0 or large / small >= self.update_size_ratio):
            reasons.append("size")
        if abs(growth - sent.growth_m2_per_min) >= self.update_growth_m2_per_min:
            reasons.append("growth")
        old_spread = sent.spread_bearing_deg
        if (old_spread is None) != (spread is None) or (
            old_spread is not None
            and spread is not None
            and angle_diff_deg(old_spread, spread) >= self.update_spread_deg
        ):
            reasons.append("spread")
        return reasons

    def _emit(
        self,
        alarm: _Alarm,
        state: AlarmState,
        now: float,
        growth: float,
        spread: float | None,
    ) -> AlarmEvent:
        alarm.seq += 1
        event = AlarmEvent(
            alarm_id=alarm.alarm_id,
            seq=alarm.seq,
            state=state,
            first_seen=alarm.first_seen,
            confirmed_at=alarm.confirmed_at,
            t=now,
            observation=alarm.latest,
            growth_m2_per_min=growth,
            spread_bearing_deg=spread,
            confidence=alarm.latest.confidence,
        )
        alarm.last_event = event
        alarm.update_pending = False
        return event

    def _view(self, alarm: _Alarm) -> OpenAlarm:
        state = alarm.last_event.state
        assert state in ("confirmed", "updated")
        return OpenAlarm(
            alarm_id=alarm.alarm_id,
            seq=alarm.seq,
            state=state,
            first_seen=alarm.first_seen,
            confirmed_at=alarm.confirmed_at,
            last_seen=alarm.last_seen,
            last_looked_at=alarm.last_looked_at,
            next_revisit_at=alarm.last_looked_at + self.revisit_interval_s,
            observation=alarm.latest,
            growth_m2_per_min=alarm.last_event.growth_m2_per_min,
            spread_bearing_deg=alarm.last_event.spread_bearing_deg,
            update_pending=alarm.update_pending,
        )

    def _new_id(self, now: float, kind: str | None = None) -> str:
        """`<tower>-<UTC yyyymmddThhmmssZ>-<4 hex>`: the time orders ids, the hex keeps them apart."""
        taken = set(self._open) | {e.alarm_id for e in self._closed}
        middle = f"{kind}-{_stamp(now)}" if kind else _stamp(now)
        while True:
            alarm_id = f"{self.tower_id}-{middle}-{secrets.token_hex(2)}"
            if alarm_id not in taken:
                return alarm_id

    # --- persistence -------------------------------------------------------------

    def _save(self) -> None:
        """Write the whole book atomically: temp file, fsync, rename, fsync the folder."""
        book = _BookFile(
            STATE_FORMAT,
            self.tower_id,
            list(self._open.values()),
            self._closed,
            self._relay_closed_at,
        )
        text = _BOOK_FILE.dump_json(book)
        folder = self.state_path.parent
        folder.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.state_path)
        # The rename itself lives in the directory: sync it too, or power loss may undo it.
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _load(self) -> None:
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            log.info("alarm_state_new", path=str(self.state_path), action="starting empty")
            return
        try:
            open_alarms, closed, relay_closed_at = self._parse(data)
        except ValueError as err:  # pydantic's ValidationError and bad UTF-8 are ValueErrors
            corrupt = self.state_path.with_name(self.state_path.name + ".corrupt")
            os.replace(self.state_path, corrupt)
            first_line = str(err).splitlines()[0]
            self.load_problem = (
                f"alarm book {self.state_path} was unreadable ({first_line}); "
                f"kept as {corrupt.name}, open alarms from before were lost"
            )
            log.error(
                "alarm_state_corrupt",
                path=str(self.state_path),
                kept_as=str(corrupt),
                error=str(err),
                action="starting empty",
            )
            return
        self._open = {a.alarm_id: a for a in open_alarms}
        self._closed = closed[-_CLOSED_HISTORY:]
        self._relay_closed_at = relay_closed_at
        log.info(
            "alarm_state_loaded",
            path=str(self.state_path),
            open_alarms=len(self._open),
            alarm_ids=sorted(self._open),
        )

    def _parse(self, data: bytes) -> tuple[list[_Alarm], list[AlarmEvent], float | None]:
        book = _BOOK_FILE.validate_json(data)
        if book.tower_id != self.tower_id:
            log.warning(
                "alarm_state_other_tower",
                path=str(self.state_path),
                file_tower_id=book.tower_id,
                tower_id=self.tower_id,
            )
        if len({a.alarm_id for a in book.open}) != len(book.open):
            raise ValueError("an alarm id appears twice")
        return book.open, book.closed, book.relay_closed_at
