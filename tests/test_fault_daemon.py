"""The running daemon under hostile commands, a corrupt outbox and alarm book (reliability).

A simulated tower and `towerwatch run` as separate processes, a real broker: every
hostile command (rechecks at the tower itself, its antipode or out of range included)
gets a clear refusal or a bounded answer, the daemon starts on a corrupt outbox and a
corrupt alarm book (both moved aside, reported as `degraded`), and a valid test alarm
afterwards still produces its alarm and reply.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import MosquittoBroker, MqttCollector
from tests.towers import ROOT, SimTowerRun

TOWER = "sim-tower-01"
ROOT_TOPIC = f"towerwatch/{TOWER}"
MISSION = ROOT / "benchmarks" / "scenarios" / "mission-2m-10km.yaml"

pytestmark = pytest.mark.timeout(300)


def _client(broker: MosquittoBroker) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _replies(hub: MqttCollector, verb: str) -> list[dict[str, object]]:
    return [m.json() for m in hub.messages(f"{ROOT_TOPIC}/cmd/{verb}/reply")]


def test_hostile_commands_and_corrupt_state_files_leave_the_tower_serving(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.sqlite").write_bytes(b"\x00not a database after a power cut" * 64)
    (state / "alarms.json").write_bytes(b'{"format": 1, "open": [\xff')  # one bad byte, cut
    sender = _client(mqtt_broker)
    # Left on the broker by a careless hub: must not run at start.
    sender.publish(f"{ROOT_TOPIC}/cmd/test-alarm", b'{"request_id": "stale-retained"}', qos=1,
                   retain=True).wait_for_publish(5)  # fmt: skip
    run = SimTowerRun(tmp_path, MISSION, mqtt_broker.port, speed=1.0)
    with MqttCollector(mqtt_broker.host, mqtt_broker.port) as hub:
        try:
            run.start_tower()
            run.start_daemon()
            status = hub.wait_one(
                lambda m: m.topic == f"{ROOT_TOPIC}/status" and bool(m.json().get("version")), 120
            ).json()
            assert status["state"] == "degraded"
            assert any("moved to outbox.sqlite.corrupt-" in r for r in status["reasons"])
            assert any("alarm book" in r and "alarms.json.corrupt" in r for r in status["reasons"])
            retained = hub.wait_one(f"{ROOT_TOPIC}/cmd/test-alarm/reply", 30).json()
            assert retained["request_id"] == "stale-retained"
            assert retained["ok"] is False and "retained" in str(retained["error"])
            sender.publish(f"{ROOT_TOPIC}/cmd/test-alarm", b"", qos=1, retain=True)  # clear it

            hostile = [
                ("goto", b'{"pan_deg": ' + b"9" * 5001 + b', "tilt_deg": 0}'),
                ("goto", b"{" + b" " * (2 * 1024 * 1024) + b"}"),
                ("goto", b"[" * 2000 + b"]" * 2000),
                ("goto", b'{"pan_deg": 10, "tilt_deg": true, "request_id": "bool"}'),
                ("goto", b'{"pan_deg": 1, "tilt_deg": 0, "x": "\xff\xfe"}'),
            ]
            for verb, payload in hostile:
                sender.publish(f"{ROOT_TOPIC}/cmd/{verb}", payload, qos=1).wait_for_publish(10)
            hub.wait_for(f"{ROOT_TOPIC}/cmd/goto/reply", 30, count=len(hostile))
            assert all(r["ok"] is False for r in _replies(hub, "goto"))

            # The tower publishes its own position; its antipode has no geodesic; the
            # third lies ~68 km east, beyond geolocation.max_range_m (30 km).
            rechecks = {
                "own-position": (46.9, 20.1, "own position"),
                "antipode": (-46.9, -159.9, "geolocation.max_range_m"),
                "too-far": (46.9, 21.0, "geolocation.max_range_m"),
            }
            for rid, (lat, lon, _) in rechecks.items():
                sender.publish(f"{ROOT_TOPIC}/cmd/recheck",
                               json.dumps({"request_id": rid, "lat": lat, "lon": lon}),
                               qos=1).wait_for_publish(10)  # fmt: skip
            hub.wait_for(f"{ROOT_TOPIC}/cmd/recheck/reply", 30, count=len(rechecks))
            by_id = {r["request_id"]: r for r in _replies(hub, "recheck")}
            for rid, (_, _, reason) in rechecks.items():
                assert by_id[rid]["ok"] is False, by_id[rid]
                assert reason in str(by_id[rid]["error"]), by_id[rid]["error"]
            assert run.daemon is not None and run.daemon.poll() is None
            hub.clear()

            burst = [
                sender.publish(f"{ROOT_TOPIC}/cmd/relay-reset", json.dumps({"request_id": f"b{i}"}),
                               qos=1)
                for i in range(100)
            ]  # fmt: skip
            for info in burst:
                info.wait_for_publish(10)
            hub.wait_for(f"{ROOT_TOPIC}/cmd/relay-reset/reply", 60, count=100)
            answers = _replies(hub, "relay-reset")
            refused = [r for r in answers if not r["ok"]]
            assert refused and all(
                "too many" in str(r["error"]) or "relay" in str(r["error"]) for r in refused
            )

            # As a hub would: retry while the tower says it is too busy (the burst's
            # one-second window), every answer a clear one.
            deadline = time.monotonic() + 30.0
            attempt = 0
            while True:
                attempt += 1
                rid = f"after-{attempt}"
                sender.publish(f"{ROOT_TOPIC}/cmd/test-alarm", json.dumps({"request_id": rid}),
                               qos=1).wait_for_publish(5)  # fmt: skip
                reply = hub.wait_one(
                    lambda m, rid=rid: (
                        m.topic.endswith("/cmd/test-alarm/reply")
                        and m.json().get("request_id") == rid
                    ),
                    30,
                ).json()
                if reply["ok"] or time.monotonic() > deadline:
                    break
                assert "too many" in str(reply["error"]), reply["error"]
                time.sleep(0.5)
            assert reply["ok"] is True, reply["error"]
            alarm = hub.wait_one(
                lambda m: m.topic == f"{ROOT_TOPIC}/alarm" and m.json()["state"] == "test", 30
            ).json()
            assert alarm["schema"] == "towerwatch.alarm/1"
            assert run.daemon is not None and run.daemon.poll() is None
            assert list(state.glob("outbox.sqlite.corrupt-*"))
            assert (state / "alarms.json.corrupt").exists()
        finally:
            sender.loop_stop()
            sender.disconnect()
            run.stop()
