"""MQTT uplink to the hub: durable alarm delivery through the outbox, status with Last Will, commands.

Threading contract (the daemon's main loop is single-threaded and owns its state):

- `start`, `stop`, `send_alarm`, `send_snapshot`, `publish_status`,
  `subscribe_commands`, `counters` and `connected` are called from the main loop.
  They never block on the network: sends are committed to the outbox and handed to
  the uplink's own sender thread.
- paho's network thread and the uplink's sender thread never touch daemon state.
  The single exception is the command handler given to `subscribe_commands`: it is
  called on paho's network thread with a payload that already passed the verb's
  schema (`edge.messages.parse_command`). It must be thread-safe and quick — the
  usual handler puts the command on a queue the main loop drains and returns
  `{"queued": True}`. It may raise `CommandError` to refuse; the reason goes back
  on `cmd/<verb>/reply` with `"ok": false`.

Delivery: every alarm and snapshot is written to the outbox (committed) before the
first publish attempt. The sender thread hands pending rows to paho in row order,
at most `inflight_window` at a time, and deletes a row only when the PUBACK for its
message id arrives. After a reconnect paho re-sends the unacknowledged ones first
(the sender waits for them before handing newer rows, so order holds); after a
process restart the whole backlog goes out again from the oldest row. The hub
de-duplicates on `(alarm_id, seq)`.
"""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge import topics as topic_table
from edge.messages import (
    AlarmMessage,
    CommandError,
    StatusMessage,
    command_reply,
    iso_z,
    offline_status,
    parse_command,
)
from edge.outbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_MESSAGES, Kind, Outbox
from edge.topics import TowerTopics

log = structlog.get_logger(__name__)

CommandHandler = Callable[[str, bytes], Mapping[str, Any]]

_JPEG_SOI = b"\xff\xd8"


class UplinkError(Exception):
    """The uplink cannot be set up; the message names the config key to fix."""


@dataclass(frozen=True)
class UplinkCounters:
    """Numbers for the status message."""

    connected: bool
    published: int
    acked: int
    reconnects: int
    refused: int
    publish_refused: int
    commands: int
    commands_refused: int
    outbox_depth: int
    outbox_dropped: int
    last_error: str | None


@dataclass(frozen=True)
class _Event:
    kind: str
    mid: int = 0
    failed: bool = False
    reason: str = ""


