"""The running hub: MQTT consumer, fusion worker and HTTP server around one store."""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.config import HubConfig
from hub.fires import Fuser
from hub.ingest import Ingest, TopicFilters
from hub.model import FireMessage
from hub.store import Store

log = structlog.get_logger("hub")


class HubMqtt:
    """One persistent MQTT 5 session: subscribes the tower topics, publishes fused fires."""

    def __init__(self, config: HubConfig, ingest: Ingest) -> None:
        self.settings = config.mqtt
        self.filters = TopicFilters(config.mqtt.topic_prefix, config.mqtt.shared_group)
        self.ingest = ingest
        self.connected = threading.Event()
        self.handler_errors = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=mqtt.MQTTv5,
        )
        if self.settings.username is not None:
            self.client.username_pw_set(self.settings.username, self.settings.password)
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
        # The handler's outer boundary: a store error is logged and counted, the session lives.
        # The broker's QoS 1 acknowledgement goes out only after this returns (stored).
        try:
            self.ingest.handle(message.topic, bytes(message.payload))
        except Exception:
            self.handler_errors += 1
            log.exception("message_failed", topic=message.topic)

    def start(self) -> None:
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

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


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
