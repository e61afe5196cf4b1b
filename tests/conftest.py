"""Shared fixtures: a private Mosquitto broker on a free loopback port and an MQTT collector."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

LOOPBACK = "127.0.0.1"
BROKER_START_TIMEOUT_S = 10.0


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def mosquitto_binary() -> str:
    """Path of the mosquitto broker; a clear failure when the package is missing."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        pytest.fail("mosquitto not found: install it (apt-get install mosquitto mosquitto-clients)")
    return found


class MosquittoBroker:
    """A private mosquitto on 127.0.0.1 with persistence in its own folder.

    `stop()` ends it with SIGTERM so it writes its persistence file; `start()` brings it
    back on the same port with the persistent sessions and queued QoS 1 messages it
    saved. `kill()` ends it with SIGKILL (no persistence written).
    """

    host = LOOPBACK

    def __init__(self, workdir: Path, extra_config: Sequence[str] = (), port: int | None = None):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_config = tuple(extra_config)
        self.port = port if port is not None else _free_loopback_port()
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {LOOPBACK}",
            "allow_anonymous true",
            # Run as root, mosquitto would switch to the `mosquitto` user and could not
            # write into the test's folder; as anyone else this line has no effect.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "persistence_file mosquitto.db",
            f"log_dest file {self.log_path}",
            "log_type all",
            *self.extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self._write_config()
        self._process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + BROKER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                log = self.log_path.read_text() if self.log_path.exists() else ""
                raise RuntimeError(
                    f"mosquitto (port {self.port}) exited with {self._process.returncode}: "
                    f"{stderr.strip()} {log[-2000:]}"
                )
            if _port_accepts(self.host, self.port):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(
            f"mosquitto (port {self.port}) not listening after {BROKER_START_TIMEOUT_S} s"
        )

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def kill(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A private broker for this test (safe to stop and restart)."""
    broker = MosquittoBroker(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass(frozen=True)
class ReceivedMessage:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    received_monotonic_s: float
    properties: Any

    def json(self) -> Any:
        return json.loads(self.payload)


class MqttCollector:
    """A subscriber that records every message per topic and waits for the one a test expects.

    It keeps a persistent session (QoS 1 subscription, session expiry) so messages
    published while a test restarts the broker are queued for it and not missed.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topic_filters: Sequence[str] = ("#",),
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ):
        self.host = host
        self.port = port
        self.topic_filters = tuple(topic_filters)
        self._messages: list[ReceivedMessage] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"collector-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv5,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(min_delay=1, max_delay=1)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if not reason.is_failure:
            client.subscribe([(f, 1) for f in self.topic_filters])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any
    ) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        received = ReceivedMessage(
            topic=message.topic,
            payload=bytes(message.payload),
            retain=bool(message.retain),
            qos=message.qos,
            received_monotonic_s=time.monotonic(),
            properties=message.properties,
        )
        with self._cond:
            self._messages.append(received)
            self._cond.notify_all()

    def connect(self, timeout_s: float = 5.0) -> MqttCollector:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        self._client.connect(
            self.host, self.port, keepalive=10, clean_start=False, properties=props
        )
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.close()
            raise TimeoutError(
                f"collector: no SUBACK from {self.host}:{self.port} in {timeout_s} s"
            )
        return self

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> MqttCollector:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def messages(self, topic: str | None = None) -> list[ReceivedMessage]:
        """Messages received so far, optionally those matching a topic filter."""
        with self._cond:
            found = list(self._messages)
        if topic is None:
            return found
        return [m for m in found if mqtt.topic_matches_sub(topic, m.topic)]

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def wait_for(
        self,
        topic_or_predicate: str | Callable[[ReceivedMessage], bool],
        timeout_s: float = 5.0,
        count: int = 1,
    ) -> list[ReceivedMessage]:
        """Wait until `count` messages match (a topic filter or a predicate); return them.

        Raises AssertionError naming what was awaited and what arrived instead.
        """
        matches: Callable[[ReceivedMessage], bool]
        if isinstance(topic_or_predicate, str):
            topic_filter = topic_or_predicate

            def matches_topic(m: ReceivedMessage) -> bool:
                return mqtt.topic_matches_sub(topic_filter, m.topic)

            matches = matches_topic
            what = f"topic {topic_filter!r}"
        else:
            matches = topic_or_predicate
            what = getattr(topic_or_predicate, "__name__", "predicate")
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [m for m in self._messages if matches(m)]
                if len(found) >= count:
                    return found[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.topic, m.payload[:120]) for m in self._messages[-10:]]
                    raise AssertionError(
                        f"waited {timeout_s} s for {count} message(s) on {what}, "
                        f"got {len(found)}; last messages: {seen}"
                    )
                self._cond.wait(remaining)

    def wait_one(
        self, topic_or_predicate: str | Callable[[ReceivedMessage], bool], timeout_s: float = 5.0
    ) -> ReceivedMessage:
        return self.wait_for(topic_or_predicate, timeout_s)[0]


@pytest.fixture
def mqtt_collector(mqtt_broker: MosquittoBroker) -> Iterator[MqttCollector]:
    """A collector subscribed to every topic of the test's private broker."""
    collector = MqttCollector(mqtt_broker.host, mqtt_broker.port).connect()
    try:
        yield collector
    finally:
        collector.close()
