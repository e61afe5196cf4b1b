"""Fuzzing of every parser at the I/O boundary: each either parses or raises its own
documented error, never anything else (an escaping exception would end a thread).

Byte-level codecs (lidar, NMEA, Pelco-D, Modbus) are fuzzed in their own test modules.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import yaml
from conftest import MosquittoBroker, MqttCollector
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from test_driver_onvif import make_driver

from drivers.base import DriverError
from drivers.codec_framestream import (
    HEADER,
    KIND_THERMAL,
    FrameStreamError,
    decode_payload,
    encode_frame,
    parse_header,
    unchecked_header,
)
from edge.config import ConfigError, MqttSettings, load_config
from edge.messages import MAX_COMMAND_BYTES, CommandError, parse_command
from edge.outbox import Kind, Outbox, OutboxError
from edge.topics import CommandVerb
from edge.uplink import Uplink
from simulators.clock import SimClock
from simulators.head import SimulatedHead
from simulators.onvif_server import OnvifPtzServer

REPO = Path(__file__).resolve().parents[1]
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_GOOD_FRAME = encode_frame(
    KIND_THERMAL, np.full((4, 6), 300.0, np.float32), 7, 1.7e9, pan_deg=10.0, tilt_deg=-1.0,
    hfov_deg=6.0, vfov_deg=4.5,
)  # fmt: skip


# --- frame stream ------------------------------------------------------------------


@FUZZ
@given(st.binary(min_size=HEADER.size, max_size=HEADER.size))
def test_any_header_bytes_parse_or_raise_the_stream_error(data: bytes) -> None:
    try:
        header = parse_header(data)
    except FrameStreamError:
        return
    assert header.width * header.height > 0


@FUZZ
@given(st.integers(0, len(_GOOD_FRAME) - 1), st.integers(1, 255))
def test_a_flipped_byte_anywhere_in_a_frame_is_caught(offset: int, xor: int) -> None:
    data = bytearray(_GOOD_FRAME)
    data[offset] ^= xor
    try:
        header = parse_header(bytes(data[: HEADER.size]))
        decode_payload(header, bytes(data[HEADER.size :]))
    except FrameStreamError:
        return
    # Only a flip in a field the CRC does not cover and no check refuses gets through,
    # and then the image is still the one sent.
    assert offset < HEADER.size
    assert unchecked_header(bytes(data[: HEADER.size])).payload_len == 4 * 6 * 2


# --- command payloads ----------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_command_fields = st.dictionaries(
    st.sampled_from(
        ["pan_deg", "tilt_deg", "hfov_deg", "hold_s", "bearing_deg", "elevation_deg", "lat",
         "lon", "request_id", "issued_at", "note", "x"]
    ),
    _json_values,
    max_size=6,
)  # fmt: skip
_payloads = st.one_of(
    st.binary(max_size=200),
    _command_fields.map(lambda d: json.dumps(d).encode()),
    st.integers(1, 6000).map(lambda n: b'{"pan_deg": ' + b"9" * n + b', "tilt_deg": 0}'),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)


@FUZZ
@given(st.sampled_from([v.value for v in CommandVerb] + ["nope", "x" * 64]), _payloads)
def test_any_command_payload_parses_or_is_refused(verb: str, payload: bytes) -> None:
    try:
        command = parse_command(verb, payload)
    except CommandError as err:
        assert len(str(err)) < 2 * MAX_COMMAND_BYTES
        return
    assert len(payload) <= MAX_COMMAND_BYTES
    assert command.request_id is None or 1 <= len(command.request_id) <= 128


# --- outbox file -----------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=8192), st.booleans())
def test_any_outbox_file_opens_usable_or_names_the_path(
    tmp_path_factory: pytest.TempPathFactory, content: bytes, as_sqlite: bool
) -> None:
    folder = tmp_path_factory.mktemp("outbox")
    path = folder / "outbox.sqlite"
    if as_sqlite:
        # a real outbox with one row, then the fuzzed bytes written over its middle
        with Outbox(path) as outbox:
            outbox.put("t/alarm", b"{}", kind=Kind.ALARM, alarm_id="a", state="confirmed")
            outbox._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with path.open("r+b") as f:
            f.seek(min(1024, path.stat().st_size))
            f.write(content)
    else:
        path.write_bytes(content)
    try:
        outbox = Outbox(path)
    except OutboxError as err:
        assert str(path) in str(err)
        return
    try:
        outbox.put("t/alarm", b"{}", kind=Kind.ALARM, alarm_id="b", state="confirmed")
        assert outbox.depth() >= 1
    finally:
        outbox.close()


# --- config files ----------------------------------------------------------------------

_yaml_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
_yaml_docs = st.recursive(
    _yaml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)  # fmt: skip


def _load(tmp_path_factory: pytest.TempPathFactory, text: bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / "tower.yaml"
    path.write_bytes(text)
    try:
        load_config(path)
    except ConfigError as err:
        assert str(path) in str(err) or "tower.yaml" in str(err)


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_as_config_are_refused_with_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    _load(tmp_path_factory, data)


@FUZZ
@given(_yaml_docs)
def test_any_yaml_document_as_config_is_refused_with_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, doc: Any
) -> None:
    _load(tmp_path_factory, yaml.safe_dump(doc).encode())


@FUZZ
@given(
    st.sampled_from(["tower", "mqtt", "storage", "ptz", "thermal", "secrets", "patrol"]),
    _yaml_docs,
)
def test_a_section_of_any_type_is_refused_with_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, section: str, value: Any
) -> None:
    base = yaml.safe_load((REPO / "config" / "simulated.yaml").read_text())
    base[section] = value
    _load(tmp_path_factory, yaml.safe_dump(base).encode())


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"   \n",
        b"not: [yaml",
        b"\xff\xfe\x00garbage",
        b"- a\n- list\n",
        b"a: &x [*x]\n",
        b"x: " + b"[" * 5000 + b"]" * 5000,
        b"k: " + b"a" * 3_000_000,
        b"a: &a ['lol','lol']\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
    ],
    ids=["empty", "blank", "not-yaml", "binary", "list", "self-alias", "deep", "huge", "billion-laughs"],
)  # fmt: skip
def test_hostile_config_files_are_refused_with_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: bytes
) -> None:
    started = time.monotonic()
    _load(tmp_path_factory, text)
    assert time.monotonic() - started < 30.0


# --- ONVIF replies ---------------------------------------------------------------------

_SOAP_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/'
    b'soap-envelope" xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:tt="http://www.onvif'
    b'.org/ver10/schema"><s:Body>'
)
_reply_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: _SOAP_HEAD + t.encode() + b"</s:Body></s:Envelope>"),
    st.tuples(st.floats(), st.floats(), st.text(max_size=10)).map(
        lambda v: (
            _SOAP_HEAD
            + (
                f'<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position><tt:PanTilt x="{v[0]}" '
                f'y="{v[1]}"/><tt:Zoom x="{v[2]}"/></tt:Position></tptz:PTZStatus>'
                "</tptz:GetStatusResponse>"
            ).encode()
            + b"</s:Body></s:Envelope>"
        )
    ),
)


@pytest.fixture(scope="module")
def onvif_pair() -> Iterator[Any]:
    clock = SimClock(time.time(), speed=1.0)
    head = SimulatedHead(clock, mount_pan_offset_deg=12.0, backlash_deg=0.0)
    server = OnvifPtzServer(head, clock, username="admin", password="s3cret")
    server.start()
    driver = make_driver(server)
    driver.open()
    assert driver.wait_connected(10.0)
    yield server, driver
    driver.close()
    server.stop()


@settings(deadline=None, max_examples=25)
@given(st.sampled_from([200, 400, 500]), _reply_bodies)
def test_any_onvif_status_reply_is_a_status_or_a_driver_error(
    onvif_pair: Any, http_status: int, body: bytes
) -> None:
    server, driver = onvif_pair
    assert driver.wait_connected(15.0)
    server.faults.reply_override = ("GetStatus", http_status, body)
    try:
        status = driver.status()
    except DriverError:
        pass
    else:
        assert np.isfinite(status.pan_deg) and np.isfinite(status.tilt_deg)
    finally:
        server.faults.reply_override = None


# --- command payloads through the real MQTT path ----------------------------------------


@pytest.fixture(scope="module")
def served_tower(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("mqtt-fuzz")
    broker = MosquittoBroker(folder / "broker")
    broker.start()
    uplink = Uplink(
        MqttSettings(host=broker.host, port=broker.port),
        tower_id="t1",
        outbox_path=folder / "outbox.sqlite",
        reconnect_max_delay_s=1,
        command_burst=10_000,
    )
    uplink.start()
    handled: list[Any] = []
    uplink.subscribe_commands(lambda command: handled.append(command) or {"queued": True})
    hub = MqttCollector(broker.host, broker.port, ["towerwatch/t1/cmd/+/reply"]).connect()
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sender.connect(broker.host, broker.port)
    sender.loop_start()
    deadline = time.monotonic() + 10
    while not uplink.commands_subscribed:
        assert time.monotonic() < deadline, "no command subscription"
        time.sleep(0.02)
    yield uplink, hub, sender
    sender.loop_stop()
    sender.disconnect()
    hub.close()
    uplink.stop()
    broker.stop()


@settings(deadline=None, max_examples=40)
@given(st.sampled_from([v.value for v in CommandVerb] + ["nope"]), _payloads)
def test_any_payload_over_mqtt_gets_exactly_one_clear_reply(
    served_tower: Any, verb: str, payload: bytes
) -> None:
    uplink, hub, sender = served_tower
    hub.clear()
    sender.publish(f"towerwatch/t1/cmd/{verb}", payload, qos=1).wait_for_publish(10)
    reply = hub.wait_one(f"towerwatch/t1/cmd/{verb}/reply", timeout_s=15).json()
    assert reply["stage"] in ("accepted", "refused")
    assert reply["ok"] is (reply["stage"] == "accepted")
    if not reply["ok"]:
        assert reply["error"] and "Traceback" not in reply["error"]
    health = uplink.health()
    assert health["mqtt network"].alive and health["mqtt network"].failures == 0
