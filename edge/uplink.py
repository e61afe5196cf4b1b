"""MQTT uplink to the hub: durable alarm delivery through the outbox, status with Last Will, commands.

Threading contract (the daemon's main loop is single-threaded and owns its state):

- `start`, `stop`, `send_alarm`, `send_snapshot`, `publish_status`,
  `subscribe_commands`, `counters` and `connected` are called from the main loop.
  They never block on the network: sends are committed to the outbox and handed to
  the uplink's own sender thread.
- paho's network thread and the uplink's sender thread never touch daemon state.
  The single exception is the command handler given to `subscribe_commands`: it is
  called on paho's network thread with the typed command that `parse_command`
  built (the payload is parsed once, here). It must be thread-safe and quick — the
  usual handler puts the command on a queue the main loop drains and returns
  `{"queued": True}`. It may raise `CommandError` to refuse; the reason goes back
  on `cmd/<verb>/reply` with `"ok": false`. `send_command_result` sends the final
  reply once the main loop carried the command out or refused it; it is safe from
  any thread.

Commands are refused before the handler sees them when they are retained (a
command left on the broker must not run at every start), older than
`command_max_age_s` by their `issued_at`, over the size limit or malformed, or
when more than `command_burst` arrive within one second. The hub should also set
MQTT message expiry on commands: the broker then drops them once stale.
Every reply carries `stage`: `accepted` (queued), `done` (carried out) or
`refused` (never carried out; `error` says why, without internal details).

Thread health: both threads run behind a catch-all boundary that logs the cause
with its traceback and counts it; the sender thread restarts paho's network loop
if it finds it gone. `health()` reports both.

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
from collections import deque
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

from drivers.base import NamedThread
from edge import topics as topic_table
from edge.config import MqttSettings
from edge.messages import (
    MAX_COMMAND_BYTES,
    AlarmMessage,
    Command,
    CommandError,
    StatusMessage,
    command_reply,
    iso_z,
    offline_status,
    parse_command,
    parse_iso_z,
)
from edge.outbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_MESSAGES, Kind, Outbox
from edge.thread_health import FailureRecord, ThreadHealth
from edge.topics import TowerTopics

log = structlog.get_logger(__name__)

CommandHandler = Callable[[Command], Mapping[str, Any]]

_JPEG_SOI = b"\xff\xd8"
# A command issued this far in the future (by the hub's clock) is refused as well: the
# clocks are NTP-disciplined, so more than this means a forged or broken timestamp.
COMMAND_CLOCK_SKEW_S = 60.0
# The sender thread wakes at least this often to check paho's network thread.
_SUPERVISE_PERIOD_S = 1.0
# After a failure the sender thread pauses before retrying, so a persistent fault
# (a broken disk) does not spin a core.
_FAILURE_PAUSE_S = 1.0
# Share of the stop timeout the sender spends delivering what is pending on a clean stop;
# the rest is left for the retained offline status.
_STOP_FLUSH_SHARE = 0.6


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
    # Set when the outbox file was unusable at start and replaced (a `degraded` reason).
    outbox_recovered: str | None = None


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
        mqtt_settings: MqttSettings,
        *,
        tower_id: str,
        outbox_path: Path | str,
        password: str | None = None,
        tls_key_path: Path | str | None = None,
        inflight_window: int = 8,
        reconnect_min_delay_s: int = 1,
        reconnect_max_delay_s: int = 60,
        outbox_max_messages: int = DEFAULT_MAX_MESSAGES,
        outbox_max_bytes: int = DEFAULT_MAX_BYTES,
        command_max_age_s: float = 300.0,
        command_burst: int = 20,
        stop_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ):
        """`mqtt_settings` is the validated `mqtt` config section; `password` and
        `tls_key_path` are the resolved `mqtt.password_secret` and `mqtt.tls.key_secret`."""
        m = mqtt_settings
        host, port, keepalive_s = m.host, m.port, m.keepalive_s
        username = m.username
        tls_ca_path = m.tls.ca_file if m.tls is not None else None
        tls_cert_path = m.tls.cert_file if m.tls is not None else None
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
            raise UplinkError("mqtt.tls.cert_file and mqtt.tls.key_secret: give both or neither")
        if password is not None and username is None:
            raise UplinkError("mqtt.username: a password is configured but no username")
        if outbox_max_bytes < 1 or outbox_max_messages < 1:
            raise UplinkError("outbox caps: max messages and max bytes must be >= 1")
        if command_max_age_s <= 0 or command_burst < 1:
            raise UplinkError("command limits: max age must be > 0 s and burst >= 1")
        try:
            self.topics = TowerTopics(m.topic_prefix, tower_id)
        except ValueError as err:
            raise UplinkError(str(err)) from err
        self.host = host
        self.port = port
        self.client_id = m.client_id or tower_id
        self.tower_id = tower_id
        self.outbox_path = Path(outbox_path)
        self.keepalive_s = keepalive_s
        self._username = username
        self._password = password
        self._tls = (tls_ca_path, tls_cert_path, tls_key_path)
        self.session_expiry_s = m.session_expiry_s
        self.command_max_age_s = command_max_age_s
        self.command_burst = command_burst
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
        self._rehand_pending = False
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
        self._command_times: deque[float] = deque(maxlen=command_burst)
        self._stopping = False
        self._ever_started_loop = False
        self._sender_record = FailureRecord()
        self._network_record = FailureRecord()

    @property
    def _where(self) -> str:
        return f"mqtt (mqtt.host={self.host}:{self.port})"

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Open the outbox and start connecting in the background (returns at once)."""
        if self._client is not None:
            raise UplinkError(f"{self._where}: uplink already started")
        self._outbox = Outbox(self.outbox_path, *self._outbox_caps)
        self._stopping = False
        self._ever_started_loop = False
        # A restarted uplink has a new paho client: nothing of the old one is in flight.
        self._events = queue.Queue()
        self._inflight = {}
        self._handed_up_to = 0
        self._awaiting_resend = False
        self._rehand_pending = False
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
                    f"mqtt (mqtt.tls.ca_file={ca}, mqtt.tls.cert_file={cert}, mqtt.tls.key_secret): "
                    f"cannot load TLS files: {err}"
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
        self._sender = NamedThread(target=self._run_sender, name="uplink-sender", daemon=True)
        self._sender.start()
        client.connect_async(
            self.host,
            self.port,
            keepalive=self.keepalive_s,
            clean_start=False,
            properties=connect_props,
        )
        client.loop_start()
        self._ever_started_loop = True
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
        self._stopping = True
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

        Each message goes on `alarm` and, retained, on `alarm/<id>/state`; a final state
        (`cleared`, `test`) is followed by an empty retained message that deletes it.

        Raises OutboxError (naming the database path) when the message cannot be stored.
        """
        outbox = self._require_outbox()
        payload = message.to_json().encode()
        created_s = self._clock()
        state_topic = self.topics.alarm_state(message.alarm_id)
        rows: list[tuple[str, bytes, topic_table.TopicSpec]] = [
            (self.topics.alarm, payload, topic_table.ALARM),
            (state_topic, payload, topic_table.ALARM_STATE),
        ]
        if message.state in topic_table.FINAL_ALARM_STATES:
            # Rows go out in order on one session, so a subscriber sees the final state
            # before the empty retained message deletes it from the broker.
            rows.append((state_topic, b"", topic_table.ALARM_STATE))
        row_id = 0
        for topic, data, spec in rows:
            put_id = outbox.put(
                topic,
                data,
                qos=spec.qos,
                retain=spec.retain,
                kind=Kind.ALARM,
                alarm_id=message.alarm_id,
                seq=message.seq,
                state=message.state,
                created_s=created_s,
            )
            row_id = row_id or put_id
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
        """Serve `cmd/<verb>` with `handler(command) -> reply fields` (see module docstring).

        Call it before `start`: the subscription is then sent on connect, ahead of the
        first status. Given later, a command sent on that status can find no subscriber.
        """
        self._handler = handler
        if self._client is not None and self._connected:
            self._client.subscribe(self.topics.command_filter, qos=topic_table.COMMAND.qos)

    def send_command_result(
        self,
        verb: str,
        request_id: str | None,
        ok: bool,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Send the final reply of a command (`stage` `done` or `refused`); any thread.

        Not queued in the outbox: a reply the link loses is answered by the hub's own
        timeout. `error` goes to the hub as given: keep internal details out of it.
        """
        fields = {**dict(result or {}), "stage": "done" if ok else "refused"}
        reply = command_reply(
            verb,
            ok=ok,
            replied_at_s=self._clock(),
            request_id=request_id,
            error=error,
            result=fields,
        )
        client = self._client
        if client is None:
            log.warning("command_result_not_sent", verb=verb, reason="uplink not started")
            return
        client.publish(
            self.topics.command_reply(verb),
            json.dumps(reply),
            qos=topic_table.COMMAND_REPLY.qos,
            retain=topic_table.COMMAND_REPLY.retain,
            properties=_json_properties(),
        )

    def health(self) -> dict[str, ThreadHealth]:
        """Per-thread health: `uplink sender` and `mqtt network` (paho's loop)."""
        sender = self._sender
        client = self._client
        network = getattr(client, "_thread", None) if client is not None else None
        started = client is not None
        return {
            "uplink sender": self._sender_record.snapshot(
                "uplink sender", not started or (sender is not None and sender.is_alive())
            ),
            "mqtt network": self._network_record.snapshot(
                "mqtt network", not started or (network is not None and network.is_alive())
            ),
        }

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
            outbox_recovered=outbox.recovered if outbox is not None else None,
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
        # The outer boundary of paho's network thread for commands: nothing from a
        # payload or a handler may end that thread (it also processes our PUBACKs).
        try:
            self._serve_command(client, message)
        except Exception as err:
            self._network_record.failed(err)
            log.exception("command_boundary_failed", topic=message.topic[:120])

    def _serve_command(self, client: mqtt.Client, message: mqtt.MQTTMessage) -> None:
        verb = self.topics.command_verb(message.topic)
        if verb is None:
            return
        self._commands += 1
        payload = bytes(message.payload)
        now_s = self._clock()
        request_id = _request_id_of(payload)
        try:
            self._admit(message, now_s)
            command = parse_command(verb, payload)
            self._check_age(verb, command, now_s)
            if self._handler is None:
                raise CommandError(f"{verb}: this tower serves no commands right now")
            result = {**dict(self._handler(command)), "stage": "accepted"}
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
                request_id=request_id,
                error=str(err),
                result={"stage": "refused"},
            )
            log.warning("command_refused", verb=verb[:40], reason=str(err)[:300])
        except Exception:
            # A handler bug is logged with its traceback; the hub learns only that the
            # command failed (internal details stay on the tower).
            self._commands_refused += 1
            log.exception("command_handler_failed", verb=verb)
            reply = command_reply(
                verb,
                ok=False,
                replied_at_s=now_s,
                request_id=request_id,
                error=f"{verb}: internal error on the tower (see its log)",
                result={"stage": "refused"},
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

    def _admit(self, message: mqtt.MQTTMessage, now_s: float) -> None:
        """Refuse retained commands and bursts before spending any work on the payload."""
        if message.retain:
            raise CommandError(
                "retained commands are not carried out; publish commands with retain off"
            )
        wall_s = time.monotonic()
        times = self._command_times
        if len(times) == times.maxlen and wall_s - times[0] < 1.0:
            raise CommandError(
                f"too many commands: more than {self.command_burst} in one second; try again"
            )
        times.append(wall_s)

    def _check_age(self, verb: str, command: Command, now_s: float) -> None:
        if command.issued_at is None:
            return
        age_s = now_s - parse_iso_z(command.issued_at)
        if age_s > self.command_max_age_s:
            raise CommandError(
                f"{verb}: stale: issued {age_s:.0f} s ago, limit {self.command_max_age_s:.0f} s"
            )
        if age_s < -COMMAND_CLOCK_SKEW_S:
            raise CommandError(
                f"{verb}: issued_at is {-age_s:.0f} s in the future of the tower's clock"
            )

    # --- sender thread ---------------------------------------------------------------

    def _run_sender(self) -> None:
        while True:
            try:
                event = self._events.get(timeout=_SUPERVISE_PERIOD_S)
            except queue.Empty:
                event = _Event("tick")
            if event.kind == "stop":
                self._flush_before_stop(time.monotonic() + _STOP_FLUSH_SHARE * self.stop_timeout_s)
                return
            # The thread's outer boundary: a storage or paho error is logged, counted
            # and retried; it never ends the thread (alarms would stop silently).
            try:
                self._supervise_network()
                self._handle(event)
                self._drain()
            except Exception as err:
                self._sender_record.failed(err)
                self._last_error = f"{self._where}: uplink sender: {type(err).__name__}: {err}"
                log.exception("uplink_sender_failed", where=self._where)
                # Rows handed but not yet acknowledged are handed again from the oldest
                # pending one (at-least-once; the hub de-duplicates), once the rows still
                # in flight are acknowledged.
                self._rehand_pending = True
                if not self._inflight:
                    self._handed_up_to = 0
                    self._rehand_pending = False
                time.sleep(_FAILURE_PAUSE_S)

    def _flush_before_stop(self, deadline: float) -> None:
        """With the link up, hand what is pending and wait for its acks until the deadline.

        An alarm committed just before a clean shutdown then reaches the hub now rather than
        at the next start; what the deadline leaves unacknowledged stays in the outbox.
        """
        try:
            while self._link_up and self._outbox is not None:
                self._drain()
                unhanded = self._outbox.pending(after_row_id=self._handed_up_to, limit=1)
                if not self._inflight and not unhanded:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    event = self._events.get(timeout=remaining)
                except queue.Empty:
                    return
                self._handle(event)
        except Exception as err:
            self._sender_record.failed(err)
            log.exception("uplink_stop_flush_failed", where=self._where)

    def _supervise_network(self) -> None:
        """Restart paho's network loop if it ended while the uplink is running."""
        client = self._client
        if client is None or self._stopping or not self._ever_started_loop:
            return
        thread = getattr(client, "_thread", None)
        if thread is not None and thread.is_alive():
            return
        reason = "mqtt network thread ended unexpectedly; restarted"
        self._network_record.restarted(reason)
        self._last_error = f"{self._where}: {reason}"
        log.error("uplink_network_thread_restarted", where=self._where)
        client.loop_stop()
        client.loop_start()

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
                if self._rehand_pending:
                    self._handed_up_to = 0
                    self._rehand_pending = False

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
    if len(payload) > MAX_COMMAND_BYTES:
        return None
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        # not JSON, not UTF-8, or a number past Python's digit limit
        return None
    if isinstance(data, dict):
        rid = data.get("request_id")
        if isinstance(rid, str) and 0 < len(rid) <= 128:
            return rid
    return None
