"""From the open alarms to the fused fires: build each fire and say which ones changed."""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge.messages import AlarmMessage, FireSize, LatLon, Uncertainty, iso_z, parse_iso_z
from hub.association import AssociationSettings, associate
from hub.fusion import Ellipse, Observation, ellipse_ring, triangulate, wedge_ring
from hub.model import FireAlarm, FireMessage, Polygon

_RANGE_PREFERENCE = {"lidar": 0, "terrain": 1, "earth": 2, "triangulated": 3, "none": 4}
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class FusionSettings:
    default_bearing_sigma_deg: float = 0.05
    window_s: float = 900.0
    min_angle_deg: float = 20.0
    max_angle_deg: float = 160.0
    default_max_range_m: float = 40_000.0

    @property
    def association(self) -> AssociationSettings:
        return AssociationSettings(self.window_s, self.default_max_range_m)


def bearing_sigma_deg(alarm: AlarmMessage, default_deg: float) -> float:
    """The tower's stated 1σ bearing uncertainty; older payloads without it get the default."""
    stated = getattr(alarm, "bearing_sigma_deg", None)
    return float(stated) if stated is not None and stated > 0.0 else default_deg


def observation_of(alarm: AlarmMessage, settings: FusionSettings) -> Observation:
    return Observation(
        key=alarm.alarm_id,
        tower_id=alarm.tower.id,
        tower_lat_deg=alarm.tower.lat,
        tower_lon_deg=alarm.tower.lon,
        bearing_deg=alarm.bearing_deg,
        bearing_sigma_deg=bearing_sigma_deg(alarm, settings.default_bearing_sigma_deg),
        time_s=parse_iso_z(alarm.confirmed_at),
        range_source=alarm.range_source,
        range_m=alarm.range_m,
        range_min_m=alarm.range_min_m,
        range_max_m=alarm.range_max_m,
        test=alarm.state == "test",
    )


def fire_id_of(anchor_alarm_id: str) -> str:
    """Stable id from the earliest alarm of the fire: every hub instance derives the same."""
    return "F" + hashlib.sha1(anchor_alarm_id.encode()).hexdigest()[:12]


def _polygon(ring: list[list[float]]) -> Polygon:
    return Polygon(coordinates=(tuple((p[0], p[1]) for p in ring),))


def _uncertainty(ellipse: Ellipse) -> Uncertainty:
    orientation = ellipse.orientation_deg % 180.0
    major = max(ellipse.semi_major_m, ellipse.semi_minor_m)
    return Uncertainty(
        semi_major_m=round(major, 2),
        semi_minor_m=round(min(ellipse.semi_minor_m, major), 2),
        orientation_deg=0.0 if orientation >= 180.0 else round(orientation, 2),
    )


def _single(
    best: AlarmMessage, obs: Observation, settings: FusionSettings
) -> tuple[LatLon | None, Uncertainty | None, str, Polygon, str]:
    """One tower's own statement: its point only when a lidar or terrain range backs it."""
    if best.range_source in ("lidar", "terrain") and best.position and best.uncertainty:
        u = best.uncertainty
        ring = ellipse_ring(
            best.position.lat,
            best.position.lon,
            Ellipse(u.semi_major_m, u.semi_minor_m, u.orientation_deg),
        )
        return best.position, u, best.range_source, _polygon(ring), "single"
    ring = wedge_ring(obs, settings.default_max_range_m)
    source = best.range_source if best.range_source != "triangulated" else "none"
    return None, None, source, _polygon(ring), "bearing_only"


