"""The MQTT uplink against a private mosquitto: status and Last Will, ordered durable alarms, commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import MosquittoBroker, MqttCollector, ReceivedMessage
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import MqttSettings
from edge.messages import AlarmMessage, Command, CommandError, Uncertainty, build_alarm, iso_z
from edge.outbox import Outbox, OutboxError
from edge.uplink import CommandHandler, Uplink, UplinkError

REPO = Path(__file__).resolve().parents[1]
TOWER = "t1"
ROOT = f"towerwatch/{TOWER}"
T0_S = 1_750_000_000.0

UplinkFactory = Callable[..., Uplink]


def alarm(seq: int, state: str = "updated", alarm_id: str = "t1-0001") -> AlarmMessage:
    return build_alarm(
        alarm_id=alarm_id,
        seq=seq,
        state=state,  # type: ignore[arg-type]
        first_seen_s=T0_S,
        confirmed_at_s=T0_S + 30,
        sent_at_s=T0_S + 30 + seq,
        tower_id=TOWER,
        tower_lat=52.1,
        tower_lon=13.2,
        bearing_deg=41.5,
        bearing_sigma_deg=0.06,
        elevation_deg=-0.8,
        range_source="terrain",
        position=(52.17, 13.31),
        uncertainty=Uncertainty(semi_major_m=420.0, semi_minor_m=35.0, orientation_deg=41.5),
        range_m=9800.0,
        range_min_m=9300.0,
        range_max_m=10400.0,
        confidence=0.93,
        a_eq_m2=4.0 + seq,
        growth_m2_per_min=0.5,
    )


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def make_uplink(tmp_path: Path) -> Iterator[UplinkFactory]:
    started: list[Uplink] = []

    def make(
        broker: MosquittoBroker, *, handler: CommandHandler | None = None, **overrides: Any
    ) -> Uplink:
        """A started uplink; a `handler` is given before `start`, as the daemon does."""
        settings: dict[str, Any] = dict(
            host=broker.host, port=broker.port, client_id=f"towerwatch-{TOWER}", keepalive_s=10
        )
        for key in list(overrides):
            if key in MqttSettings.model_fields:
                settings[key] = overrides.pop(key)
        kwargs: dict[str, Any] = dict(
            tower_id=TOWER,
            outbox_path=tmp_path / "outbox.sqlite",
            reconnect_min_delay_s=1,
            reconnect_max_delay_s=1,
        )
        kwargs.update(overrides)
        uplink = Uplink(MqttSettings(**settings), **kwargs)
        if handler is not None:
            uplink.subscribe_commands(handler)
        uplink.start()
        started.append(uplink)
        return uplink

    yield make
    for uplink in started:
        uplink.stop()


def status_state(message: ReceivedMessage) -> str:
    return str(message.json()["state"])


def alarm_seqs(collector: MqttCollector) -> list[int]:
    return [m.json()["seq"] for m in collector.messages(f"{ROOT}/alarm")]


def test_retained_online_status_after_connect_and_offline_after_stop(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    uplink = make_uplink(mqtt_broker)
    mqtt_collector.wait_one(f"{ROOT}/status")
    # A subscriber that arrives later gets the retained status.
    with MqttCollector(mqtt_broker.host, mqtt_broker.port, [f"{ROOT}/status"]) as late:
        status = late.wait_one(f"{ROOT}/status")
        assert status.retain
        assert status.json()["state"] == "online"
        assert status.json()["tower_id"] == TOWER

    uplink.stop()
    with MqttCollector(mqtt_broker.host, mqtt_broker.port, [f"{ROOT}/status"]) as after:
        status = after.wait_one(f"{ROOT}/status")
        assert status.retain
        assert status.json()["state"] == "offline"
        assert status.json()["reasons"] == ["shutdown"]


def test_published_status_is_retained_and_latest_wins(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    uplink = make_uplink(mqtt_broker)
    wait_until(lambda: uplink.connected, 5, "connect")
    uplink.publish_status({"tower_id": TOWER, "state": "degraded", "reasons": ["lidar silent"]})
    mqtt_collector.wait_for(lambda m: m.topic.endswith("/status") and b"degraded" in m.payload)
    with MqttCollector(mqtt_broker.host, mqtt_broker.port, [f"{ROOT}/status"]) as late:
        assert late.wait_one(f"{ROOT}/status").json()["reasons"] == ["lidar silent"]


def test_last_will_marks_the_tower_offline_when_the_link_drops(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    uplink = make_uplink(mqtt_broker)
    mqtt_collector.wait_for(lambda m: m.topic == f"{ROOT}/status" and status_state(m) == "online")
    # Cut the TCP connection under paho without an MQTT DISCONNECT.
    assert uplink._client is not None
    sock = uplink._client.socket()
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)

    will = mqtt_collector.wait_one(
        lambda m: m.topic == f"{ROOT}/status" and status_state(m) == "offline"
    )
    assert will.json()["reasons"] == ["connection lost"]
    # The uplink reconnects on its own and says so.
    mqtt_collector.wait_for(
        lambda m: (
            m.topic == f"{ROOT}/status"
            and status_state(m) == "online"
            and m.received_monotonic_s > will.received_monotonic_s
        ),
        timeout_s=10,
    )
    wait_until(lambda: uplink.counters().reconnects == 1, 5, "reconnect counted")


def test_no_online_status_after_a_refused_connect(
    tmp_path: Path, make_uplink: UplinkFactory
) -> None:
    password_file = tmp_path / "passwords"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(password_file), "hub", "hub-secret"], check=True
    )
    password_file.chmod(0o600)
    broker = MosquittoBroker(
        tmp_path / "auth-broker",
        extra_config=[f"password_file {password_file}", "allow_anonymous false"],
    )
    # The generated config sets allow_anonymous true first; mosquitto takes the last value.
    broker.start()
    try:
        with MqttCollector(
            broker.host, broker.port, username="hub", password="hub-secret"
        ) as collector:
            uplink = make_uplink(broker, username="tower", password="wrong")
            wait_until(lambda: uplink.counters().refused >= 2, 10, "refused connects")
            assert not uplink.connected
            assert collector.messages(f"{ROOT}/status") == []
            last_error = uplink.counters().last_error
            assert last_error is not None
            assert f"mqtt.host={broker.host}:{broker.port}" in last_error
            assert "refused" in last_error
    finally:
        broker.stop()


def test_alarms_arrive_in_order_and_leave_the_outbox(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    uplink = make_uplink(mqtt_broker, inflight_window=4)
    uplink.send_alarm(alarm(1, "confirmed"))
    for seq in range(2, 31):
        uplink.send_alarm(alarm(seq))
    received = mqtt_collector.wait_for(f"{ROOT}/alarm", count=30)
    assert [m.json()["seq"] for m in received] == list(range(1, 31))
    first = AlarmMessage.from_json(received[0].payload)
    assert first == alarm(1, "confirmed")
    assert received[0].properties.ContentType == "application/json"
    wait_until(lambda: uplink.counters().outbox_depth == 0, 5, "outbox drained")
    # each alarm message also goes, retained, to the alarm's state topic
    assert uplink.counters().acked == 60


def test_a_clean_stop_delivers_what_was_committed_just_before_it(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    uplink = make_uplink(mqtt_broker, inflight_window=4)
    mqtt_collector.wait_one(f"{ROOT}/status")
    for seq in range(1, 21):
        uplink.send_alarm(alarm(seq))
    uplink.stop()  # at once: most of the 20 are still in the outbox or in flight
    with Outbox(uplink.outbox_path) as outbox:
        assert outbox.pending() == []
    mqtt_collector.wait_for(f"{ROOT}/alarm", count=20)
    assert alarm_seqs(mqtt_collector)[:20] == list(range(1, 21))


def test_snapshot_goes_to_its_alarm_topic(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    uplink = make_uplink(mqtt_broker)
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"
    uplink.send_snapshot("t1-0001", jpeg)
    received = mqtt_collector.wait_one(f"{ROOT}/alarm/t1-0001/snapshot")
    assert received.payload == jpeg
    assert received.properties.ContentType == "image/jpeg"
    with pytest.raises(ValueError, match="not a JPEG"):
        uplink.send_snapshot("t1-0001", b"\x89PNG")
    with pytest.raises(ValueError, match="alarm_id"):
        uplink.send_snapshot("t1/0001", jpeg)


def test_broker_outage_delays_but_loses_and_reorders_nothing(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    uplink = make_uplink(mqtt_broker)
    for seq in range(1, 4):
        uplink.send_alarm(alarm(seq))
    mqtt_collector.wait_for(f"{ROOT}/alarm", count=3)

    mqtt_broker.stop()
    wait_until(lambda: not uplink.connected, 5, "uplink to notice the outage")
    for seq in range(4, 14):
        uplink.send_alarm(alarm(seq))
    assert uplink.counters().outbox_depth == 20  # each on `alarm` and its state topic
    time.sleep(1.0)  # the broker stays down across at least one reconnect attempt
    mqtt_broker.start()

    wait_until(lambda: set(alarm_seqs(mqtt_collector)) >= set(range(1, 14)), 15, "all alarms")
    seqs = alarm_seqs(mqtt_collector)
    # At-least-once: a repeat is allowed (the hub de-duplicates; the broker itself may
    # redeliver to the subscriber after its restart), a gap or reordering is not.
    first_arrivals = [s for i, s in enumerate(seqs) if s not in seqs[:i]]
    assert first_arrivals == list(range(1, 14))
    wait_until(lambda: uplink.counters().outbox_depth == 0, 5, "outbox drained")
    assert uplink.counters().reconnects >= 1


def test_status_set_during_an_outage_is_published_on_reconnect(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    uplink = make_uplink(mqtt_broker)
    wait_until(lambda: uplink.connected, 5, "connect")
    mqtt_broker.stop()
    wait_until(lambda: not uplink.connected, 5, "uplink to notice the outage")
    uplink.publish_status({"tower_id": TOWER, "state": "online", "heartbeat_n": 1})
    uplink.publish_status({"tower_id": TOWER, "state": "degraded", "heartbeat_n": 2})
    mqtt_broker.start()
    wait_until(lambda: uplink.connected, 10, "reconnect")
    with MqttCollector(mqtt_broker.host, mqtt_broker.port, [f"{ROOT}/status"]) as late:
        retained = late.wait_one(lambda m: m.json().get("heartbeat_n") == 2)
        assert retained.json()["state"] == "degraded"


def test_cap_policy_applies_while_the_broker_is_away(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    mqtt_collector: MqttCollector,
    make_uplink: UplinkFactory,
) -> None:
    mqtt_broker.stop()
    uplink = make_uplink(mqtt_broker, outbox_max_messages=3)
    uplink.send_alarm(alarm(1, "confirmed"))
    for seq in range(2, 9):
        uplink.send_alarm(alarm(seq, "updated"))
    uplink.send_alarm(alarm(9, "cleared"))
    mqtt_broker.start()
    received = mqtt_collector.wait_for(f"{ROOT}/alarm", count=3, timeout_s=10)
    assert [(m.json()["seq"], m.json()["state"]) for m in received] == [
        (1, "confirmed"),
        (8, "updated"),
        (9, "cleared"),
    ]
    states = mqtt_collector.wait_for(f"{ROOT}/alarm/t1-0001/state", count=4, timeout_s=10)
    assert [m.payload and m.json()["seq"] for m in states] == [1, 8, 9, b""]
    # updates 2..7 superseded on each of the two topics
    assert uplink.counters().outbox_dropped == 12


_CRASHING_TOWER = """
import sys, time
from edge.config import MqttSettings
from edge.uplink import Uplink
sys.path.insert(0, sys.argv[3])
from test_uplink import alarm
settings = MqttSettings(host="127.0.0.1", port=int(sys.argv[2]), client_id="towerwatch-t1")
uplink = Uplink(settings, tower_id="t1", outbox_path=sys.argv[1], reconnect_min_delay_s=1,
                reconnect_max_delay_s=1)
