"""Frame source over the raw radiometric TCP frame stream (codec_framestream).

The reader thread only moves bytes: each payload is received straight into a
preallocated buffer and queued with its header. The CRC check and the decode happen in
the consumer, on ``read`` or ``newest``, for the frames it actually takes. A visible
stream whose frames are wanted only for a snapshot therefore costs the socket copy and
nothing else; a thermal stream read at the full rate is decoded once per frame, straight
into the array the detector gets.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

import structlog
from pydantic import Field

from drivers import base
from drivers.base import (
    Backoff,
    CameraStreamSettings,
    DriverHealth,
    DriverState,
    Frame,
    HealthTracker,
    NamedThread,
    SecretStore,
    StreamDemand,
)
from drivers.codec_framestream import (
    HEADER,
    KINDS,
    FrameHeader,
    FrameStreamError,
    FrameValueError,
    decode_payload,
    hello,
    parse_header,
    unchecked_header,
)

log = structlog.get_logger(__name__)


class Settings(CameraStreamSettings):
    _camera_field = "stream"

    type: Literal["frame_stream"]
    host: str = Field("127.0.0.1", min_length=1, description="frame server host")
    port: int = Field(ge=1, le=65535, description="frame server TCP port")
    stream: Literal["thermal", "visible"] = Field("thermal", description="which stream to ask for")
    connect_timeout_s: float = Field(3.0, gt=0.0, le=60.0, description="TCP connect timeout")
    stall_timeout_s: float = Field(
        5.0, gt=0.0, le=120.0, description="no frame this long: reconnect"
    )
    queue_frames: int = Field(4, ge=1, le=256, description="frames buffered; older ones dropped")


class _Disconnected(Exception):
    """The server closed the connection or stalled."""


@dataclass
class _Slot:
    """One payload buffer and, once received, the header it belongs to."""

    buffer: bytearray
    header: FrameHeader | None = None


class _PayloadRing:
    """Received payloads waiting for the consumer, in buffers that are reused.

    ``depth`` payloads wait at most; when another arrives the oldest is dropped (a fire
    watch wants the newest view, not a backlog). The ring holds ``depth + 2`` buffers:
    the waiting ones, the one the reader fills and the one the consumer decodes, so the
    reader never allocates while the frame size stays the same. Payloads offered and
    dropped are counted in health as ``frames`` and ``frames_dropped``.
    """

    def __init__(self, depth: int, health: HealthTracker) -> None:
        self._depth = depth
        self._health = health
        self._ready = threading.Condition()
        self._waiting: deque[_Slot] = deque()
        self._free = [_Slot(bytearray()) for _ in range(depth + 2)]

    def acquire(self, size: int) -> _Slot:
        """A buffer of ``size`` bytes for the reader to fill."""
        with self._ready:
            if self._free:
                slot = self._free.pop()
            elif self._waiting:  # more consumers than the ring was built for: drop one
                slot = self._waiting.popleft()
                self._health.count("frames_dropped")
            else:
                slot = _Slot(bytearray())
        if len(slot.buffer) != size:
            slot.buffer = bytearray(size)
        slot.header = None
        return slot

    def commit(self, slot: _Slot, header: FrameHeader) -> None:
        """Queue a filled buffer; the oldest waiting one goes when the ring is full."""
        slot.header = header
        self._health.count("frames")
        with self._ready:
            self._waiting.append(slot)
            if len(self._waiting) > self._depth:
                self._free.append(self._waiting.popleft())
                self._health.count("frames_dropped")
            self._ready.notify()

    def release(self, slot: _Slot) -> None:
        """Give a buffer back once its payload is decoded or refused."""
        with self._ready:
            self._free.append(slot)

    def take(self, timeout_s: float, *, newest: bool) -> _Slot | None:
        """The oldest waiting payload (or, with ``newest``, the newest, dropping the rest),
        or None when none came within ``timeout_s``. The caller releases it."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._waiting, max(timeout_s, 0.0)):
                return None
            if newest:
                while len(self._waiting) > 1:
                    self._free.append(self._waiting.popleft())
                    self._health.count("frames_dropped")
            return self._waiting.popleft()


