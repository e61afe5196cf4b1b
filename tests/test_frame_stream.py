"""The TCP frame stream: codec on bytes alone, and the driver against the simulated server."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from drivers.base import DriverState
from drivers.codec_framestream import (
    HEADER,
    KIND_THERMAL,
    KIND_VISIBLE,
    FrameStreamError,
    FrameValueError,
    decode_payload,
    encode_frame,
    hello,
    parse_header,
    parse_hello,
)
from drivers.frames_stream import FrameStreamSource, Settings
from simulators.frame_server import FrameStreamServer, ProducedFrame


def test_thermal_frame_round_trips_in_centikelvin_and_saturates_at_655_k() -> None:
    kelvin = np.array([[290.004, 300.0], [1200.0, np.nan]], dtype=np.float32)
    data = encode_frame(KIND_THERMAL, kelvin, 7, 1.7e9, pan_deg=12.5, tilt_deg=-0.3, hfov_deg=5.9)
    header = parse_header(data[: HEADER.size])
    image = decode_payload(header, data[HEADER.size :])
    assert header.seq == 7 and header.t == 1.7e9 and header.has_pose and not header.shutter
    assert math.isclose(header.pan_deg, 12.5, abs_tol=1e-5)
    assert image.dtype == np.float32
    assert image[0, 0] == pytest.approx(290.0, abs=0.006)
    assert image[1, 0] == pytest.approx(655.35, abs=1e-3)  # a 16-bit core saturates here
    assert image[1, 1] == 0.0  # NaN travels as a dead pixel


def test_visible_bgr_frame_without_pose_round_trips() -> None:
    bgr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    data = encode_frame(KIND_VISIBLE, bgr, 1, 5.0, shutter=True)
    header = parse_header(data[: HEADER.size])
    assert not header.has_pose and header.shutter
    np.testing.assert_array_equal(decode_payload(header, data[HEADER.size :]), bgr)


def test_corrupt_header_and_payload_are_refused_with_their_own_error() -> None:
    data = bytearray(encode_frame(KIND_THERMAL, np.full((4, 4), 300.0, np.float32), 0, 1.0))
    with pytest.raises(FrameStreamError, match="magic"):
        parse_header(b"JUNK" + bytes(data[4 : HEADER.size]))
    header = parse_header(bytes(data[: HEADER.size]))
    data[-1] ^= 0xFF
    with pytest.raises(FrameStreamError, match="CRC"):
        decode_payload(header, bytes(data[HEADER.size :]))
    with pytest.raises(FrameStreamError, match="truncated"):
        decode_payload(header, bytes(data[HEADER.size : -3]))
    with pytest.raises(FrameStreamError):
        parse_hello(b"HELLO!!!")
    assert parse_hello(hello(KIND_VISIBLE)) == KIND_VISIBLE


class _Scene:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self, stream: str) -> ProducedFrame:
        self.t += 0.1
        image = np.full((16, 20), 295.0, np.float32)
        image[8, 10] = 400.0
        return ProducedFrame(image, self.t, 90.0, -0.5, 5.9, 4.7)


def _wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_driver_reads_frames_and_recovers_after_the_camera_drops() -> None:
    server = FrameStreamServer(_Scene(), fps=50.0)
    server.start()
    settings = Settings(type="frame_stream", port=server.port, stall_timeout_s=1.0)
    with FrameStreamSource(settings) as source:
        frame = source.read(timeout_s=3.0)
        assert frame is not None and frame.radiometric
        assert frame.image[8, 10] == pytest.approx(400.0)
        assert frame.pan_deg == pytest.approx(90.0)
        assert source.health().state is DriverState.OK

        server.drop()
        assert _wait_for(lambda: source.health().state is DriverState.FAILED)
        assert source.health().counters.get("disconnects", 0) >= 1
        server.restore()
        assert _wait_for(lambda: source.health().state is DriverState.OK, 10.0)
        stale = 0
        while source.read(timeout_s=0.0) is not None:
            stale += 1  # frames queued before the drop
        assert source.read(timeout_s=3.0) is not None
    server.stop()


def test_closing_the_driver_is_not_reported_as_a_lost_stream() -> None:
    server = FrameStreamServer(_Scene(), fps=50.0)
    server.start()
    try:
        source = FrameStreamSource(Settings(type="frame_stream", port=server.port))
        source.open()
        assert source.read(timeout_s=3.0) is not None
        source.close()
        health = source.health()
        assert health.state is DriverState.CLOSED
        assert health.counters.get("disconnects", 0) == 0
        assert health.last_error is None
    finally:
        server.stop()


def test_driver_started_before_the_camera_connects_when_it_appears() -> None:
    server = FrameStreamServer(_Scene(), fps=50.0)
    server.start()
    port = server.port
    server.stop()
    with FrameStreamSource(Settings(type="frame_stream", port=port)) as source:
        assert source.read(timeout_s=0.5) is None
        assert _wait_for(lambda: source.health().last_error is not None)
        late = FrameStreamServer(_Scene(), fps=50.0, port=port)
        late.start()
        try:
            assert source.read(timeout_s=8.0) is not None
        finally:
            late.stop()


def test_a_stalled_stream_is_detected_and_reported() -> None:
    server = FrameStreamServer(_Scene(), fps=50.0)
    server.start()
    with FrameStreamSource(
        Settings(type="frame_stream", port=server.port, stall_timeout_s=0.3)
    ) as source:
        assert source.read(timeout_s=3.0) is not None
        server.stall()
        assert _wait_for(lambda: "no data" in (source.health().last_error or ""))
        server.stall(False)
        assert _wait_for(lambda: source.health().state is DriverState.OK, 10.0)
    server.stop()


class _BadScene(_Scene):
    """Good frames with absurd ones in between: a broken clock, a zero field of view,
    a pan outside any head's range, a frame of another size."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __call__(self, stream: str) -> ProducedFrame:
        good = super().__call__(stream)
        self.n += 1
        kind = self.n % 5
        if kind == 1:
            return ProducedFrame(good.image, 1e300, 90.0, -0.5, 5.9, 4.7)
        if kind == 2:
            return ProducedFrame(good.image, good.t, 90.0, -0.5, 0.0, 4.7)
        if kind == 3:
            return ProducedFrame(good.image, good.t, 500.0, -0.5, 5.9, 4.7)
        if kind == 4:
            return ProducedFrame(np.full((8, 8), 295.0, np.float32), good.t, 90.0, -0.5, 5.9, 4.7)
        return good


