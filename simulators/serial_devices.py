"""Serial devices on pseudo-terminals: the shared pty plumbing and fault switches of every simulator.

A simulator owns the master side of a pty pair and serves it from one thread; the code
under test opens the slave by path, exactly as it would open /dev/ttyUSB0. ``port_path``
is a symlink that stays the same across ``drop()``/``restore()``, because a new pty pair
gets a new /dev/pts number, as a USB adapter that re-enumerates gets a new ttyUSB. The
simulator keeps its own slave descriptor open so the master never sees EIO while the
driver is away, and writes to the master never block: with nobody reading, bytes are
lost, as on a real UART.
"""

from __future__ import annotations

import abc
import errno
import heapq
import itertools
import os
import select
import shutil
import tempfile
import threading
import time
import tty
from collections.abc import Callable

import structlog

_log = structlog.get_logger(__name__)

_POLL_S = 0.01
# Longest a write waits for a full pty buffer to drain before the reader counts as gone.
_WRITE_WAIT_S = 0.2


class PtySerialDevice(abc.ABC):
    """Base of the pty simulators: subclasses implement ``handle_bytes`` and may ``tick``."""

    def __init__(self, name: str, link_path: str | None = None) -> None:
        self.name = name
        self._own_dir: str | None = None
        if link_path is None:
            self._own_dir = tempfile.mkdtemp(prefix="towerwatch-sim-")
            link_path = os.path.join(self._own_dir, name)
        self._link_path = link_path
        self._io_lock = threading.RLock()
        self._master: int | None = None
        self._slave: int | None = None
        self._tty_path: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._silent = False
        self._stalled = False
        self._corrupt_next = 0
        self._truncate_next = 0
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self.bytes_received = 0
        self.bytes_lost = 0

    # ----------------------------------------------------------------- lifecycle

    @property
    def port_path(self) -> str:
        """The path a driver opens; stable across drop()/restore()."""
        return self._link_path

    @property
    def tty_path(self) -> str | None:
        """The current /dev/pts path, None while dropped."""
        return self._tty_path

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self.restore()
        self._thread = threading.Thread(target=self._serve, name=f"sim {self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(2.0)
        self.drop()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self) -> PtySerialDevice:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- fault switches

    def drop(self) -> None:
        """Unplug: close the pty pair and remove the path, so reads fail and opens find nothing."""
        with self._io_lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None
            self._tty_path = None
            if os.path.islink(self._link_path):
                os.unlink(self._link_path)

    def restore(self) -> None:
        """Plug back in: a fresh pty pair behind the same ``port_path``."""
        with self._io_lock:
            if self._master is not None:
                return
            master, slave = os.openpty()
            tty.setraw(master)
            os.set_blocking(master, False)
            self._master, self._slave = master, slave
            self._stalled = False
            self._tty_path = os.ttyname(slave)
            tmp_link = f"{self._link_path}.{os.getpid()}.tmp"
            os.symlink(self._tty_path, tmp_link)
            os.replace(tmp_link, self._link_path)
        self.on_restore()

    @property
    def dropped(self) -> bool:
        return self._master is None

    def inject_garbage(self, data: bytes) -> None:
        """Write raw bytes onto the line, as noise or a foreign talker would."""
        self.write(data, framed=False)

    def corrupt_next(self, n: int = 1) -> None:
        """Flip a bit in the checksum of the next ``n`` frames the device sends."""
        self._corrupt_next += n

    def truncate_next(self, n: int = 1) -> None:
        """Send only the first half of the next ``n`` frames."""
        self._truncate_next += n

    def go_silent(self) -> None:
        """Keep the port open but answer and emit nothing (firmware hang, cut TX wire)."""
        self._silent = True

    def speak(self) -> None:
        self._silent = False

    @property
    def silent(self) -> bool:
        return self._silent

    # ----------------------------------------------------------------- for subclasses

    @abc.abstractmethod
    def handle_bytes(self, data: bytes) -> None:
        """Bytes the driver wrote."""

    def tick(self) -> None:
        """Called every few milliseconds on the serving thread (periodic output)."""
        return None

    def on_restore(self) -> None:
        """Called after the device was (re)plugged, e.g. to reset state after a power cycle."""
        return None

    def schedule(self, delay_s: float, action: Callable[[], None]) -> None:
        """Run ``action`` on the serving thread after ``delay_s`` of wall time."""
        with self._io_lock:
            heapq.heappush(
                self._timers, (time.monotonic() + delay_s, next(self._timer_seq), action)
            )

    def write(self, data: bytes, framed: bool = True) -> None:
        """Send bytes to the driver; a frame is subject to the corrupt/truncate switches.

        ``corrupt_checksum`` decides what "corrupt" means for a protocol; the default
        flips the lowest bit of the last byte, which every protocol here uses for its
        checksum.
        """
        if framed:
            if self._silent:
                return
            if self._corrupt_next > 0:
                self._corrupt_next -= 1
                data = self.corrupt_checksum(data)
            if self._truncate_next > 0:
                self._truncate_next -= 1
                data = data[: max(1, len(data) // 2)]
        with self._io_lock:
            master = self._master
            if master is None:
                self.bytes_lost += len(data)
                return
            view = memoryview(data)
            while view:
                try:
                    written = os.write(master, view)
                except BlockingIOError:
                    # The line buffer is full. A reader drains it within milliseconds, so
                    # wait for it, as a UART's flow would; with nobody reading, give up and
                    # stop waiting until the buffer drains again: those bytes are lost.
                    if self._stalled or not select.select([], [master], [], _WRITE_WAIT_S)[1]:
                        self._stalled = True
                        self.bytes_lost += len(view)
                        return
                    continue
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    self.bytes_lost += len(view)
                    return
                view = view[written:]
            self._stalled = False

    def corrupt_checksum(self, frame: bytes) -> bytes:
        return frame[:-1] + bytes((frame[-1] ^ 0x01,))

    # ----------------------------------------------------------------- serving

    def _serve(self) -> None:
        while not self._stop.is_set():
            master = self._master
            if master is None:
                self._stop.wait(_POLL_S)
                self._run_timers()
                continue
            try:
                readable, _, _ = select.select([master], [], [], _POLL_S)
                data = os.read(master, 4096) if readable else b""
            except (OSError, ValueError):
                # The pair was closed by drop() between the check and the read.
                data = b""
            if data:
                self.bytes_received += len(data)
                if not self._silent:
                    self.handle_bytes(data)
            self._run_timers()
            self.tick()

    def _run_timers(self) -> None:
        now = time.monotonic()
        while True:
            with self._io_lock:
                if not self._timers or self._timers[0][0] > now:
                    return
                _, _, action = heapq.heappop(self._timers)
            action()
