"""What the hub does with one received MQTT message: check it, then store it.

Every payload is untrusted: size first, then the contract model, then the tower id in
the topic against the one in the payload. A message that fails is counted against the
topic's tower (in the store, so every hub instance and the page see it) and dropped;
nothing a tower sends can raise out of `handle`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from edge.geodesy import distance_bearing
from edge.messages import AlarmMessage, StatusMessage, parse_iso_z
from edge.topics import check_level
from hub.store import Store

JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class TopicFilters:
    """The hub's subscriptions below one prefix (shared when a group is configured)."""

    prefix: str
    shared_group: str | None = None

    def _share(self, topic_filter: str) -> str:
        if self.shared_group is None:
            return topic_filter
        return f"$share/{self.shared_group}/{topic_filter}"

    @property
    def all(self) -> list[str]:
        return [
            self._share(f"{self.prefix}/+/status"),
            self._share(f"{self.prefix}/+/alarm"),
            self._share(f"{self.prefix}/+/alarm/+/snapshot"),
            # Retained latest message per open alarm: a hub with a clean session or an
            # empty store still learns every open fire (docs/mqtt.md).
            self._share(f"{self.prefix}/+/alarm/+/state"),
        ]

    def fire_topic(self, fire_id: str) -> str:
        return f"{self.prefix}/hub/fire/{fire_id}"


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


