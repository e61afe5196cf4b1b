"""`towerwatch hub` as a process against a real broker: ingest, de-dup, refusals, fused fires."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.synth import alarm_payload, status_payload
from tests.conftest import MosquittoBroker, MqttCollector
from tests.hub_helpers import FIRE, TOWER_A, TOWER_B, HubProcess, publish


@pytest.fixture
def hub(mqtt_broker: MosquittoBroker, tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(mqtt_broker.port, tmp_path / "hub").start()
    yield process
    assert process.stop() == 0, process.log_path.read_text()[-2000:]


def _alarm(tid: str, tower: tuple[float, float], seq: int, state: str = "confirmed") -> str:
    return json.dumps(
        alarm_payload(
            alarm_id=f"{tid}-fire1",
            seq=seq,
            tower_id=tid,
            tower_lat=tower[0],
            tower_lon=tower[1],
            fire_lat=FIRE[0],
            fire_lon=FIRE[1],
            state=state,
        )
    )


def test_two_towers_make_one_triangulated_fire_published_retained(
    mqtt_broker: MosquittoBroker, hub: HubProcess
) -> None:
    publish(
        mqtt_broker.port,
        [
            ("towerwatch/T1/status", json.dumps(status_payload("T1", *TOWER_A)), True),
            ("towerwatch/T2/status", json.dumps(status_payload("T2", *TOWER_B)), True),
            ("towerwatch/T1/alarm", _alarm("T1", TOWER_A, 1), False),
            ("towerwatch/T2/alarm", _alarm("T2", TOWER_B, 1), False),
            # a repeated delivery and a late older message change nothing
            ("towerwatch/T2/alarm", _alarm("T2", TOWER_B, 1), False),
        ],
    )

    def one_triangulated() -> object:
        features = hub.get_json("/api/fires")["features"]
        return (
            features
            if features and features[0]["properties"]["range_source"] == "triangulated"
            else None
        )

    (feature,) = hub.wait_for(one_triangulated, "a triangulated fire")
    lon, lat = feature["geometry"]["coordinates"]
    assert abs(lat - FIRE[0]) < 1e-4 and abs(lon - FIRE[1]) < 1e-4
    health = hub.get_json("/api/health")
    assert health["messages"]["duplicate"] == 1

    with MqttCollector("127.0.0.1", mqtt_broker.port, ["towerwatch/hub/fire/#"]) as late:
        retained = late.wait_one("towerwatch/hub/fire/#", timeout_s=10)
    assert retained.retain
    message = retained.json()
    assert message["schema"] == "towerwatch.fire/1" and message["fire_id"] == feature["id"]

    with MqttCollector("127.0.0.1", mqtt_broker.port, ["towerwatch/hub/fire/#"]) as watcher:
        publish(
            mqtt_broker.port,
            [
                ("towerwatch/T1/alarm", _alarm("T1", TOWER_A, 2, "cleared"), False),
                ("towerwatch/T2/alarm", _alarm("T2", TOWER_B, 2, "cleared"), False),
            ],
        )
        cleared = watcher.wait_for(lambda m: m.json()["state"] == "cleared", timeout_s=15)
    assert cleared[0].json()["fire_id"] == feature["id"]
    hub.wait_for(lambda: hub.get_json("/api/fires")["features"] == [], "the fire to leave")


def test_bad_messages_are_counted_per_tower_and_never_stop_the_hub(
    mqtt_broker: MosquittoBroker, hub: HubProcess
) -> None:
    forged = _alarm("T2", TOWER_B, 1)  # T2's alarm, published on T1's topic
    publish(
        mqtt_broker.port,
        [
            ("towerwatch/T1/alarm", b"not json", False),
            ("towerwatch/T1/alarm", b"\xff\xfe\x00", False),
            ("towerwatch/T1/alarm", b'{"schema": "towerwatch.alarm/1"}', False),
            ("towerwatch/T1/alarm", forged, False),
            ("towerwatch/T1/status", b"[]", False),
            ("towerwatch/T1/alarm/x1/snapshot", b"GIF89a", False),
            ("towerwatch/T1/alarm", b"{" + b" " * 70_000 + b"}", False),
            ("towerwatch/T3/status", json.dumps(status_payload("T3", *TOWER_A)), False),
        ],
    )
    towers = hub.wait_for(
        lambda: (
            {
                f["id"]: f["properties"]
                for f in hub.get_json("/api/towers")["features"]
                if f["properties"]["malformed"] >= 7 or f["id"] == "T3"
            }
            if len(hub.get_json("/api/towers")["features"]) >= 2
            else None
        ),
        "refusals counted",
    )
    assert towers["T1"]["malformed"] == 7
    assert "bytes" in towers["T1"]["last_error"]
    assert towers["T3"]["state"] == "online"
    assert hub.get_json("/api/fires")["features"] == []
    assert hub.get_json("/api/health")["handler_errors"] == 0


def test_alarms_sent_while_the_hub_is_down_arrive_after_restart(
    mqtt_broker: MosquittoBroker, hub: HubProcess
) -> None:
    assert hub.stop() == 0
    publish(
        mqtt_broker.port,
        [
            ("towerwatch/T1/alarm", _alarm("T1", TOWER_A, 1), False),
            ("towerwatch/T2/alarm", _alarm("T2", TOWER_B, 1), False),
        ],
    )
    hub.start()
    features = hub.wait_for(lambda: hub.get_json("/api/fires")["features"], "queued alarms fused")
    assert features[0]["properties"]["towers"] == ["T1", "T2"]


def test_retained_alarm_state_reaches_a_hub_with_a_clean_session(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    publish(
        mqtt_broker.port,
        [
            ("towerwatch/T1/alarm/T1-fire1/state", _alarm("T1", TOWER_A, 3), True),
            ("towerwatch/T2/alarm/T2-fire1/state", _alarm("T2", TOWER_B, 1), True),
            # the topic's alarm id must be the payload's
            ("towerwatch/T2/alarm/other/state", _alarm("T2", TOWER_B, 2), True),
        ],
    )
    fresh = HubProcess(mqtt_broker.port, tmp_path / "fresh", "mqtt.client_id=fresh-hub").start()
    try:
        features = fresh.wait_for(
            lambda: [
                f
                for f in fresh.get_json("/api/fires")["features"]
                if f["properties"]["range_source"] == "triangulated"
            ],
            "the fire from retained alarm states",
        )
        assert features[0]["properties"]["towers"] == ["T1", "T2"]
        (t2,) = fresh.wait_for(
            lambda: [
                f["properties"]
                for f in fresh.get_json("/api/towers")["features"]
                if f["id"] == "T2"
            ],
            "the mismatched state counted against T2",
        )
        assert t2["malformed"] == 1 and "topic" in t2["last_error"]
    finally:
        assert fresh.stop() == 0
