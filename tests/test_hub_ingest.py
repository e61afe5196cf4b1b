"""What the hub does with each received message: stored, recognised again, or refused and counted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.ingest import Ingest
from hub.store import SqliteStore
from hub.synth import alarm_payload, status_payload
from tests.hub_helpers import FIRE, TOWER_A, TOWER_B


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "hub.sqlite3")
    yield s
    s.close()


@pytest.fixture
def ingest(store: SqliteStore) -> Ingest:
    return Ingest(store, "towerwatch", max_json_bytes=65536, max_snapshot_bytes=100_000)


def _alarm(
    tid: str = "T1", seq: int = 1, tower: tuple[float, float] = TOWER_A, **kw: object
) -> bytes:
    return json.dumps(
        alarm_payload(
            alarm_id=f"{tid}-x",
            seq=seq,
            tower_id=tid,
            tower_lat=tower[0],
            tower_lon=tower[1],
            fire_lat=FIRE[0],
            fire_lon=FIRE[1],
            **kw,  # type: ignore[arg-type]
        )
    ).encode()


def _malformed(store: SqliteStore, tower_id: str) -> tuple[int, str | None]:
    rows = {r.tower_id: r for r in store.towers()}
    return (rows[tower_id].malformed, rows[tower_id].last_error) if tower_id in rows else (0, None)


def test_alarm_then_repeat_then_status(ingest: Ingest, store: SqliteStore) -> None:
    assert ingest.handle("towerwatch/T1/alarm", _alarm()) == "alarm"
    assert ingest.handle("towerwatch/T1/alarm", _alarm()) == "duplicate"
    status = json.dumps(status_payload("T1", *TOWER_A)).encode()
    assert ingest.handle("towerwatch/T1/status", status) == "status"
    assert ingest.handle("elsewhere/T1/alarm", _alarm()) == "ignored"
    assert ingest.handle("towerwatch/T1/cmd/recheck", b"{}") == "ignored"
    assert store.alarm_message_count() == 1


def test_flush_wakes_fusion_only_after_new_alarms(store: SqliteStore) -> None:
    woken: list[int] = []
    ingest = Ingest(store, "towerwatch", 65536, 100_000, on_alarm=lambda: woken.append(1))
    ingest.handle("towerwatch/T1/alarm", _alarm())
    assert woken == []  # not before the caller says the store committed
    ingest.flush()
    ingest.handle("towerwatch/T1/alarm", _alarm())
    ingest.flush()
    assert woken == [1]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("towerwatch/T1/alarm", b"{", "alarm: payload: Invalid JSON"),
        ("towerwatch/T1/alarm", b"x" * 70_000, "bytes > 65536"),
        ("towerwatch/T1/alarm", _alarm("T2", tower=TOWER_B), "tower.id 'T2'"),
        (
            "towerwatch/T1/status",
            json.dumps(status_payload("T2", *TOWER_B)).encode(),
            "tower_id 'T2'",
        ),
        ("towerwatch/T1/alarm/T1-x/snapshot", b"PNG....", "not a JPEG"),
        ("towerwatch/T1/alarm/T1-x/snapshot", b"\xff\xd8\xff" + b"0" * 200_000, "bytes > 100000"),
        ("towerwatch/T1/alarm/other/state", _alarm(), "alarm_id 'T1-x'"),
        (
            "towerwatch/T1/alarm",
            _alarm(sent_at_s=time.time() + 365 * 86400.0),
            "ahead of the hub's clock",
        ),
    ],
)
def test_refusals_are_counted_against_the_topic_tower(
    ingest: Ingest, store: SqliteStore, topic: str, payload: bytes, reason: str
) -> None:
    assert ingest.handle(topic, payload) == "malformed"
    count, last = _malformed(store, "T1")
    assert count == 1 and last is not None and reason in last
    assert store.open_alarms() == []


def test_an_alarm_far_from_its_towers_reported_position_is_flagged(
    ingest: Ingest, store: SqliteStore
) -> None:
    ingest.handle("towerwatch/T1/status", json.dumps(status_payload("T1", *TOWER_A)).encode())
    moved = (TOWER_A[0] + 4.5, TOWER_A[1])  # 500 km north
    assert ingest.handle("towerwatch/T1/alarm", _alarm(tower=moved)) == "malformed"
    assert "km from the one its status reports" in (_malformed(store, "T1")[1] or "")
    assert ingest.handle("towerwatch/T1/alarm", _alarm()) == "alarm"


def test_snapshot_of_another_towers_alarm_is_refused(ingest: Ingest, store: SqliteStore) -> None:
    ingest.handle("towerwatch/T2/alarm", _alarm("T2", tower=TOWER_B))
    assert ingest.handle("towerwatch/T1/alarm/T2-x/snapshot", b"\xff\xd8\xff\xe0") == "malformed"
    assert ingest.handle("towerwatch/T2/alarm/T2-x/snapshot", b"\xff\xd8\xff\xe0") == "snapshot"
    assert store.snapshot("T2-x") == b"\xff\xd8\xff\xe0"


def _edited(**changes: object) -> bytes:
    payload = json.loads(_alarm())
    for path, value in changes.items():
        target = payload
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_edited(bearing_deg=720.0), "bearing_deg: Input should be less than 360"),
        (_edited(bearing_deg=float("nan")), "bearing_deg"),
        (_edited(tower__lat=95.0), "tower.lat"),
        (
            _alarm(first_seen_s=time.time() + 365 * 86400.0, sent_at_s=time.time()),
            "first_seen is",
        ),
        (_edited(range_m=500_000.0, range_max_m=600_000.0), "beyond any tower's sight"),
        (_edited(position__lat=FIRE[0] + 4.5), "km from the tower"),
        (_edited(bearing_deg=200.0), "off the alarm's bearing_deg"),
    ],
)
def test_absurd_values_are_flagged_not_fused(
    ingest: Ingest, store: SqliteStore, payload: bytes, reason: str
) -> None:
    # No status yet: the alarm is judged on its own, not against a reported position.
    assert ingest.handle("towerwatch/T1/alarm", payload) == "malformed"
    count, last = _malformed(store, "T1")
    assert count == 1 and last is not None and reason in last, last
    assert store.open_alarms() == []
    assert ingest.handle("towerwatch/T1/alarm", _alarm()) == "alarm"