class Ingest:
    """Routes one message by topic; ``flush()`` tells ``on_alarm`` when fusion has something new.

    The caller flushes after the store has committed what ``handle`` wrote (a batch of
    messages shares one transaction), so fusion never runs ahead of the commit.
    """

    def __init__(
        self,
        store: Store,
        prefix: str,
        max_json_bytes: int,
        max_snapshot_bytes: int,
        on_alarm: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        max_clock_ahead_s: float = 300.0,
        max_tower_shift_m: float = 2000.0,
        max_fire_range_m: float = 100_000.0,
        max_bearing_mismatch_deg: float = 10.0,
    ) -> None:
        self.max_fire_range_m = max_fire_range_m
        self.max_bearing_mismatch_deg = max_bearing_mismatch_deg
        self.max_clock_ahead_s = max_clock_ahead_s
        self.max_tower_shift_m = max_tower_shift_m
        self.store = store
        self.prefix = prefix.rstrip("/")
        self.max_json_bytes = max_json_bytes
        self.max_snapshot_bytes = max_snapshot_bytes
        self.on_alarm = on_alarm
        self.clock = clock
        self.outcomes: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._new_alarms = False

    def _count(self, outcome: str) -> str:
        with self._lock:
            self.outcomes[outcome] += 1
        return outcome

    def _refuse(self, tower_id: str, reason: str) -> str:
        self.store.record_malformed(tower_id, reason)
        return self._count("malformed")

    def flush(self) -> None:
        """Call after the store committed: wakes fusion when new alarms were stored."""
        if self._new_alarms:
            self._new_alarms = False
            self.on_alarm()

    def handle(self, topic: str, payload: bytes) -> str:
        """Store one message; returns what it was (alarm, duplicate, status, snapshot, malformed, ignored)."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return self._count("ignored")
        levels = topic[len(head) :].split("/")
        try:
            tower_id = check_level(levels[0], "tower id in topic")
        except ValueError:
            return self._count("ignored")
        if levels[1:] == ["status"]:
            return self._status(tower_id, payload)
        if levels[1:] == ["alarm"]:
            return self._alarm(tower_id, payload)
        if len(levels) == 4 and levels[1] == "alarm" and levels[3] == "snapshot":
            return self._snapshot(tower_id, levels[2], payload)
        if len(levels) == 4 and levels[1] == "alarm" and levels[3] == "state":
            if not payload:
                return self._count("ignored")  # a tower deleting a retained state
            return self._alarm(tower_id, payload, topic_alarm_id=levels[2])
        return self._count("ignored")

    def _status(self, tower_id: str, payload: bytes) -> str:
        if len(payload) > self.max_json_bytes:
            return self._refuse(tower_id, f"status: {len(payload)} bytes > {self.max_json_bytes}")
        try:
            status = StatusMessage.model_validate_json(payload)
        except ValidationError as err:
            return self._refuse(tower_id, f"status: {_describe(err)}")
        if status.tower_id != tower_id:
            return self._refuse(
                tower_id, f"status: tower_id {status.tower_id!r} ≠ topic {tower_id!r}"
            )
        self.store.record_status(tower_id, status.to_dict(), status.state, self.clock())
        return self._count("status")

    def _alarm(self, tower_id: str, payload: bytes, topic_alarm_id: str | None = None) -> str:
        if len(payload) > self.max_json_bytes:
            return self._refuse(tower_id, f"alarm: {len(payload)} bytes > {self.max_json_bytes}")
        try:
            alarm = AlarmMessage.from_json(payload)
        except ValidationError as err:
            return self._refuse(tower_id, f"alarm: {_describe(err)}")
        if alarm.tower.id != tower_id:
            return self._refuse(
                tower_id, f"alarm: tower.id {alarm.tower.id!r} ≠ topic {tower_id!r}"
            )
        if topic_alarm_id is not None and alarm.alarm_id != topic_alarm_id:
            return self._refuse(
                tower_id, f"alarm state: alarm_id {alarm.alarm_id!r} ≠ topic {topic_alarm_id!r}"
            )
        absurd = self._absurd(tower_id, alarm)
        if absurd is not None:
            return self._refuse(tower_id, f"alarm {alarm.alarm_id}: {absurd}")
        if not self.store.record_alarm(alarm, alarm.to_json(), self.clock()):
            return self._count("duplicate")
        self._new_alarms = True
        return self._count("alarm")

    def _absurd(self, tower_id: str, alarm: AlarmMessage) -> str | None:
        """A valid payload that still cannot be true: flagged and kept out of fusion."""
        now_s = self.clock()
        for name, stamp in (("sent_at", alarm.sent_at), ("first_seen", alarm.first_seen)):
            ahead_s = parse_iso_z(stamp) - now_s
            if ahead_s > self.max_clock_ahead_s:
                return f"{name} is {ahead_s:.0f} s ahead of the hub's clock"
        known = self.store.tower_position(tower_id)
        if known is not None:
            shift_m = _distance_m(known[0], known[1], alarm.tower.lat, alarm.tower.lon)
            if shift_m > self.max_tower_shift_m:
                return f"tower position is {shift_m / 1000:.1f} km from the one its status reports"
        ranges = [r for r in (alarm.range_m, alarm.range_max_m) if r is not None]
        if ranges and max(ranges) > self.max_fire_range_m:
            return f"range {max(ranges) / 1000:.0f} km is beyond any tower's sight"
        if alarm.position is not None:
            fire_m, fire_bearing_deg = distance_bearing(
                alarm.tower.lat, alarm.tower.lon, alarm.position.lat, alarm.position.lon
            )
            if fire_m > self.max_fire_range_m:
                return f"fire position is {fire_m / 1000:.0f} km from the tower"
            off_deg = abs((fire_bearing_deg - alarm.bearing_deg + 180.0) % 360.0 - 180.0)
            # Close in, the camera's offset from the mast dominates the bearing: not checked.
            if fire_m > 500.0 and off_deg > self.max_bearing_mismatch_deg:
                return f"fire position lies {off_deg:.0f}° off the alarm's bearing_deg"
        return None

    def _snapshot(self, tower_id: str, alarm_id: str, payload: bytes) -> str:
        try:
            check_level(alarm_id, "alarm_id in snapshot topic")
        except ValueError as err:
            return self._refuse(tower_id, f"snapshot: {err}")
        if len(payload) > self.max_snapshot_bytes:
            return self._refuse(
                tower_id, f"snapshot: {len(payload)} bytes > {self.max_snapshot_bytes}"
            )
        if not payload.startswith(JPEG_MAGIC):
            return self._refuse(tower_id, "snapshot: not a JPEG")
        known = self.store.latest_alarm(alarm_id)
        if known is not None and known.tower.id != tower_id:
            return self._refuse(tower_id, f"snapshot: alarm {alarm_id} belongs to {known.tower.id}")
        self.store.record_snapshot(alarm_id, tower_id, payload, self.clock())
        return self._count("snapshot")


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance; plenty for telling a moved tower from a forged one."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))
