"""A TCP server speaking the radiometric frame stream (drivers/codec_framestream.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import structlog

from drivers.codec_framestream import (
    HELLO_PREFIX,
    KIND_THERMAL,
    FrameStreamError,
    encode_frame,
    parse_hello,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ProducedFrame:
    image: np.ndarray  # float32 Kelvin, or uint8 mono/BGR
    t: float
    pan_deg: float
    tilt_deg: float
    hfov_deg: float
    vfov_deg: float
    shutter: bool = False


FrameProducer = Callable[[str], ProducedFrame]  # "thermal" | "visible" → frame


class FrameStreamServer:
    """Serves each client the stream it asked for at ``fps`` frames per wall second.

    Fault switches for tests: ``drop()`` closes every connection and refuses new ones
    until ``restore()``; ``stall()`` keeps connections open but stops sending;
    ``stamp_step_s`` is added to every frame's timestamp, as a camera whose own clock
    was stepped (the world and the head keep the tower's time).
    """

    def __init__(
        self, producer: FrameProducer, *, fps: float, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self._producer = producer
        self._period_s = 1.0 / fps
        self._host = host
        self._requested_port = port
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._stalled = threading.Event()
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._accept_thread: threading.Thread | None = None
        self.port = port
        self.frames_sent = 0
        self.stamp_step_s = 0.0

    def start(self) -> None:
        self._stop.clear()
        listener = socket.create_server((self._host, self._requested_port or self.port))
        listener.settimeout(0.2)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept, name="frame-server", daemon=True
        )
        self._accept_thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5.0)
            self._accept_thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._close_clients()

    def client_count(self) -> int:
        """Clients connected now (a client that left counts until the next frame to it)."""
        with self._lock:
            return len(self._clients)

    def drop(self) -> None:
        """Simulate the camera going away: connections close, new ones are refused."""
        self.stop()

    def restore(self) -> None:
        self.start()

    def stall(self, stalled: bool = True) -> None:
        if stalled:
            self._stalled.set()
        else:
            self._stalled.clear()

    def _close_clients(self) -> None:
        with self._lock:
            clients = list(self._clients)
            self._clients.clear()
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()

    def _accept(self) -> None:
        assert self._listener is not None
        listener = self._listener
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            with self._lock:
                self._clients.add(client)
            threading.Thread(
                target=self._serve, args=(client,), name="frame-client", daemon=True
            ).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            client.settimeout(5.0)
            greeting = b""
            while len(greeting) < len(HELLO_PREFIX) + 1:
                chunk = client.recv(len(HELLO_PREFIX) + 1 - len(greeting))
                if not chunk:
                    return
                greeting += chunk
            kind = parse_hello(greeting)
            stream = "thermal" if kind == KIND_THERMAL else "visible"
            seq = 0
            next_due = time.monotonic()
            while not self._stop.is_set():
                if self._stalled.is_set():
                    time.sleep(0.05)
                    next_due = time.monotonic()
                    continue
                frame = self._producer(stream)
                client.sendall(
                    encode_frame(
                        kind,
                        frame.image,
                        seq,
                        frame.t + self.stamp_step_s,
                        pan_deg=frame.pan_deg,
                        tilt_deg=frame.tilt_deg,
                        hfov_deg=frame.hfov_deg,
                        vfov_deg=frame.vfov_deg,
                        shutter=frame.shutter,
                    )
                )
                seq += 1
                self.frames_sent += 1
                next_due += self._period_s
                delay = next_due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_due = time.monotonic()  # rendering is the bottleneck: don't burst
        except (OSError, FrameStreamError) as exc:
            if not self._stop.is_set():
                log.info("frame client gone", error=str(exc))
        finally:
            with self._lock:
                self._clients.discard(client)
            client.close()