def test_absurd_frames_are_rejected_and_counted_without_a_reconnect() -> None:
    scene = _BadScene()
    scene.n = 4  # the first frame is good and fixes the stream's frame size
    server = FrameStreamServer(scene, fps=100.0)
    server.start()
    try:
        with FrameStreamSource(Settings(type="frame_stream", port=server.port)) as source:
            good: list[float] = []
            deadline = time.monotonic() + 10.0
            while len(good) < 4 and time.monotonic() < deadline:
                frame = source.read(timeout_s=1.0)
                if frame is not None:
                    assert frame.image.shape == (16, 20)
                    assert 0.0 < frame.hfov_deg < 180.0
                    good.append(frame.t)
            assert len(good) == 4
            health = source.health()
            assert health.counters.get("frames_rejected", 0) >= 12
            assert health.counters.get("disconnects", 0) == 0
            assert health.counters.get("protocol_errors", 0) == 0
            assert health.state is DriverState.OK
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("t", math.nan, "not a time"),
        ("t", -5.0, "not a time"),
        ("t", 1e300, "not a time"),
        ("hfov_deg", -1.0, "field of view"),
        ("tilt_deg", 95.0, "tilt_deg"),
        ("pan_deg", 400.0, "pan_deg"),
        ("vfov_deg", math.inf, "infinity"),
    ],
)
def test_header_values_are_checked(field: str, value: float, reason: str) -> None:
    values = dict(t=1.7e9, pan_deg=10.0, tilt_deg=0.0, hfov_deg=6.0, vfov_deg=4.0)
    values[field] = value
    t = values.pop("t")
    data = encode_frame(KIND_THERMAL, np.full((4, 4), 300.0, np.float32), 0, t, **values)
    with pytest.raises(FrameValueError, match=reason):
        parse_header(data[: HEADER.size])


class _VisibleScene(_Scene):
    def __call__(self, stream: str) -> ProducedFrame:
        self.t += 0.1
        return ProducedFrame(np.full((16, 20, 3), 80, np.uint8), self.t, 90.0, -0.5, 5.9, 4.7)