def build_fire(
    alarms: Sequence[AlarmMessage], settings: FusionSettings, version: int = 1
) -> FireMessage:
    """The fire one group of alarms (from different towers) describes."""
    ordered = sorted(alarms, key=lambda a: (parse_iso_z(a.first_seen), a.alarm_id))
    observations = [observation_of(a, settings) for a in ordered]
    note = None
    geometry = None
    position: LatLon | None = None
    uncertainty: Uncertainty | None = None
    range_source = "none"
    area: Polygon | None = None
    if len(ordered) >= 2:
        fix = triangulate(observations)
        if fix is None:
            note = "rays do not cross in front of the towers"
        elif (
            fix.max_angle_deg < settings.min_angle_deg or fix.min_angle_deg > settings.max_angle_deg
        ):
            angle = (
                fix.max_angle_deg
                if fix.max_angle_deg < settings.min_angle_deg
                else fix.min_angle_deg
            )
            note = (
                f"poor geometry: rays meet at {angle:.0f}° (triangulation needs "
                f"{settings.min_angle_deg:.0f}-{settings.max_angle_deg:.0f}°)"
            )
        else:
            position = LatLon(lat=round(fix.lat_deg, 7), lon=round(fix.lon_deg, 7))
            uncertainty = _uncertainty(fix.ellipse)
            range_source = "triangulated"
            area = _polygon(ellipse_ring(fix.lat_deg, fix.lon_deg, fix.ellipse))
            geometry = "triangulated"
    if geometry is None:
        best_index = min(
            range(len(ordered)),
            key=lambda i: (_RANGE_PREFERENCE[ordered[i].range_source], -ordered[i].confidence),
        )
        position, uncertainty, range_source, area, geometry = _single(
            ordered[best_index], observations[best_index], settings
        )
        if len(ordered) >= 2:
            geometry = "poor"
    assert area is not None
    sizes = [a.size for a in ordered if a.size is not None]
    size: FireSize | None = max(sizes, key=lambda s: s.a_eq_m2) if sizes else None
    miss = math.prod(1.0 - a.confidence for a in ordered)
    return FireMessage(
        fire_id=fire_id_of(ordered[0].alarm_id),
        version=version,
        state="active",
        test=all(a.state == "test" for a in ordered),
        first_seen=ordered[0].first_seen,
        confirmed_at=min(ordered, key=lambda a: parse_iso_z(a.confirmed_at)).confirmed_at,
        updated_at=max(ordered, key=lambda a: parse_iso_z(a.sent_at)).sent_at,
        position=position,
        uncertainty=uncertainty,
        range_source=range_source,
        geometry=geometry,
        note=note,
        towers=tuple(sorted({a.tower.id for a in ordered})),
        alarms=tuple(
            FireAlarm(
                alarm_id=a.alarm_id,
                seq=a.seq,
                state=a.state,
                tower_id=a.tower.id,
                tower_lat=a.tower.lat,
                tower_lon=a.tower.lon,
                bearing_deg=a.bearing_deg,
                bearing_sigma_deg=o.bearing_sigma_deg,
                range_source=a.range_source,
                range_m=a.range_m,
                range_min_m=a.range_min_m,
                range_max_m=a.range_max_m,
            )
            for a, o in zip(ordered, observations, strict=True)
        ),
        area=area,
        confidence=round(1.0 - miss, 4),
        size=size,
    )


class Fuser:
    """Turns the open alarms into fires and names what changed since the previous state.

    Fire building is memoised on the exact (alarm_id, seq) members, so a pass over a
    county where one alarm changed rebuilds one fire, not all of them.
    """

    def __init__(self, settings: FusionSettings) -> None:
        self.settings = settings
        self._cache: OrderedDict[tuple[tuple[str, int], ...], FireMessage] = OrderedDict()

    def _fire(self, group: Sequence[AlarmMessage]) -> FireMessage:
        key = tuple(sorted((a.alarm_id, a.seq) for a in group))
        fire = self._cache.get(key)
        if fire is None:
            fire = build_fire(group, self.settings)
            self._cache[key] = fire
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return fire

    def fires(self, open_alarms: Sequence[AlarmMessage]) -> list[FireMessage]:
        by_key = {a.alarm_id: a for a in open_alarms}
        observations = [observation_of(a, self.settings) for a in open_alarms]
        groups = associate(observations, self.settings.association)
        return [self._fire([by_key[o.key] for o in group]) for group in groups]

    @staticmethod
    def _keep_ids(
        current: list[FireMessage], previous: Mapping[str, FireMessage]
    ) -> list[FireMessage]:
        """A fire keeps the id it had while any of its alarms was in it.

        Without this, a fire whose earliest alarm clears would be renamed after the next
        one; the officer's acknowledgement and the CAP references follow the id.
        """
        was_in = {
            a.alarm_id: f.fire_id
            for f in previous.values()
            if f.state == "active"
            for a in f.alarms
        }
        taken: set[str] = set()
        out = []
        for fire in current:
            if fire.fire_id in previous and previous[fire.fire_id].state == "active":
                taken.add(fire.fire_id)
        for fire in current:
            if fire.fire_id in taken:
                out.append(fire)
                continue
            claims = sorted(
                {was_in[a.alarm_id] for a in fire.alarms if a.alarm_id in was_in} - taken,
                key=lambda fid: (parse_iso_z(previous[fid].first_seen), fid),
            )
            if claims:
                taken.add(claims[0])
                fire = fire.model_copy(update={"fire_id": claims[0]})
            out.append(fire)
        return out

    def reconcile(
        self,
        open_alarms: Sequence[AlarmMessage],
        previous: Mapping[str, FireMessage],
        now_s: float,
    ) -> list[FireMessage]:
        """Fires to store and publish: new or changed ones, and active ones now gone (cleared)."""
        changes: list[FireMessage] = []
        current = self._keep_ids(self.fires(open_alarms), previous)
        current_ids = {f.fire_id for f in current}
        member_of = {a.alarm_id: f.fire_id for f in current for a in f.alarms}
        for fire in current:
            before = previous.get(fire.fire_id)
            if before is None or before.state != "active":
                version = 1 if before is None else before.version + 1
                changes.append(fire.model_copy(update={"version": version}))
            elif before.content() != fire.model_copy(update={"version": before.version}).content():
                changes.append(fire.model_copy(update={"version": before.version + 1}))
        for fire_id, before in previous.items():
            if before.state != "active" or fire_id in current_ids:
                continue
            merged = {member_of[a.alarm_id] for a in before.alarms if a.alarm_id in member_of}
            changes.append(
                before.model_copy(
                    update={
                        "version": before.version + 1,
                        "state": "cleared",
                        "cleared_at": iso_z(now_s),
                        "merged_into": min(merged) if merged else None,
                    }
                )
            )
        return changes
