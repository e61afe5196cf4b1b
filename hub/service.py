"""The running hub: MQTT consumer, fusion worker and HTTP server around one store."""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.base import DriverError
from edge.secrets import check_private
from hub.config import HubConfig, HubTlsSettings
from hub.fires import Fuser
from hub.ingest import Ingest, TopicFilters
from hub.model import FireMessage
from hub.store import Store

log = structlog.get_logger("hub")


# Messages handed over from paho's network thread to the writer; when the writer falls
# behind, the network thread waits here and the broker keeps the rest (back-pressure).
_INBOX_SIZE = 5000
# At most this many messages share one store transaction.
_BATCH_MAX = 200


class HubStartError(Exception):
    """The hub cannot start as configured; the message names the key to fix."""


def _set_tls(client: mqtt.Client, tls: HubTlsSettings) -> None:
    try:
        if tls.key_file is not None:
            check_private(tls.key_file, "mqtt.tls.key_file")
        client.tls_set(
            ca_certs=str(tls.ca_file),
            certfile=None if tls.cert_file is None else str(tls.cert_file),
            keyfile=None if tls.key_file is None else str(tls.key_file),
            cert_reqs=ssl.CERT_REQUIRED,
        )
    except DriverError as err:
        raise HubStartError(str(err)) from None
    except (OSError, ssl.SSLError) as err:
        raise HubStartError(
            f"mqtt.tls (ca_file={tls.ca_file}, cert_file={tls.cert_file}, "
            f"key_file={tls.key_file}): cannot load TLS files: {err}"
        ) from None


class HubMqtt:
    """One persistent MQTT 5 session: subscribes the tower topics, publishes fused fires.

    Received messages are acknowledged to the broker only after the store has committed
    them (manual QoS 1 acks), and they are committed in batches: one commit per batch
    instead of per message is what lets one instance keep up with a storm.
    """

    def __init__(self, config: HubConfig, ingest: Ingest) -> None:
        self.settings = config.mqtt
        self.filters = TopicFilters(config.mqtt.topic_prefix, config.mqtt.shared_group)
        self.ingest = ingest
        self.connected = threading.Event()
        self.handler_errors = 0
        self.batches = 0
        self._inbox: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue(_INBOX_SIZE)
        self._writer = threading.Thread(target=self._write_loop, name="ingest", daemon=True)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if self.settings.username is not None:
            self.client.username_pw_set(self.settings.username, self.settings.password)
        if self.settings.tls is not None:
            _set_tls(self.client, self.settings.tls)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.max_queued_messages_set(0)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("mqtt_refused", reason=str(reason))
            return
        client.subscribe([(f, 1) for f in self.filters.all])
        self.connected.set()
        log.info("mqtt_connected", session_present=flags.session_present, filters=self.filters.all)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.connected.clear()
        log.warning("mqtt_disconnected", reason=str(reason))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(message)

    def _handle(self, message: mqtt.MQTTMessage) -> None:
        self.ingest.handle(message.topic, bytes(message.payload))

    def _write_loop(self) -> None:
        while True:
            first = self._inbox.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < _BATCH_MAX:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._inbox.put(None)
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[mqtt.MQTTMessage]) -> None:
        # The writer's outer boundary: a store error is logged and counted, and each message
        # of the failed batch is tried alone so one bad message cannot sink the others.
        try:
            with self.ingest.store.batch():
                for message in batch:
                    self._handle(message)
            self.batches += 1
        except Exception:
            log.exception("batch_failed", messages=len(batch))
            for message in batch:
                try:
                    self._handle(message)
                except Exception:
                    self.handler_errors += 1
                    log.exception("message_failed", topic=message.topic)
        for message in batch:
            if message.qos > 0:
                self.client.ack(message.mid, message.qos)
        self.ingest.flush()

    def start(self) -> None:
        self._writer.start()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        self.client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def publish_fire(self, fire: FireMessage) -> None:
        self.client.publish(
            self.filters.fire_topic(fire.fire_id), fire.to_json(), qos=1, retain=True
        )

    def publish_command(self, tower_id: str, verb: str, payload: dict[str, Any]) -> None:
        """A command for one tower: QoS 1, never retained (a later start must not replay it)."""
        self.client.publish(
            f"{self.filters.prefix}/{tower_id}/cmd/{verb}", json.dumps(payload), qos=1
        )

    def stop(self) -> None:
        # Stop receiving first; what was received is written (and acknowledged) before we go.
        self.client.disconnect()
        self.client.loop_stop()
        self._inbox.put(None)
        self._writer.join(timeout=30)


class FusionWorker(threading.Thread):
    """Runs a fusion pass after new alarms (debounced) and publishes the fires that changed."""

    def __init__(self, store: Store, fuser: Fuser, publish: Any, debounce_s: float) -> None:
        super().__init__(name="fusion", daemon=True)
        self.store = store
        self.fuser = fuser
        self.publish = publish
        self.debounce_s = debounce_s
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.passes = 0
        self.errors = 0
        self.last_pass_s = 0.0

    def poke(self) -> None:
        self.wake.set()

    def run_pass(self) -> list[FireMessage]:
        changed = self.store.fuse(self.fuser, time.time())
        for fire in changed:
            self.publish(fire)
        self.passes += 1
        return changed

    def run(self) -> None:
        self.wake.set()  # one pass at start: fires of alarms stored before a restart
        while not self.stopping.is_set():
            self.wake.wait(timeout=1.0)
            if self.stopping.is_set():
                break
            if not self.wake.is_set():
                continue
            # Wait at least as long as the last pass took: under a storm, passes coalesce
            # many alarms and fusion takes at most about half of a core from ingest.
            pause_s = max(self.debounce_s, self.last_pass_s)
            if pause_s > 0:
                self.stopping.wait(pause_s)
            self.wake.clear()
            try:
                started = time.monotonic()
                changed = self.run_pass()
                self.last_pass_s = time.monotonic() - started
                if changed:
                    log.info(
                        "fires_changed", fires=[(f.fire_id, f.version, f.state) for f in changed]
                    )
            except Exception:
                self.errors += 1
                log.exception("fusion_failed")

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.join(timeout=10)