uplink.start()
uplink.send_alarm(alarm(1, "confirmed"))
print("sent", file=sys.stderr, flush=True)
time.sleep(60)
"""


def test_alarm_survives_kill_9_right_after_send(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    mqtt_collector: MqttCollector,
    make_uplink: UplinkFactory,
) -> None:
    outbox_path = tmp_path / "outbox.sqlite"
    mqtt_broker.stop()  # the link is down when the fire is confirmed
    tower = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CRASHING_TOWER,
            str(outbox_path),
            str(mqtt_broker.port),
            str(REPO / "tests"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert tower.stderr is not None
    # The logs go to stdout; "sent" on stderr means send_alarm() returned.
    first_line = tower.stderr.readline()
    tower.send_signal(signal.SIGKILL)
    tower.wait()
    rest = tower.stderr.read()
    tower.stderr.close()
    assert first_line == b"sent\n", (first_line + rest).decode()

    mqtt_broker.start()
    make_uplink(mqtt_broker, outbox_path=outbox_path)
    received = mqtt_collector.wait_one(f"{ROOT}/alarm", timeout_s=10)
    assert AlarmMessage.from_json(received.payload) == alarm(1, "confirmed")
    wait_until(lambda: Outbox(outbox_path).depth() == 0, 5, "outbox drained")


class RecordingHandler:
    def __init__(self) -> None:
        self.calls: list[Command] = []
        self.lock = threading.Lock()
        self.uplink: Uplink | None = None

    def __call__(self, command: Command) -> dict[str, Any]:
        with self.lock:
            self.calls.append(command)
        if type(command).__name__ == "RelayResetCommand":
            raise CommandError("relay-reset: no relay configured (relay.type)")
        if getattr(command, "note", None) == "crash":
            raise RuntimeError("secret internal state 0xdeadbeef")
        return {"queued": True}


def send_command(
    broker: MosquittoBroker, verb: str, payload: bytes, *, retain: bool = False
) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(f"{ROOT}/cmd/{verb}", payload, qos=1, retain=retain).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def commanded(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> tuple[RecordingHandler, Callable[[str, bytes], dict[str, Any]]]:
    handler = RecordingHandler()
    uplink = make_uplink(mqtt_broker, command_burst=200)
    handler.uplink = uplink
    uplink.subscribe_commands(handler)
    wait_until(lambda: uplink.commands_subscribed, 5, "command subscription")

    def ask(verb: str, payload: bytes) -> dict[str, Any]:
        send_command(mqtt_broker, verb, payload)
        reply = mqtt_collector.wait_one(f"{ROOT}/cmd/{verb}/reply")
        mqtt_collector.clear()
        return dict(json.loads(reply.payload))

    return handler, ask


def test_valid_command_reaches_the_handler_and_is_answered(commanded: Any) -> None:
    handler, ask = commanded
    payload = b'{"bearing_deg": 212.5, "request_id": "hub-17"}'
    reply = ask("recheck", payload)
    assert reply["ok"] is True
    assert reply["request_id"] == "hub-17"
    assert reply["queued"] is True
    assert reply["stage"] == "accepted"
    assert reply["verb"] == "recheck"
    assert [type(c).__name__ for c in handler.calls] == ["RecheckCommand"]
    assert handler.calls[0].bearing_deg == 212.5


@pytest.mark.parametrize(
    ("verb", "payload", "reason"),
    [
        ("goto", b'{"pan_deg": 400, "tilt_deg": 0, "request_id": "r1"}', "pan_deg"),
        ("goto", b"{not json", "not JSON"),
        ("recheck", b'{"bearing_deg": 10, "lat": 52.0, "lon": 13.0}', "either bearing_deg or lat"),
        ("recheck", b'["bearing_deg", 10]', "JSON object"),
        ("test-alarm", b'{"extra": 1}', "extra"),
        ("self-destruct", b"{}", "unknown command"),
    ],
)
def test_malformed_commands_are_refused_without_reaching_the_handler(
    commanded: Any, verb: str, payload: bytes, reason: str
) -> None:
    handler, ask = commanded
    reply = ask(verb, payload)
    assert reply["ok"] is False
    assert reason in reply["error"]
    assert handler.calls == []
    if b"request_id" in payload:
        assert reply["request_id"] == "r1"


def test_handler_refusal_is_replied(commanded: Any) -> None:
    handler, ask = commanded
    reply = ask("relay-reset", b"")
    assert reply == {
        "schema": "towerwatch.reply/1",
        "verb": "relay-reset",
        "ok": False,
        "replied_at": reply["replied_at"],
        "error": "relay-reset: no relay configured (relay.type)",
        "stage": "refused",
    }
    assert len(handler.calls) == 1


def test_bad_settings_are_refused_naming_the_key(tmp_path: Path) -> None:
    common: dict[str, Any] = dict(tower_id="t1", outbox_path=tmp_path / "o")
    with_cert = MqttSettings.model_validate({"tls": {"ca_file": "ca.pem", "cert_file": "c.pem"}})
    with pytest.raises(UplinkError, match="mqtt.tls.key_secret"):
        Uplink(with_cert, **common)
    with pytest.raises(UplinkError, match="tower.id"):
        Uplink(MqttSettings(), **{**common, "tower_id": "t/#"})
    with pytest.raises(UplinkError, match="not started"):
        Uplink(MqttSettings(), **common).send_alarm(alarm(1))


def test_an_uplink_can_be_stopped_and_started_again(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    uplink = make_uplink(mqtt_broker)
    uplink.send_alarm(alarm(1, "confirmed"))
    mqtt_collector.wait_one(f"{ROOT}/alarm")
    uplink.stop()
    uplink.start()
    uplink.send_alarm(alarm(2))
    wait_until(lambda: 2 in alarm_seqs(mqtt_collector), 5, "alarm after restart")
    wait_until(lambda: uplink.counters().outbox_depth == 0, 5, "outbox drained")


@pytest.mark.parametrize(
    ("verb", "payload", "reason"),
    [
        ("goto", b'{"pan_deg": ' + b"9" * 5001 + b', "tilt_deg": 0}', "over the"),
        ("goto", b'{"pan_deg": ' + b"9" * 4050 + b', "tilt_deg": 0}', "pan_deg"),
        ("goto", b"[" * 2000 + b"]" * 2000, "nested too deeply"),
        ("goto", b'{"pan_deg": 1, "tilt_deg": 0, "x": "\xff\xfe"}', "not UTF-8"),
        ("goto", b'{"pan_deg": 10, "tilt_deg": true}', "tilt_deg"),
        ("goto", b'{"pan_deg": "10", "tilt_deg": 0}', "pan_deg"),
        ("test-alarm", b"{" + b" " * (2 * 1024 * 1024) + b"}", "over the"),
    ],
)
def test_hostile_payloads_are_refused_and_the_link_keeps_working(
    commanded: Any, verb: str, payload: bytes, reason: str
) -> None:
    handler, ask = commanded
    reply = ask(verb, payload)
    assert reply["ok"] is False
    assert reply["stage"] == "refused"
    assert reason in reply["error"]
    assert handler.calls == []
    # paho's network thread survived: the next valid command is served.
    assert ask("test-alarm", b'{"request_id": "after"}')["ok"] is True


def test_handler_crash_is_refused_without_internal_details(commanded: Any) -> None:
    handler, ask = commanded
    reply = ask("test-alarm", b'{"note": "crash"}')
    assert reply["ok"] is False
    assert "internal error" in reply["error"]
    assert "deadbeef" not in json.dumps(reply)
    assert ask("test-alarm", b"{}")["ok"] is True


def test_stale_and_future_commands_are_refused_by_issued_at(commanded: Any) -> None:
    handler, ask = commanded
    now_s = time.time()
    stale = json.dumps({"issued_at": iso_z(now_s - 3600)}).encode()
    assert "stale" in ask("test-alarm", stale)["error"]
    future = json.dumps({"issued_at": iso_z(now_s + 3600)}).encode()
    assert "future" in ask("test-alarm", future)["error"]
    fresh = json.dumps({"issued_at": iso_z(now_s - 2)}).encode()
    assert ask("test-alarm", fresh)["ok"] is True
    assert len(handler.calls) == 1


def test_a_retained_command_is_refused_at_start(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    send_command(mqtt_broker, "test-alarm", b'{"request_id": "old"}', retain=True)
    handler = RecordingHandler()
    uplink = make_uplink(mqtt_broker)
    uplink.subscribe_commands(handler)
    reply = mqtt_collector.wait_one(f"{ROOT}/cmd/test-alarm/reply").json()
    assert reply["ok"] is False
    assert reply["request_id"] == "old"
    assert "retained" in reply["error"]
    assert handler.calls == []


def test_a_command_sent_on_the_first_status_is_carried_out(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    # The hub may command a tower the moment it reads `online`. With the handler given
    # before `start`, the subscription is sent on connect, ahead of the first status, so
    # the broker already routes commands when anyone sees that status.
    handler = RecordingHandler()
    make_uplink(mqtt_broker, handler=handler)
    mqtt_collector.wait_one(f"{ROOT}/status")
    send_command(mqtt_broker, "test-alarm", b'{"request_id": "at-once"}')
    reply = mqtt_collector.wait_one(f"{ROOT}/cmd/test-alarm/reply").json()
    assert reply["ok"] is True, reply
    assert [type(c).__name__ for c in handler.calls] == ["TestAlarmCommand"]


def test_a_burst_of_commands_gets_a_bounded_answer(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    handler = RecordingHandler()
    uplink = make_uplink(mqtt_broker, command_burst=20)
    uplink.subscribe_commands(handler)
    wait_until(lambda: uplink.commands_subscribed, 5, "command subscription")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.loop_start()
    infos = [client.publish(f"{ROOT}/cmd/test-alarm", b"{}", qos=1) for _ in range(100)]
    for info in infos:
        info.wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    replies = [m.json() for m in mqtt_collector.wait_for(f"{ROOT}/cmd/test-alarm/reply", count=100)]
    accepted = [r for r in replies if r["ok"]]
    refused = [r for r in replies if not r["ok"]]
    assert len(handler.calls) == len(accepted)
    # Delivery is fast on loopback: most of the burst lands in its first second.
    assert 20 <= len(accepted) < 100
    assert all("too many commands" in r["error"] for r in refused)


def test_final_command_result_is_sent(commanded: Any, mqtt_collector: MqttCollector) -> None:
    handler, ask = commanded
    assert ask("recheck", b'{"bearing_deg": 10, "request_id": "r9"}')["stage"] == "accepted"
    handler.uplink.send_command_result("recheck", "r9", False, error="recheck: sun in view")
    final = mqtt_collector.wait_one(f"{ROOT}/cmd/recheck/reply").json()
    assert (final["ok"], final["stage"], final["request_id"]) == (False, "refused", "r9")
    assert final["error"] == "recheck: sun in view"
    mqtt_collector.clear()
    handler.uplink.send_command_result("goto", None, True, result={"pan_deg": 12.0})
    done = mqtt_collector.wait_one(f"{ROOT}/cmd/goto/reply").json()
    assert (done["ok"], done["stage"], done["pan_deg"]) == (True, "done", 12.0)


def test_sender_thread_survives_a_storage_error(
    mqtt_broker: MosquittoBroker,
    mqtt_collector: MqttCollector,
    make_uplink: UplinkFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uplink = make_uplink(mqtt_broker)
    assert uplink._outbox is not None
    real_ack = uplink._outbox.ack
    failures = [OutboxError("outbox (test): cannot delete row: disk I/O error")]

    def flaky_ack(row_id: int) -> bool:
        if failures:
            raise failures.pop()
        return real_ack(row_id)

    monkeypatch.setattr(uplink._outbox, "ack", flaky_ack)
    uplink.send_alarm(alarm(1, "confirmed"))
    mqtt_collector.wait_one(f"{ROOT}/alarm")
    wait_until(lambda: uplink.health()["uplink sender"].failures == 1, 5, "failure counted")
    health = uplink.health()["uplink sender"]
    assert health.alive
    assert "disk I/O error" in (health.last_error or "")
    # Later alarms still go out and the unacknowledged row is sent again and deleted.
    uplink.send_alarm(alarm(2))
    wait_until(lambda: 2 in alarm_seqs(mqtt_collector), 10, "alarm after the failure")
    wait_until(lambda: uplink.counters().outbox_depth == 0, 10, "outbox drained")


def test_a_dead_network_thread_is_restarted(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    uplink = make_uplink(mqtt_broker)
    wait_until(lambda: uplink.connected, 5, "connect")
    assert uplink._client is not None
    uplink._client.loop_stop()  # paho's loop ends as if a callback had killed it
    wait_until(lambda: uplink.health()["mqtt network"].restarts == 1, 5, "restart")
    assert uplink.health()["mqtt network"].alive
    uplink.send_alarm(alarm(1, "confirmed"))
    mqtt_collector.wait_one(f"{ROOT}/alarm", timeout_s=10)


def test_a_clean_session_subscriber_arriving_later_sees_each_open_alarm_retained(
    mqtt_broker: MosquittoBroker, mqtt_collector: MqttCollector, make_uplink: UplinkFactory
) -> None:
    uplink = make_uplink(mqtt_broker)
    uplink.send_alarm(alarm(1, "confirmed", alarm_id="t1-0001"))
    uplink.send_alarm(alarm(2, "updated", alarm_id="t1-0001"))
    uplink.send_alarm(alarm(1, "confirmed", alarm_id="t1-0002"))
    wait_until(lambda: uplink.counters().outbox_depth == 0, 10, "outbox drained")
    state_filter = f"{ROOT}/alarm/+/state"
    with MqttCollector(mqtt_broker.host, mqtt_broker.port, [state_filter]) as late:
        retained = late.wait_for(state_filter, count=2)
        assert all(m.retain for m in retained)
        latest = {m.json()["alarm_id"]: m.json()["seq"] for m in retained}
        assert latest == {"t1-0001": 2, "t1-0002": 1}

    # A cleared alarm leaves no retained state: a hub starting now sees only the open one.
    uplink.send_alarm(alarm(3, "cleared", alarm_id="t1-0001"))
    deleted = mqtt_collector.wait_one(
        lambda m: m.topic == f"{ROOT}/alarm/t1-0001/state" and m.payload == b""
    )
    assert deleted.retain is False  # delivered live, not as a retained message
    wait_until(lambda: uplink.counters().outbox_depth == 0, 10, "outbox drained")
    with MqttCollector(mqtt_broker.host, mqtt_broker.port, [state_filter]) as later:
        only = later.wait_one(state_filter)
        assert only.json()["alarm_id"] == "t1-0002"
        with pytest.raises(AssertionError):
            later.wait_for(state_filter, count=2, timeout_s=1.0)
