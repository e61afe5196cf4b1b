"""MQTT over TLS with client certificates against a real mosquitto run with the shipped
config/mosquitto/ broker config and ACL: a tower reaches only its own topics."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
import urllib.request
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
from hub.synth import alarm_payload, status_payload
from tests.hub_helpers import FIRE, OFFICER, TOWER_A, HubProcess

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
    def __init__(
        self,
        broker: MosquittoBroker,
        certs: Path,
        identity: str,
        topic_filters: tuple[str, ...] = HUB_FILTERS,
    ) -> None:
        super().__init__(broker.host, broker.port, topic_filters, client_id=f"{identity}-collector")
        _tls(self._client, certs, identity)


def _raw_client(
    broker: MosquittoBroker, certs: Path, identity: str | None, client_id: str = ""
) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id or f"raw-{identity}", protocol=mqtt.MQTTv5
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


class _AckedClient:
    """A raw MQTT client under one certificate that records the broker's answer to each
    publish (PUBACK reason) and every message it receives."""

    def __init__(self, broker: MosquittoBroker, certs: Path, identity: str, client_id: str) -> None:
        self.acks: dict[int, Any] = {}
        self.received: list[mqtt.MQTTMessage] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = _raw_client(broker, certs, identity, client_id)
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._cond:
            self.acks[mid] = reason
            self._cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.received.append(message)
            self._cond.notify_all()

    def subscribe(self, topic_filter: str) -> None:
        self.client.subscribe(topic_filter, qos=1)
        assert self._subscribed.wait(10), f"no SUBACK for {topic_filter}"

    def allowed(self, topic: str, payload: bytes = b"{}") -> bool:
        """Publish at QoS 1; True when the broker accepted it, False when it refused."""
        mid = self.client.publish(topic, payload, qos=1).mid
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self.acks, timeout=10), topic
        return not self.acks[mid].is_failure

    def wait_for(self, topic: str) -> mqtt.MQTTMessage:
        with self._cond:
            assert self._cond.wait_for(
                lambda: any(m.topic == topic for m in self.received), timeout=20
            ), f"nothing on {topic}"
        return next(m for m in self.received if m.topic == topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_the_hub_over_tls_reads_every_tower_and_writes_only_commands_and_fires(
    tls_broker: MosquittoBroker, certs: Path, tmp_path: Path
) -> None:
    hub = HubProcess(
        tls_broker.port,
        tmp_path / "hub",
        f"mqtt.tls.ca_file={certs / 'ca.crt'}",
        f"mqtt.tls.cert_file={certs / 'hub.crt'}",
        f"mqtt.tls.key_file={certs / 'hub.key'}",
    ).start()
    tower = _AckedClient(tls_broker, certs, "t1", "tower-t1")
    impostor = _AckedClient(tls_broker, certs, "hub", "impostor")
    try:
        with TlsCollector(tls_broker, certs, "hub", ("towerwatch/hub/fire/+",)) as fires:
            tower.subscribe("towerwatch/t1/cmd/+")
            status = json.dumps(status_payload("t1", *TOWER_A)).encode()
            assert tower.allowed("towerwatch/t1/status", status)
            fire_alarm = alarm_payload(
                alarm_id="t1-fire1", seq=1, tower_id="t1", tower_lat=TOWER_A[0],
                tower_lon=TOWER_A[1], fire_lat=FIRE[0], fire_lon=FIRE[1], state="confirmed",
            )  # fmt: skip
            assert tower.allowed("towerwatch/t1/alarm", json.dumps(fire_alarm).encode())
            # The hub read the tower's alarm and published its fused fire, retained.
            fire_id = hub.wait_for(
                lambda: [f["id"] for f in hub.get_json("/api/fires")["features"]], "the fire"
            )[0]
            assert fires.wait_one(f"towerwatch/hub/fire/{fire_id}").json()["towers"] == ["t1"]
            # An officer's command goes out under the hub's identity and reaches the tower.
            cookie, csrf = hub.login(*OFFICER)
            request = urllib.request.Request(
                f"{hub.url}/api/towers/t1/commands/test-alarm",
                data=b"{}",
                headers={"Cookie": cookie, "X-CSRF-Token": csrf},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 202
            command = tower.wait_for("towerwatch/t1/cmd/test-alarm")
            assert "request_id" in json.loads(command.payload)
        late = _AckedClient(tls_broker, certs, "hub", "late-reader")
        try:
            late.subscribe("towerwatch/hub/fire/+")  # the fire was kept (retained) for it
            assert late.wait_for(f"towerwatch/hub/fire/{fire_id}").retain
        finally:
            late.close()
        # The hub's certificate cannot speak for a tower, nor write outside its topics.
        assert not impostor.allowed("towerwatch/t1/alarm", json.dumps(fire_alarm).encode())
        assert not impostor.allowed("towerwatch/t1/status", status)
        assert not impostor.allowed("towerwatch/t1/cmd/recheck/reply")
        assert not impostor.allowed("towerwatch/hub/alarm")
        assert not impostor.allowed("towerwatch/hub/status")
        assert not impostor.allowed("elsewhere/x")
        assert impostor.allowed("towerwatch/t2/cmd/recheck")
        assert impostor.allowed("towerwatch/hub/fire/F-drill")
        # ...and a tower cannot publish a fused fire.
        assert not tower.allowed("towerwatch/hub/fire/F-forged")
    finally:
        impostor.close()
        tower.close()
        hub.stop()


def test_the_hub_refuses_a_key_file_others_may_read(certs: Path, tmp_path: Path) -> None:
    key = tmp_path / "hub.key"
    key.write_bytes((certs / "hub.key").read_bytes())
    key.chmod(0o644)
    hub = HubProcess(
        1,
        tmp_path / "hub",
        f"mqtt.tls.ca_file={certs / 'ca.crt'}",
        f"mqtt.tls.cert_file={certs / 'hub.crt'}",
        f"mqtt.tls.key_file={key}",
    )
    result = subprocess.run(hub.args, cwd=REPO, capture_output=True, timeout=60)
    assert result.returncode == 2
    assert f"mqtt.tls.key_file: {key} is readable by others" in result.stderr.decode()
    assert b"Traceback" not in result.stderr
