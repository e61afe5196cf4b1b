"""The hub store: one suite, run against SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.messages import AlarmMessage
from hub.fires import Fuser, FusionSettings
from hub.store import Store
from hub.synth import alarm_payload, status_payload
from tests.hub_helpers import FIRE, TOWER_A, TOWER_B, make_store, postgres_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgresql":
        schemas = postgres_schema()
        schema = next(schemas)
        s = make_store("postgresql", tmp_path, schema)
        try:
            yield s
        finally:
            s.close()
            next(schemas, None)
    else:
        s = make_store("sqlite", tmp_path, None)
        try:
            yield s
        finally:
            s.close()


def _alarm(
    alarm_id: str, seq: int, tower: tuple[float, float], state: str = "confirmed"
) -> AlarmMessage:
    return AlarmMessage.model_validate(
        alarm_payload(
            alarm_id=alarm_id,
            seq=seq,
            tower_id=alarm_id.split("-")[0],
            tower_lat=tower[0],
            tower_lon=tower[1],
            fire_lat=FIRE[0],
            fire_lon=FIRE[1],
            state=state,
            first_seen_s=1_800_000_000.0,
            sent_at_s=1_800_000_000.0 + seq,
        )
    )


def test_repeated_delivery_is_recognised(store: Store) -> None:
    alarm = _alarm("T1-a", 1, TOWER_A)
    assert store.record_alarm(alarm, alarm.to_json(), 1.0) is True
    assert store.record_alarm(alarm, alarm.to_json(), 2.0) is False
    assert store.alarm_message_count() == 1


def test_late_lower_seq_does_not_replace_the_latest(store: Store) -> None:
    for seq, state in ((1, "confirmed"), (3, "cleared"), (2, "updated")):
        a = _alarm("T1-a", seq, TOWER_A, state)
        store.record_alarm(a, a.to_json(), float(seq))
    latest = store.latest_alarm("T1-a")
    assert latest is not None and (latest.seq, latest.state) == (3, "cleared")
    assert store.open_alarms() == []
    assert store.alarm_message_count() == 3


def test_status_and_refusals_are_kept_per_tower(store: Store) -> None:
    store.record_status("T1", status_payload("T1", *TOWER_A), "online", 5.0)
    store.record_malformed("T1", "alarm: bad")
    store.record_malformed("T1", "alarm: worse")
    store.record_malformed("T9", "status: nonsense")
    rows = {r.tower_id: r for r in store.towers()}
    assert rows["T1"].state == "online" and rows["T1"].malformed == 2
    assert rows["T1"].last_error == "alarm: worse"
    assert rows["T1"].status is not None and rows["T1"].status["tower_id"] == "T1"
    assert rows["T9"].malformed == 1 and rows["T9"].status is None


def test_fusion_pass_saves_versions_and_clears(store: Store) -> None:
    fuser = Fuser(FusionSettings())
    for alarm in (_alarm("T1-a", 1, TOWER_A), _alarm("T2-b", 1, TOWER_B)):
        store.record_alarm(alarm, alarm.to_json(), 1.0)
    (fire,) = store.fuse(fuser, 10.0)
    assert fire.range_source == "triangulated" and fire.version == 1
    assert store.fuse(fuser, 11.0) == []
    assert [f.fire_id for f in store.fires()] == [fire.fire_id]
    for alarm in (_alarm("T1-a", 2, TOWER_A, "cleared"), _alarm("T2-b", 2, TOWER_B, "cleared")):
        store.record_alarm(alarm, alarm.to_json(), 2.0)
    (cleared,) = store.fuse(fuser, 12.0)
    assert (cleared.fire_id, cleared.state, cleared.version) == (fire.fire_id, "cleared", 2)
    assert store.fires() == []
    assert [f.state for f in store.fires(active_only=False)] == ["cleared"]
    stored = store.fire(fire.fire_id)
    assert stored is not None and stored.version == 2


def test_acknowledge_keeps_the_first(store: Store) -> None:
    assert store.acknowledge("Fnothere", "officer", 1.0) is None
    alarm = _alarm("T1-a", 1, TOWER_A)
    store.record_alarm(alarm, alarm.to_json(), 1.0)
    (fire,) = store.fuse(Fuser(FusionSettings()), 1.0)
    first = store.acknowledge(fire.fire_id, "li", 2.0)
    again = store.acknowledge(fire.fire_id, "wang", 3.0)
    assert first is not None and again is not None
    assert (again.by_name, again.at_s) == ("li", 2.0)
    assert set(store.acknowledgements()) == {fire.fire_id}


def test_snapshots_are_binary_safe(store: Store) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
    store.record_snapshot("T1-a", "T1", jpeg, 1.0)
    assert store.snapshot("T1-a") == jpeg
    assert store.snapshot("T1-b") is None
    assert store.snapshot_ids() == {"T1-a"}


def test_stored_fire_round_trips_as_json(store: Store) -> None:
    alarm = _alarm("T1-a", 1, TOWER_A)
    store.record_alarm(alarm, alarm.to_json(), 1.0)
    (fire,) = store.fuse(Fuser(FusionSettings()), 1.0)
    stored = store.fire(fire.fire_id)
    assert stored is not None
    assert json.loads(stored.to_json()) == json.loads(fire.to_json())


def test_two_instances_on_one_postgresql_store_agree(tmp_path: Path) -> None:
    import threading

    schemas = postgres_schema()
    schema = next(schemas)
    first = make_store("postgresql", tmp_path, schema)
    second = make_store("postgresql", tmp_path, schema)
    try:
        results: list[list[str]] = []

        def instance(store: Store, alarm: AlarmMessage) -> None:
            store.record_alarm(alarm, alarm.to_json(), 1.0)
            results.append(
                [f"{f.fire_id}:{f.version}" for f in store.fuse(Fuser(FusionSettings()), 1.0)]
            )

        threads = [
            threading.Thread(target=instance, args=(first, _alarm("T1-a", 1, TOWER_A))),
            threading.Thread(target=instance, args=(second, _alarm("T2-b", 1, TOWER_B))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        # Whatever the interleaving, one triangulated fire ends in the store, and every
        # version was written by exactly one instance.
        (fire,) = first.fires()
        assert fire.range_source == "triangulated"
        published = [entry for r in results for entry in r]
        assert len(published) == len(set(published))
        assert f"{fire.fire_id}:{fire.version}" in published
    finally:
        first.close()
        second.close()
        next(schemas, None)


def test_accounts_sessions_and_audit(store: Store) -> None:
    assert store.add_user("li", "officer", "scrypt$hash", 1.0)
    assert not store.add_user("li", "viewer", "other", 2.0)  # a taken name is never overwritten
    assert store.user("li") == ("officer", "scrypt$hash")
    assert store.user("wang") is None
    store.open_session("d1", "li", "csrf1", expires_s=100.0)
    session = store.session("d1", now_s=50.0)
    assert session is not None and (session.name, session.role, session.csrf) == (
        "li",
        "officer",
        "csrf1",
    )
    assert store.session("d1", now_s=100.0) is None  # expired, and dropped
    assert store.session("d1", now_s=0.0) is None
    store.open_session("d2", "li", "csrf2", expires_s=100.0)
    store.close_session("d2")
    assert store.session("d2", now_s=0.0) is None
    store.audit("li", "acknowledge", "F1", "", 5.0)
    store.audit("li", "command", "T1", "recheck", 6.0)
    assert [(e.action, e.at_s) for e in store.audit_log()] == [
        ("command", 6.0),
        ("acknowledge", 5.0),
    ]