class FrameStreamSource(base.Driver):
    """Receives frames in a background thread into a small ring; newest frames win.

    ``read`` hands out every frame in order (the thermal camera); ``newest`` only the
    latest, decoding nothing else (the visible camera, wanted for snapshots).
    """

    def __init__(self, settings: Settings, secrets: SecretStore | None = None) -> None:
        self.settings = settings
        self.name = f"{settings.stream} (host={settings.host}:{settings.port})"
        self._health = HealthTracker(self.name)
        self._ring = _PayloadRing(settings.queue_frames, self._health)
        self._header_buffer = bytearray(HEADER.size)
        self._stop = threading.Event()
        self._demand = StreamDemand(settings.reads_on_demand, settings.probe_every_s)
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        # The frame size the stream started with; frames of another size are dropped
        # (the detectors and the pose maths are built for one size).
        self._size: tuple[int, int] | None = None

    def open(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._health.set_state(DriverState.CONNECTING)
        self._thread = NamedThread(
            target=self._run, name=f"frames-{self.settings.stream}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._demand.interrupt()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the peer
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._health.set_state(DriverState.CLOSED)

    def health(self) -> DriverHealth:
        return self._health.snapshot()

    def read(self, timeout_s: float) -> Frame | None:
        self._demand.want(timeout_s + StreamDemand.PROBE_HOLD_S)
        return self._take(timeout_s, newest=False)

    def newest(self) -> Frame | None:
        """The latest frame received since the last call, or None; older ones are dropped
        undecoded."""
        return self._take(0.0, newest=True)

    def want(self, hold_s: float) -> None:
        self._demand.want(hold_s)

    def _take(self, timeout_s: float, *, newest: bool) -> Frame | None:
        deadline = time.monotonic() + timeout_s
        while True:
            slot = self._ring.take(deadline - time.monotonic(), newest=newest)
            if slot is None:
                return None
            try:
                frame = self._decode(slot)
            finally:
                self._ring.release(slot)
            if frame is not None or newest:
                return frame

    def _decode(self, slot: _Slot) -> Frame | None:
        header = slot.header
        assert header is not None
        try:
            image = decode_payload(header, slot.buffer)
        except FrameStreamError as exc:
            # The length framing held (the next header parsed), so the link is sound and
            # stays up; this one frame is lost.
            self._reject(str(exc))
            return None
        return Frame(
            image=image,
            t=header.t,
            seq=header.seq,
            radiometric=image.dtype == "float32",
            pan_deg=header.pan_deg if header.has_pose else math.nan,
            tilt_deg=header.tilt_deg if header.has_pose else math.nan,
            hfov_deg=header.hfov_deg if header.has_pose else math.nan,
            vfov_deg=header.vfov_deg if header.has_pose else math.nan,
            shutter=header.shutter,
        )

    # ------------------------------------------------------------------ background

    def _run(self) -> None:
        backoff = Backoff()
        while self._demand.wait(self._stop):
            try:
                self._session(backoff)
                continue  # left on purpose: stopping, or no one wants frames now
            except (OSError, _Disconnected, FrameStreamError) as exc:
                if self._stop.is_set():
                    # close() shut the socket down on purpose: the end of the stream is expected
                    break
                counter = "protocol_errors" if isinstance(exc, FrameStreamError) else "disconnects"
                self._health.error(f"{self.name}: {exc}", counter)
                self._health.set_state(DriverState.FAILED)
                log.warning("frame stream lost", device=self.name, error=str(exc))
            finally:
                self._sock = None
            delay = backoff.next_delay()
            if self._stop.wait(delay):
                break
            self._health.count("reconnects")

    def _session(self, backoff: Backoff) -> None:
        s = self.settings
        sock = socket.create_connection((s.host, s.port), timeout=s.connect_timeout_s)
        self._sock = sock
        try:
            sock.settimeout(s.stall_timeout_s)
            sock.sendall(hello(KINDS[s.stream]))
            self._health.set_state(DriverState.OK)
            log.info("frame stream connected", device=self.name)
            while not self._stop.is_set():
                if not self._demand.wanted():
                    self._health.set_state(DriverState.IDLE)
                    log.info("frame stream idle until wanted", device=self.name)
                    return
                raw = self._header_buffer
                self._recv_into(sock, memoryview(raw))
                try:
                    header = parse_header(raw)
                except FrameValueError as exc:
                    self._skip(sock, unchecked_header(raw), str(exc))
                    continue
                size = (header.width, header.height)
                if self._size is None:
                    self._size = size
                elif size != self._size:
                    width, height = self._size
                    self._skip(
                        sock,
                        header,
                        f"frame size {header.width}x{header.height} differs from "
                        f"{width}x{height} the stream started with",
                    )
                    continue
                slot = self._ring.acquire(header.payload_len)
                try:
                    self._recv_into(sock, memoryview(slot.buffer))
                except BaseException:
                    self._ring.release(slot)
                    raise
                self._ring.commit(slot, header)
                backoff.reset()
        finally:
            sock.close()

    def _skip(self, sock: socket.socket, header: FrameHeader, reason: str) -> None:
        left = header.payload_len
        scratch = memoryview(bytearray(min(left, 1 << 16) or 1))
        while left > 0:
            chunk = scratch[: min(left, len(scratch))]
            self._recv_into(sock, chunk)
            left -= len(chunk)
        self._reject(reason)

    def _reject(self, reason: str) -> None:
        # Counted and reported in health; the stream stays connected.
        self._health.error(f"{self.name}: frame rejected: {reason}", "frames_rejected")
        log.warning("frame rejected", device=self.name, reason=reason)

    def _recv_into(self, sock: socket.socket, view: memoryview) -> None:
        """Fill ``view`` from the socket: no allocation, no copy."""
        got = 0
        while got < len(view):
            try:
                n = sock.recv_into(view[got:])
            except TimeoutError:
                raise _Disconnected(f"no data for {self.settings.stall_timeout_s} s") from None
            if n == 0:
                raise _Disconnected("server closed the stream")
            got += n


Driver = FrameStreamSource
