"""Frame source over the raw radiometric TCP frame stream (codec_framestream)."""

from __future__ import annotations

import contextlib
import math
import socket
import threading
from typing import Literal

import structlog
from pydantic import Field

from drivers import base
from drivers.base import (
    Backoff,
    DriverHealth,
    DriverState,
    Frame,
    HealthTracker,
    NewestWinsQueue,
    SecretStore,
    StrictSettings,
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


class Settings(StrictSettings):
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


class FrameStreamSource(base.Driver):
    """Reads frames in a background thread into a small queue; newest frames win."""

    def __init__(self, settings: Settings, secrets: SecretStore | None = None) -> None:
        self.settings = settings
        self.name = f"{settings.stream} (host={settings.host}:{settings.port})"
        self._health = HealthTracker(self.name)
        self._frames: NewestWinsQueue[Frame] = NewestWinsQueue(
            settings.queue_frames, self._health, "frames", "frames_dropped"
        )
        self._stop = threading.Event()
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
        self._thread = threading.Thread(
            target=self._run, name=f"frames-{self.settings.stream}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
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
        return self._frames.get(timeout_s)

    # ------------------------------------------------------------------ background

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                self._session(backoff)
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
                raw = self._recv_exactly(sock, HEADER.size)
                try:
                    header = parse_header(raw)
                except FrameValueError as exc:
                    self._skip(sock, unchecked_header(raw), str(exc))
                    continue
                payload = self._recv_exactly(sock, header.payload_len)
                size = (header.width, header.height)
                if self._size is None:
                    self._size = size
                elif size != self._size:
                    width, height = self._size
                    self._reject(
                        f"frame size {header.width}x{header.height} differs from "
                        f"{width}x{height} the stream started with"
                    )
                    continue
                image = decode_payload(header, payload)
                backoff.reset()
                frame = Frame(
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
                self._frames.put(frame)
        finally:
            sock.close()

    def _skip(self, sock: socket.socket, header: FrameHeader, reason: str) -> None:
        self._recv_exactly(sock, header.payload_len)
        self._reject(reason)

    def _reject(self, reason: str) -> None:
        # Counted and reported in health; the stream stays connected.
        self._health.error(f"{self.name}: frame rejected: {reason}", "frames_rejected")
        log.warning("frame rejected", device=self.name, reason=reason)

    def _recv_exactly(self, sock: socket.socket, n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            try:
                chunk = sock.recv(min(n - len(chunks), 1 << 20))
            except TimeoutError:
                raise _Disconnected(f"no data for {self.settings.stall_timeout_s} s") from None
            if not chunk:
                raise _Disconnected("server closed the stream")
            chunks += chunk
        return bytes(chunks)


Driver = FrameStreamSource