class Uplink:
    """Publishes a tower's status, alarms and snapshots and serves its commands."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        tower_id: str,
        outbox_path: Path | str,
        topic_prefix: str = "towerwatch",
        keepalive_s: int = 30,
        username: str | None = None,
        password: str | None = None,
        tls_ca_path: Path | str | None = None,
        tls_cert_path: Path | str | None = None,
        tls_key_path: Path | str | None = None,
        session_expiry_s: int = 7 * 24 * 3600,
        inflight_window: int = 8,
        reconnect_min_delay_s: int = 1,
        reconnect_max_delay_s: int = 60,
        outbox_max_messages: int = DEFAULT_MAX_MESSAGES,
        outbox_max_bytes: int = DEFAULT_MAX_BYTES,
        stop_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ):
        if not 1 <= port <= 65535:
            raise UplinkError(f"mqtt.port: must be 1-65535, got {port}")
        if keepalive_s < 5:
            raise UplinkError(f"mqtt.keepalive_s: must be >= 5, got {keepalive_s}")
        if inflight_window < 1:
            raise UplinkError(f"mqtt.inflight_window: must be >= 1, got {inflight_window}")
        if not 1 <= reconnect_min_delay_s <= reconnect_max_delay_s:
            raise UplinkError(
                "mqtt.reconnect_min_delay_s/reconnect_max_delay_s: need 1 <= min <= max, "
                f"got {reconnect_min_delay_s}/{reconnect_max_delay_s}"
            )
        if (tls_cert_path is None) != (tls_key_path is None):
            raise UplinkError("mqtt.tls_cert_path and mqtt.tls_key_path: give both or neither")
        if password is not None and username is None:
            raise UplinkError("mqtt.username: a password is configured but no username")
        try:
            self.topics = TowerTopics(topic_prefix, tower_id)
        except ValueError as err:
            raise UplinkError(str(err)) from err
        self.host = host
        self.port = port
        self.client_id = client_id
        self.tower_id = tower_id
        self.outbox_path = Path(outbox_path)
        self.keepalive_s = keepalive_s
        self._username = username
        self._password = password
        self._tls = (tls_ca_path, tls_cert_path, tls_key_path)
        self.session_expiry_s = session_expiry_s
        self.inflight_window = inflight_window
        self._reconnect_delays = (reconnect_min_delay_s, reconnect_max_delay_s)
        self._outbox_caps = (outbox_max_messages, outbox_max_bytes)
        self.stop_timeout_s = stop_timeout_s
        self._clock = clock

        self._client: mqtt.Client | None = None
        self._outbox: Outbox | None = None
        self._events: queue.Queue[_Event] = queue.Queue()
        self._sender: threading.Thread | None = None
        self._handler: CommandHandler | None = None
        self._status_lock = threading.Lock()
        self._latest_status: dict[str, Any] | None = None
        self._connected = False
        self._ever_connected = False
        self._commands_subscribed = False
        # Owned by the sender thread only.
        self._inflight: dict[int, int] = {}
        self._handed_up_to = 0
        self._awaiting_resend = False
        self._link_up = False
        # Counters: plain ints written by one thread each, read for status.
        self._published = 0
        self._acked = 0
        self._reconnects = 0
        self._refused = 0
        self._publish_refused = 0
        self._commands = 0
        self._commands_refused = 0
        self._last_error: str | None = None

    @property
    def _where(self) -> str:
        return f"mqtt (mqtt.host={self.host}:{self.port})"

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Open the outbox and start connecting in the background (returns at once)."""
        if self._client is not None:
            raise UplinkError(f"{self._where}: uplink already started")
        self._outbox = Outbox(self.outbox_path, *self._outbox_caps)
        # A restarted uplink has a new paho client: nothing of the old one is in flight.
        self._events = queue.Queue()
        self._inflight = {}
        self._handed_up_to = 0
        self._awaiting_resend = False
        self._link_up = False
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
        )
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        ca, cert, key = self._tls
        if ca is not None or cert is not None:
            try:
                client.tls_set(
                    ca_certs=None if ca is None else str(ca),
                    certfile=None if cert is None else str(cert),
                    keyfile=None if key is None else str(key),
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError) as err:
                self._outbox.close()
                self._outbox = None
                raise UplinkError(
                    f"mqtt (mqtt.tls_ca_path={ca}, mqtt.tls_cert_path={cert}): cannot load TLS files: {err}"
                ) from err
        client.will_set(
            self.topics.status,
            offline_status(self.tower_id, "connection lost").to_json(),
            qos=topic_table.STATUS.qos,
            retain=topic_table.STATUS.retain,
        )
        client.reconnect_delay_set(*self._reconnect_delays)
        # Our window bounds the outbox rows; the margin leaves room for status and replies.
        client.max_inflight_messages_set(self.inflight_window + 10)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        connect_props = Properties(PacketTypes.CONNECT)
        connect_props.SessionExpiryInterval = self.session_expiry_s
        self._client = client
        self._sender = threading.Thread(target=self._run_sender, name="uplink-sender", daemon=True)
        self._sender.start()
        client.connect_async(
            self.host,
            self.port,
            keepalive=self.keepalive_s,
            clean_start=False,
            properties=connect_props,
        )
        client.loop_start()
        log.info(
            "uplink_starting",
            host=self.host,
            port=self.port,
            client_id=self.client_id,
            outbox=str(self.outbox_path),
            outbox_depth=self._outbox.depth(),
        )

    def stop(self) -> None:
        """Publish the retained `offline` status, disconnect cleanly, close the outbox.

        Unacknowledged alarms stay in the outbox for the next start.
        """
        client, outbox = self._client, self._outbox
        if client is None or outbox is None:
            return
        self._events.put(_Event("stop"))
        if self._sender is not None:
            self._sender.join(timeout=self.stop_timeout_s)
        if self._connected:
            info = client.publish(
                self.topics.status,
                offline_status(self.tower_id, "shutdown").to_json(),
                qos=topic_table.STATUS.qos,
                retain=topic_table.STATUS.retain,
                properties=_json_properties(),
            )
            try:
                info.wait_for_publish(timeout=self.stop_timeout_s)
            except (RuntimeError, ValueError) as err:
                log.warning("uplink_offline_status_not_sent", where=self._where, error=str(err))
        client.disconnect()
        client.loop_stop()
        self._connected = False
        outbox.close()
        self._client = None
        self._outbox = None
        log.info("uplink_stopped", where=self._where)

    def __enter__(self) -> Uplink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- API for the main loop ----------------------------------------------------

    @property
    def connected(self) -> bool:
        """True between a successful CONNACK and the next disconnect."""
        return self._connected

    @property
    def commands_subscribed(self) -> bool:
        """True once the broker granted the `cmd/+` subscription on the current connection."""
        return self._commands_subscribed

    def send_alarm(self, message: AlarmMessage) -> int:
        """Commit an alarm message to the outbox, then publish it; returns the outbox row id.

        Raises OutboxError (naming the database path) when the message cannot be stored.
        """
        outbox = self._require_outbox()
        row_id = outbox.put(
            self.topics.alarm,
            message.to_json().encode(),
            qos=topic_table.ALARM.qos,
            retain=topic_table.ALARM.retain,
            kind=Kind.ALARM,
            alarm_id=message.alarm_id,
            seq=message.seq,
            state=message.state,
            created_s=self._clock(),
        )
        self._events.put(_Event("wake"))
        return row_id

    def send_snapshot(self, alarm_id: str, jpeg_bytes: bytes) -> int:
        """Commit a JPEG snapshot of an alarm to the outbox, then publish it; returns the row id."""
        if not jpeg_bytes.startswith(_JPEG_SOI):
            raise ValueError(
                f"snapshot of alarm {alarm_id}: payload is not a JPEG (no FF D8 start)"
            )
        outbox = self._require_outbox()
        row_id = outbox.put(
            self.topics.snapshot(alarm_id),
            jpeg_bytes,
            qos=topic_table.SNAPSHOT.qos,
            retain=topic_table.SNAPSHOT.retain,
            kind=Kind.SNAPSHOT,
            alarm_id=alarm_id,
            created_s=self._clock(),
        )
        self._events.put(_Event("wake"))
        return row_id

    def publish_status(self, payload: Mapping[str, Any] | StatusMessage) -> None:
        """Publish the retained status now if connected, else as soon as a connection is up.

        Status is not queued in the outbox: only the newest one matters.
        """
        data = payload.to_dict() if isinstance(payload, StatusMessage) else dict(payload)
        with self._status_lock:
            self._latest_status = data
        self._events.put(_Event("status"))

    def subscribe_commands(self, handler: CommandHandler) -> None:
        """Serve `cmd/<verb>` with `handler(verb, payload) -> reply fields` (see module docstring)."""
        self._handler = handler
        if self._client is not None and self._connected:
            self._client.subscribe(self.topics.command_filter, qos=topic_table.COMMAND.qos)

    def counters(self) -> UplinkCounters:
        outbox = self._outbox
        return UplinkCounters(
            connected=self._connected,
            published=self._published,
            acked=self._acked,
            reconnects=self._reconnects,
            refused=self._refused,
            publish_refused=self._publish_refused,
            commands=self._commands,
            commands_refused=self._commands_refused,
            outbox_depth=outbox.depth() if outbox is not None else 0,
            outbox_dropped=outbox.dropped if outbox is not None else 0,
            last_error=self._last_error,
        )

    def _require_outbox(self) -> Outbox:
        if self._outbox is None:
            raise UplinkError(f"{self._where}: uplink not started (call start() first)")
        return self._outbox

    # --- paho callbacks (network thread) -------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refused += 1
            self._last_error = f"{self._where}: connection refused: {reason}"
            log.error("uplink_connect_refused", where=self._where, reason=str(reason))
            return
        if self._ever_connected:
            self._reconnects += 1
        self._ever_connected = True
        self._connected = True
        log.info("uplink_connected", where=self._where, session_present=flags.session_present)
        if self._handler is not None:
            client.subscribe(self.topics.command_filter, qos=topic_table.COMMAND.qos)
        self._events.put(_Event("connected"))

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._last_error = f"{self._where}: cannot connect (broker unreachable or TLS failed)"
        log.warning("uplink_connect_failed", where=self._where)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self._connected
        self._connected = False
        self._commands_subscribed = False
        if was_connected and reason.is_failure:
            self._last_error = f"{self._where}: connection lost: {reason}"
            log.warning("uplink_disconnected", where=self._where, reason=str(reason))
        self._events.put(_Event("disconnected"))

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # Called with paho's message lock held: only hand the event over.
        self._events.put(_Event("ack", mid=mid, failed=reason.is_failure, reason=str(reason)))

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self._last_error = f"{self._where}: subscription {self.topics.command_filter} refused: {', '.join(refused)}"
            log.error("uplink_subscribe_refused", where=self._where, reasons=refused)
            return
        self._commands_subscribed = True

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        verb = self.topics.command_verb(message.topic)
        if verb is None:
            return
        self._commands += 1
        payload = bytes(message.payload)
        now_s = self._clock()
        try:
            command = parse_command(verb, payload)
            if self._handler is None:
                raise CommandError(f"{verb}: this tower serves no commands right now")
            result = dict(self._handler(verb, payload))
            reply = command_reply(
                verb, ok=True, replied_at_s=now_s, request_id=command.request_id, result=result
            )
            log.info("command_accepted", verb=verb, request_id=command.request_id)
        except CommandError as err:
            self._commands_refused += 1
            reply = command_reply(
                verb,
                ok=False,
                replied_at_s=now_s,
                request_id=_request_id_of(payload),
                error=str(err),
            )
            log.warning("command_refused", verb=verb, reason=str(err))
        except Exception as err:
            # A handler bug must not kill paho's network thread (that would silence the
            # tower); it is logged with its traceback and reported to the hub.
            self._commands_refused += 1
            log.exception("command_handler_failed", verb=verb)
            reply = command_reply(
                verb,
                ok=False,
                replied_at_s=now_s,
                request_id=_request_id_of(payload),
                error=f"{verb}: internal error: {type(err).__name__}: {err}",
            )
        props = _json_properties()
        request_props = message.properties
        if request_props is not None and hasattr(request_props, "CorrelationData"):
            props.CorrelationData = request_props.CorrelationData
        client.publish(
            self.topics.command_reply(verb),
            json.dumps(reply),
            qos=topic_table.COMMAND_REPLY.qos,
            retain=topic_table.COMMAND_REPLY.retain,
            properties=props,
        )

    # --- sender thread ---------------------------------------------------------------

    def _run_sender(self) -> None:
        while True:
            event = self._events.get()
            if event.kind == "stop":
                return
            self._handle(event)
            self._drain()

    def _handle(self, event: _Event) -> None:
        if event.kind == "connected":
            self._link_up = True
            # paho re-sends what it still holds unacknowledged right after CONNACK;
            # handing newer rows before those acks arrive could overtake them.
            self._awaiting_resend = bool(self._inflight)
            if not self._inflight:
                # Rows the broker refused earlier are retried from the oldest one.
                self._handed_up_to = 0
            self._publish_latest_status()
        elif event.kind == "disconnected":
            self._link_up = False
        elif event.kind == "status":
            if self._link_up:
                self._publish_latest_status()
        elif event.kind == "ack":
            row_id = self._inflight.pop(event.mid, None)
            if row_id is None:
                return
            if event.failed:
                self._publish_refused += 1
                self._last_error = (
                    f"{self._where}: broker refused outbox row {row_id}: {event.reason}"
                )
                log.error(
                    "uplink_publish_refused", where=self._where, row_id=row_id, reason=event.reason
                )
            else:
                assert self._outbox is not None
                self._outbox.ack(row_id)
                self._acked += 1
            if not self._inflight:
                self._awaiting_resend = False

    def _publish_latest_status(self) -> None:
        client = self._client
        if client is None:
            return
        with self._status_lock:
            status = self._latest_status
        if status is None:
            status = StatusMessage(
                tower_id=self.tower_id, state="online", heartbeat_at=iso_z(self._clock())
            ).to_dict()
        client.publish(
            self.topics.status,
            json.dumps(status),
            qos=topic_table.STATUS.qos,
            retain=topic_table.STATUS.retain,
            properties=_json_properties(),
        )

    def _drain(self) -> None:
        client, outbox = self._client, self._outbox
        if client is None or outbox is None or not self._link_up or self._awaiting_resend:
            return
        free = self.inflight_window - len(self._inflight)
        if free <= 0:
            return
        for row in outbox.pending(after_row_id=self._handed_up_to, limit=free):
            props = _json_properties() if row.kind is not Kind.SNAPSHOT else _jpeg_properties()
            info = client.publish(
                row.topic, row.payload, qos=row.qos, retain=row.retain, properties=props
            )
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                # Not taken by paho; the next wake-up retries from this row.
                return
            # Any other result (including "no connection") leaves the message in paho's
            # session store, which sends it after the next CONNACK: it is in flight.
            self._inflight[info.mid] = row.row_id
            self._handed_up_to = row.row_id
            self._published += 1


def _json_properties() -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.PayloadFormatIndicator = 1
    return props


def _jpeg_properties() -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "image/jpeg"
    return props


def _request_id_of(payload: bytes) -> str | None:
    """Best-effort request_id of a refused command, so the hub can match the refusal."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(data, dict):
        rid = data.get("request_id")
        if isinstance(rid, str) and 0 < len(rid) <= 128:
            return rid
    return None
