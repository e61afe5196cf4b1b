"""MQTT over TLS with client certificates against a real mosquitto run with the shipped
config/mosquitto/ broker config and ACL: a tower reaches only its own topics."""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import MosquittoBroker, MqttCollector
from paho.mqtt.enums import CallbackAPIVersion
from test_uplink import alarm, wait_until

from edge.config import MqttSettings
from edge.messages import Command
from edge.uplink import Uplink

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "config" / "mosquitto"
HUB_FILTERS = (
    "towerwatch/+/status",
    "towerwatch/+/alarm",
    "towerwatch/+/alarm/+/snapshot",
    "towerwatch/+/cmd/+/reply",
)


def _broker_lines(certs: Path) -> list[str]:
    """The shipped mosquitto.conf for this test: its TLS and ACL settings with the test's
    files; the listener port and persistence come from the test broker."""
    lines = []
    for raw in (SHIPPED / "mosquitto.conf").read_text().splitlines():
        line = raw.strip()
        if (
            not line
            or line.startswith("#")
            or line.split()[0]
            in {
                "listener",
                "persistence",
                "persistence_location",
            }
        ):
            continue
        line = line.replace("/etc/mosquitto/towerwatch/acl", str(SHIPPED / "acl"))
        lines.append(line.replace("/etc/mosquitto/towerwatch/", f"{certs}/"))
    return lines


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    subprocess.run(
        ["sh", str(SHIPPED / "make-certs.sh"), str(out), "127.0.0.1", "hub", "t1", "t2"],
        check=True,
        timeout=60,
    )
    return out


@pytest.fixture
def tls_broker(tmp_path: Path, certs: Path) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(tmp_path / "tls-broker", extra_config=_broker_lines(certs))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _tls(client: mqtt.Client, certs: Path, identity: str | None) -> None:
    client.tls_set(
        ca_certs=str(certs / "ca.crt"),
        certfile=None if identity is None else str(certs / f"{identity}.crt"),
        keyfile=None if identity is None else str(certs / f"{identity}.key"),
        cert_reqs=ssl.CERT_REQUIRED,
    )


class TlsCollector(MqttCollector):
    def __init__(self, broker: MosquittoBroker, certs: Path, identity: str) -> None:
        super().__init__(broker.host, broker.port, HUB_FILTERS, client_id=f"{identity}-collector")
        _tls(self._client, certs, identity)


def _raw_client(broker: MosquittoBroker, certs: Path, identity: str | None) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"raw-{identity}", protocol=mqtt.MQTTv5
    )
    _tls(client, certs, identity)
    return client


def test_a_tower_works_over_tls_with_its_certificate(
    tls_broker: MosquittoBroker, certs: Path, tmp_path: Path
) -> None:
    settings = MqttSettings.model_validate(
        {
            "host": tls_broker.host,
            "port": tls_broker.port,
            "tls": {"ca_file": certs / "ca.crt", "cert_file": certs / "t1.crt", "key_secret": "t1"},
        }
    )
    commands: list[Command] = []
    with TlsCollector(tls_broker, certs, "hub") as hub:
        uplink = Uplink(
            settings,
            tower_id="t1",
            outbox_path=tmp_path / "outbox.sqlite",
            tls_key_path=certs / "t1.key",
            reconnect_max_delay_s=1,
        )
        uplink.start()
        try:
            uplink.subscribe_commands(lambda c: commands.append(c) or {"queued": True})
            assert hub.wait_one("towerwatch/t1/status").json()["state"] == "online"
            uplink.send_alarm(alarm(1, "confirmed"))
            assert hub.wait_one("towerwatch/t1/alarm").json()["seq"] == 1
            wait_until(lambda: uplink.counters().outbox_depth == 0, 5, "alarm acknowledged")
            wait_until(lambda: uplink.commands_subscribed, 5, "command subscription")
            hub._client.publish("towerwatch/t1/cmd/test-alarm", b'{"request_id": "h1"}', qos=1)
            reply = hub.wait_one("towerwatch/t1/cmd/test-alarm/reply").json()
            assert (reply["ok"], reply["request_id"]) == (True, "h1")
            assert len(commands) == 1
        finally:
            uplink.stop()
        assert uplink.counters().publish_refused == 0


def test_the_acl_keeps_a_tower_to_its_own_topics(tls_broker: MosquittoBroker, certs: Path) -> None:
    acks: dict[int, Any] = {}
    grants: list[Any] = []
    received: list[str] = []
    done = threading.Condition()

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with done:
            received.append(message.topic)
            done.notify_all()

    def on_publish(client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with done:
            acks[mid] = reason
            done.notify_all()

    def on_subscribe(
        client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any
    ) -> None:
        with done:
            grants.append(reasons)
            done.notify_all()

    with TlsCollector(tls_broker, certs, "hub") as hub:
        tower = _raw_client(tls_broker, certs, "t1")
        tower.on_publish = on_publish
        tower.on_subscribe = on_subscribe
        tower.on_message = on_message
        tower.connect(tls_broker.host, tls_broker.port)
        tower.loop_start()
        try:
            own = tower.publish("towerwatch/t1/alarm", b'{"mine": 1}', qos=1).mid
            other = tower.publish("towerwatch/t2/alarm", b'{"forged": 1}', qos=1).mid
            outside = tower.publish("elsewhere/x", b"{}", qos=1).mid
            tower.subscribe([("towerwatch/t2/cmd/+", 1), ("towerwatch/t1/cmd/+", 1)])
            with done:
                assert done.wait_for(lambda: len(acks) == 3 and grants, timeout=10)
            assert not acks[own].is_failure
            assert acks[other].is_failure and "authorized" in str(acks[other]).lower()
            assert acks[outside].is_failure
            # mosquitto grants any filter but delivers only what the ACL lets a client read:
            # the hub's command to t2, sent first, must never reach t1.
            hub._client.publish("towerwatch/t2/cmd/goto", b"{}", qos=1).wait_for_publish(5)
            hub._client.publish("towerwatch/t1/cmd/goto", b"{}", qos=1).wait_for_publish(5)
            with done:
                assert done.wait_for(lambda: "towerwatch/t1/cmd/goto" in received, timeout=10)
            assert received == ["towerwatch/t1/cmd/goto"]
            hub.wait_one("towerwatch/t1/alarm")
            assert hub.messages("towerwatch/t2/alarm") == []
        finally:
            tower.disconnect()
            tower.loop_stop()


def test_a_client_without_a_certificate_is_refused(
    tls_broker: MosquittoBroker, certs: Path
) -> None:
    client = _raw_client(tls_broker, certs, None)
    refused = False
    try:
        client.connect(tls_broker.host, tls_broker.port)
        # Depending on the TLS version the refusal comes in the handshake or on the
        # first read after it; either way no CONNACK ever arrives.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not client.is_connected():
            if client.loop(timeout=0.2) != mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS:
                refused = True
                break
    except (ssl.SSLError, OSError):
        refused = True
    assert refused
    assert not client.is_connected()
