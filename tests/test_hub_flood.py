"""A flood of malformed and forged messages on one tower's topics, a real fire from another."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.geodesy import destination
from hub.synth import alarm_payload, status_payload
from tests.conftest import MosquittoBroker
from tests.hub_helpers import FIRE, TOWER_A, TOWER_B, HubProcess, publish

FLOOD = 10_000
TOWER_C = destination(*TOWER_A, 200.0, 20_000.0)


@pytest.fixture
def hub(mqtt_broker: MosquittoBroker, tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(mqtt_broker.port, tmp_path / "hub").start()
    yield process
    process.stop()


def _alarm(tid: str, tower: tuple[float, float], alarm_id: str, fire: tuple[float, float]) -> str:
    return json.dumps(
        alarm_payload(
            alarm_id=alarm_id,
            seq=1,
            tower_id=tid,
            tower_lat=tower[0],
            tower_lon=tower[1],
            fire_lat=fire[0],
            fire_lon=fire[1],
        )
    )


def _bad_messages() -> list[tuple[str, bytes]]:
    """Every kind the hub must refuse, all on T1's topics."""
    forged = _alarm("T2", TOWER_B, "T2-forged", FIRE).encode()  # T2's alarm on T1's topic
    absurd = json.loads(_alarm("T1", TOWER_A, "T1-absurd", FIRE))
    absurd["position"]["lat"] += 4.5  # 500 km away
    far = json.dumps(absurd).encode()
    return [
        ("towerwatch/T1/alarm", b"not json"),
        ("towerwatch/T1/alarm", b"\xff\xfe\x00"),
        ("towerwatch/T1/alarm", forged),
        ("towerwatch/T1/alarm", far),
        ("towerwatch/T1/alarm", b'{"schema": "towerwatch.alarm/1", "bearing_deg": 720}'),
        ("towerwatch/T1/status", b"[]"),
        ("towerwatch/T1/alarm/T1-x/snapshot", b"GIF89a"),
        ("towerwatch/T1/alarm/T1-other/state", forged),
    ]


def _latency_s(hub: HubProcess, port: int, tower_id: str, message: str) -> float:
    """Seconds from publishing a tower's alarm to its fire on /api/fires."""
    start = time.monotonic()
    publish(port, [(f"towerwatch/{tower_id}/alarm", message, False)])
    hub.wait_for(
        lambda: any(
            tower_id in f["properties"]["towers"] for f in hub.get_json("/api/fires")["features"]
        ),
        f"{tower_id}'s fire",
        timeout_s=60.0,
    )
    return time.monotonic() - start


def test_flood_on_one_tower_leaves_another_towers_fire_on_time(
    mqtt_broker: MosquittoBroker, hub: HubProcess
) -> None:
    publish(
        mqtt_broker.port,
        [
            (f"towerwatch/{t}/status", json.dumps(status_payload(t, *pos)), True)
            for t, pos in (("T1", TOWER_A), ("T2", TOWER_B), ("T3", TOWER_C))
        ],
    )
    quiet_s = _latency_s(
        hub,
        mqtt_broker.port,
        "T3",
        _alarm("T3", TOWER_C, "T3-a", destination(*TOWER_C, 10.0, 8000)),
    )

    bad = _bad_messages()
    flooder = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    flooder.max_queued_messages_set(0)
    flooder.connect("127.0.0.1", mqtt_broker.port)
    flooder.loop_start()
    half_sent = threading.Event()
    sent: list[mqtt.MQTTMessageInfo] = []

    def flood() -> None:
        for k in range(FLOOD):
            topic, payload = bad[k % len(bad)]
            # QoS 0 as an attacker would send: no broker-side queue limit drops any of them.
            sent.append(flooder.publish(topic, payload, qos=0))
            if k == FLOOD // 2:
                half_sent.set()

    thread = threading.Thread(target=flood, name="flood")
    started = time.monotonic()
    thread.start()
    try:
        assert half_sent.wait(60.0)
        flooded_s = _latency_s(hub, mqtt_broker.port, "T2", _alarm("T2", TOWER_B, "T2-a", FIRE))
        thread.join(120.0)
        for info in sent:
            info.wait_for_publish(60.0)
    finally:
        flooder.disconnect()
        flooder.loop_stop()
    sent_s = time.monotonic() - started

    def t1() -> dict[str, object]:
        return {f["id"]: f["properties"] for f in hub.get_json("/api/towers")["features"]}["T1"]

    counted = hub.wait_for(
        lambda: t1() if t1()["malformed"] >= FLOOD else None,
        f"{FLOOD} refusals counted",
        timeout_s=60.0,
    )
    counted_s = time.monotonic() - started
    print(
        f"\nflood: {FLOOD} bad messages sent in {sent_s:.1f} s, all counted after {counted_s:.1f} s;"
        f" fire latency quiet {quiet_s:.2f} s, during the flood {flooded_s:.2f} s"
    )
    assert counted["malformed"] == FLOOD
    health = hub.get_json("/api/health")
    assert health["handler_errors"] == 0 and health["mqtt_connected"]
    fires = hub.get_json("/api/fires")["features"]
    # Nothing T1 sent made a fire; T2's real one and T3's are there.
    assert sorted(t for f in fires for t in f["properties"]["towers"]) == ["T2", "T3"]
    # Within the usual latency: the same order as on a quiet hub, not queued behind the flood.
    assert flooded_s < max(5.0, 10 * quiet_s), (quiet_s, flooded_s)