def test_newest_decodes_only_the_latest_frame_and_drops_the_rest_undecoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import drivers.frames_stream as frames_stream

    decoded: list[int] = []

    def counting_decode(header, payload):  # type: ignore[no-untyped-def]
        decoded.append(header.seq)
        return decode_payload(header, payload)

    monkeypatch.setattr(frames_stream, "decode_payload", counting_decode)
    server = FrameStreamServer(_VisibleScene(), fps=100.0)
    server.start()
    try:
        settings = Settings(type="frame_stream", port=server.port, stream="visible")
        with FrameStreamSource(settings) as source:
            assert _wait_for(lambda: source.health().counters.get("frames", 0) >= 10)
            frame = source.newest()
            assert frame is not None and frame.image.shape == (16, 20, 3)
            assert decoded == [frame.seq]  # one decode, of the newest frame
            assert frame.seq >= 9
            counters = source.health().counters
            assert counters["frames_dropped"] >= frame.seq - 1  # the rest, never decoded
            later = source.read(timeout_s=3.0)  # in order again, and newer than `newest`
            assert later is not None and later.seq > frame.seq
    finally:
        server.stop()


def test_the_visible_stream_is_received_only_while_a_consumer_wants_it() -> None:
    server = FrameStreamServer(_VisibleScene(), fps=100.0)
    server.start()
    try:
        settings = Settings(type="frame_stream", port=server.port, stream="visible")
        assert settings.reads_on_demand
        with FrameStreamSource(settings) as source:
            # opening probes the camera once, then leaves the stream
            assert _wait_for(lambda: source.health().state is DriverState.IDLE, 10.0)
            assert source.health().counters["frames"] >= 1
            assert _wait_for(lambda: server.client_count() == 0)
            idle_frames = source.health().counters["frames"]
            assert source.newest() is not None  # what the probe left
            assert source.newest() is None  # and nothing arrives while no one wants it
            assert source.health().counters["frames"] == idle_frames

            source.want(1.0)  # a confirmation begins
            assert _wait_for(lambda: source.health().counters["frames"] > idle_frames + 5)
            frame = source.newest()
            assert frame is not None and frame.image.shape == (16, 20, 3)
            assert _wait_for(lambda: source.health().state is DriverState.IDLE, 10.0)
            health = source.health()
            assert health.last_error is None  # leaving on purpose is no fault
            assert health.counters.get("disconnects", 0) == 0
            assert health.counters.get("reconnects", 0) == 0
    finally:
        server.stop()


def test_reading_an_on_demand_stream_wants_it_and_the_thermal_stream_stays_connected() -> None:
    server = FrameStreamServer(_Scene(), fps=100.0)
    server.start()
    try:
        thermal = Settings(type="frame_stream", port=server.port)
        assert not thermal.reads_on_demand
        visible = Settings(type="frame_stream", port=server.port, stream="visible", probe_every_s=10)
        with FrameStreamSource(thermal) as always, FrameStreamSource(visible) as on_demand:
            assert _wait_for(lambda: on_demand.health().state is DriverState.IDLE, 10.0)
            assert on_demand.read(timeout_s=3.0) is not None  # a field tool's read wants it
            assert always.read(timeout_s=3.0) is not None
            assert _wait_for(lambda: on_demand.health().state is DriverState.IDLE, 10.0)
            assert always.health().state is DriverState.OK
            assert always.read(timeout_s=3.0) is not None
    finally:
        server.stop()


def test_a_payload_failing_its_crc_is_rejected_and_the_stream_stays_up() -> None:
    import socket
    import threading

    frames = [
        bytearray(encode_frame(KIND_THERMAL, np.full((4, 4), 300.0 + k, np.float32), k, 1.7e9 + k))
        for k in range(3)
    ]
    frames[1][-1] ^= 0xFF  # a flipped bit in the second frame's payload
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        client, _ = listener.accept()
        with client:
            client.recv(len(hello(KIND_THERMAL)))
            for data in frames:
                client.sendall(data)
            done.wait(10.0)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        port = listener.getsockname()[1]
        with FrameStreamSource(Settings(type="frame_stream", port=port)) as source:
            first, second = source.read(timeout_s=3.0), source.read(timeout_s=3.0)
            assert first is not None and second is not None
            assert (first.seq, second.seq) == (0, 2)
            assert second.image[0, 0] == pytest.approx(302.0)
            health = source.health()
            assert health.counters.get("frames_rejected") == 1
            assert "CRC" in (health.last_error or "")
            assert health.counters.get("disconnects", 0) == 0
            assert health.state is DriverState.OK
    finally:
        done.set()
        server.join(5.0)
        listener.close()
