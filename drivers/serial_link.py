"""One serial port owned by one worker thread: open with backoff, read, run requests, reconnect.

The serial drivers (Pelco-D, lidar, GNSS, Modbus relay) share this plumbing, their port
settings and their lifecycle (SerialPortSettings, SerialDriver) so each of them only
speaks its protocol. The worker thread is the only code that touches the port:
callers hand it work with ``call`` (wait for a result) or ``send`` (fire and forget),
which also gives RS-485 its half-duplex discipline for free. Every port is opened with
``serial.serial_for_url`` so a device path, a pty, ``socket://``, ``loop://`` or
``spy://`` all work unchanged.
"""

from __future__ import annotations

import abc
import queue
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Self, TypeVar

import serial
import structlog
from pydantic import Field, field_validator, model_validator

from drivers.base import (
    Backoff,
    DeviceUnavailable,
    Driver,
    DriverHealth,
    DriverState,
    HealthTracker,
    NamedThread,
    StrictSettings,
)

_log = structlog.get_logger(__name__)

T = TypeVar("T")

# The longest one idle read blocks. Queued work and stop wake the read at once
# (``cancel_read``) and idle hooks say when they are next due, so this only bounds how
# late a hook runs if a wake-up is ever missed.
_IDLE_MAX_S = 0.25
# Ports that cannot be woken (``socket://``) are polled at this interval instead: the
# latency with which queued work is picked up there.
_POLL_S = 0.02


class PortIO:
    """What work running on the worker thread may do with the port."""

    def __init__(self, port: serial.SerialBase, on_stray: Callable[[bytes], None]) -> None:
        self._port = port
        self._on_stray = on_stray

    def write(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def read(self, timeout_s: float) -> bytes:
        """Whatever arrives within ``timeout_s`` (at least one byte, or b"" on timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            waiting = self._port.in_waiting
            if waiting:
                return bytes(self._port.read(waiting))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b""
            self._port.timeout = remaining
            data = self._port.read(1)
            if data:
                return bytes(data)

    def drain(self) -> None:
        """Hand bytes already waiting (not an answer to what comes next) to the stray handler."""
        waiting = self._port.in_waiting
        if waiting:
            self._on_stray(bytes(self._port.read(waiting)))


@dataclass
class _Call(Generic[T]):
    fn: Callable[[PortIO], T]
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None
    cancelled: bool = False


class SerialLink:
    """A port kept open by a worker thread. Construction does no I/O; ``start`` begins.

    ``on_data(bytes)`` receives everything read while no call is running; ``on_connect(io)``
    runs on the worker after each (re)connection; ``on_idle(io)`` runs between reads and
    returns how many seconds until it is next due (None: only data or work can give it
    any). Between those the worker sleeps in the port's read; ``call``, ``send``, ``wake``
    and ``stop`` cut that sleep short, so a tower's idle ports cost no CPU.
    I/O failures inside these hooks or inside calls drop the connection, are recorded in
    health and are followed by a reconnect with backoff; they never reach the caller of
    ``call`` as anything but DeviceUnavailable.
    """

    def __init__(
        self,
        *,
        label: str,
        url: str,
        baudrate: int,
        health: HealthTracker,
        on_data: Callable[[bytes], None],
        on_connect: Callable[[PortIO], None] | None = None,
        on_idle: Callable[[PortIO], float | None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.label = label
        self._url = url
        self._baudrate = baudrate
        self._health = health
        self._on_data = on_data
        self._on_connect = on_connect
        self._on_idle = on_idle
        self._backoff = backoff or Backoff()
        self._calls: queue.Queue[_Call[object]] = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._ever_connected = False
        # The open port that ``wake`` may interrupt; guarded so a wake never writes into
        # the abort pipe of a port being closed (its descriptor could be reused).
        self._wake_lock = threading.Lock()
        self._wakeable: serial.SerialBase | None = None
        # Set by every wake: a read inside an exchange may swallow the port's wake-up, the
        # flag survives it.
        self._woken = threading.Event()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._health.set_state(DriverState.CONNECTING)
        self._thread = NamedThread(target=self._run, name=f"serial {self.label}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self.wake()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
        self._fail_pending("closed")
        self._health.set_state(DriverState.CLOSED)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def worker_dead(self) -> bool:
        """True when the worker thread ended although nobody stopped it."""
        thread = self._thread
        return thread is not None and not thread.is_alive() and not self._stop.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    # ----------------------------------------------------------------- work

    def call(self, fn: Callable[[PortIO], T], timeout_s: float) -> T:
        """Run ``fn`` on the worker with the port; raises DeviceUnavailable when the port is
        not open, the work did not finish within ``timeout_s`` or the port failed under it.
        ``fn`` may raise DeviceUnavailable itself (e.g. a reply timeout)."""
        if not self._connected.is_set():
            raise DeviceUnavailable(f"{self.label}: not connected ({self._last_error()})")
        item: _Call[T] = _Call(fn)
        self._calls.put(item)  # type: ignore[arg-type]
        self.wake()
        if not item.done.wait(timeout_s):
            item.cancelled = True
            self._health.count("timeouts")
            raise DeviceUnavailable(f"{self.label}: no answer within {timeout_s:.2f} s")
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    def send(self, data: bytes) -> None:
        """Queue bytes for writing without waiting; DeviceUnavailable when not connected."""
        if not self._connected.is_set():
            raise DeviceUnavailable(f"{self.label}: not connected ({self._last_error()})")
        self._calls.put(_Call(lambda io: io.write(data)))
        self.wake()

    def wake(self) -> None:
        """Cut the worker's idle read short: new work, or state an idle hook must see now."""
        self._woken.set()
        with self._wake_lock:
            port = self._wakeable
            if port is not None:
                try:
                    port.cancel_read()
                except (OSError, ValueError) as exc:  # the port died under us: the worker sees it
                    _log.debug("serial_wake_failed", device=self.label, error=str(exc))

    def _last_error(self) -> str:
        return self._health.snapshot().last_error or "no connection yet"

    def _fail_pending(self, reason: str) -> None:
        while True:
            try:
                item = self._calls.get_nowait()
            except queue.Empty:
                return
            item.error = DeviceUnavailable(f"{self.label}: {reason}")
            item.done.set()

    # ----------------------------------------------------------------- worker

    def _open(self) -> serial.SerialBase | None:
        try:
            port = serial.serial_for_url(self._url, baudrate=self._baudrate, timeout=_POLL_S)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._health.error(f"{self.label}: cannot open: {exc}", "open_failures")
            return None
        return port

    def _run(self) -> None:
        while not self._stop.is_set():
            port = self._open()
            if port is None:
                self._health.set_state(DriverState.CONNECTING)
                self._stop.wait(self._backoff.next_delay())
                continue
            io = PortIO(port, self._on_data)
            if hasattr(port, "cancel_read"):
                with self._wake_lock:
                    self._wakeable = port
            try:
                # connected before the reconnect is counted, so whoever sees the count can
                # send at once (calls queue until the connect hook below has run)
                self._connected.set()
                if self._ever_connected:
                    self._health.count("reconnects")
                    _log.info("serial_reconnected", device=self.label, port=self._url)
                else:
                    _log.info("serial_connected", device=self.label, port=self._url)
                self._ever_connected = True
                self._health.set_state(DriverState.OK)
                self._backoff.reset()
                if self._on_connect is not None:
                    self._on_connect(io)
                self._serve(port, io)
            # termios.error (e.g. tcdrain on a vanished pty or unplugged USB adapter) is
            # not an OSError, and must not end the worker thread for good
            except (serial.SerialException, OSError, termios.error) as exc:
                # not connected from the moment the loss is counted, so nobody who sees the
                # count can still send into the dead port
                self._connected.clear()
                self._health.error(f"{self.label}: connection lost: {exc}", "disconnects")
                self._health.set_state(DriverState.CONNECTING)
                _log.warning("serial_lost", device=self.label, port=self._url, error=str(exc))
            except Exception as exc:  # noqa: BLE001 - logged with traceback just below
                # The worker's outer boundary: a decoder or hook bug is logged with its
                # traceback, counted, and the port reopened; the worker never ends.
                self._connected.clear()
                self._health.error(
                    f"{self.label}: worker failed: {type(exc).__name__}: {exc}", "worker_failures"
                )
                self._health.set_state(DriverState.CONNECTING)
                _log.exception("serial_worker_failed", device=self.label, port=self._url)
            finally:
                self._connected.clear()
                with self._wake_lock:
                    self._wakeable = None
                self._fail_pending("connection lost")
                try:
                    port.close()
                except (serial.SerialException, OSError) as exc:
                    _log.debug("serial_close_failed", device=self.label, error=str(exc))
            self._stop.wait(self._backoff.next_delay())

    def _serve(self, port: serial.SerialBase, io: PortIO) -> None:
        longest_s = _IDLE_MAX_S if hasattr(port, "cancel_read") else _POLL_S
        while not self._stop.is_set():
            try:
                item = self._calls.get_nowait()
            except queue.Empty:
                item = None
            if item is not None:
                self._run_call(item, io)
                continue
            self._woken.clear()
            due_s = self._on_idle(io) if self._on_idle is not None else None
            if self._woken.is_set():
                continue  # woken while the hook ran: look at the work and the hook again
            # A wake from here on is kept by the port (a byte in its abort pipe) and ends
            # the read at once.
            port.timeout = longest_s if due_s is None else min(max(due_s, 0.0), longest_s)
            data = port.read(port.in_waiting or 1)
            if data:
                self._on_data(bytes(data))

    def _run_call(self, item: _Call[object], io: PortIO) -> None:
        if item.cancelled:
            return
        try:
            item.result = item.fn(io)
        except DeviceUnavailable as exc:
            item.error = exc
        except (serial.SerialException, OSError) as exc:
            item.error = DeviceUnavailable(f"{self.label}: connection lost: {exc}")
            item.done.set()
            raise
        except Exception as exc:
            item.error = DeviceUnavailable(f"{self.label}: internal error ({type(exc).__name__})")
            item.done.set()
            raise
        item.done.set()


class CounterSync:
    """Copies a decoder's cumulative counters into health as increments."""

    def __init__(self, health: HealthTracker, names: dict[str, str]) -> None:
        self._health = health
        self._names = names  # decoder attribute → health counter
        self._seen: dict[str, int] = {}

    def sync(self, decoder: object) -> None:
        for attribute, counter in self._names.items():
            value = int(getattr(decoder, attribute))
            delta = value - self._seen.get(attribute, 0)
            if delta > 0:
                self._health.count(counter, delta)
            self._seen[attribute] = value

    def forget(self) -> None:
        """The decoder was replaced: its counters start again from zero."""
        self._seen.clear()


# Standard rates of the serial devices a tower carries (RS-232/485 UARTs, USB adapters).
BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


def check_baudrate(value: int) -> int:
    """Pydantic field validator helper: a standard baud rate or a ValueError naming them."""
    if value not in BAUD_RATES:
        raise ValueError(
            f"{value} is not a baud rate; expected one of {', '.join(map(str, BAUD_RATES))}"
        )
    return value


class SerialPortSettings(StrictSettings):
    """The port and reconnect options every serial device's config section carries.

    A device whose port or line speed wants a different description or default
    redeclares that field; the validators still apply to it.
    """

    port: str = Field(min_length=1, description="serial device or pyserial URL")
    baudrate: int = Field(9600, description="line speed in baud")
    reconnect_initial_s: float = Field(
        0.5, ge=0.01, le=60.0, description="first delay before reopening a lost port"
    )
    reconnect_max_s: float = Field(
        30.0, ge=0.05, le=600.0, description="longest delay between reopen attempts"
    )

    _check_baud = field_validator("baudrate")(check_baudrate)

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be ≥ reconnect_initial_s")
        return self


class SerialDriver(Driver):
    """A driver whose device sits on one SerialLink: lifecycle and health come from here.

    ``section`` is the config section (``gnss``, ``lidar``, ...): it names the device in
    messages and health. A subclass speaks its protocol in the link's hooks, which run on
    the worker thread once ``open`` has started it.
    """

    def __init__(self, section: str, settings: SerialPortSettings) -> None:
        self.label = f"{section} ({section}.port={settings.port})"
        self._health = HealthTracker(section)
        self._link = SerialLink(
            label=self.label,
            url=settings.port,
            baudrate=settings.baudrate,
            health=self._health,
            on_data=self._on_data,
            on_connect=self._on_connect,
            on_idle=self._on_idle,
            backoff=Backoff(settings.reconnect_initial_s, settings.reconnect_max_s),
        )

    @abc.abstractmethod
    def _on_data(self, data: bytes) -> None:
        """Bytes read while no call was running."""

    @abc.abstractmethod
    def _on_connect(self, io: PortIO) -> None:
        """The port was (re)opened."""

    @abc.abstractmethod
    def _on_idle(self, io: PortIO) -> float | None:
        """Between reads: time for heartbeats, deadlines and silence checks. Returns the
        seconds until it is next due, None when only data or calls can make it due."""

    def _wake_worker(self) -> None:
        """State an idle hook reads was changed from outside the worker: run it now."""
        self._link.wake()

    def open(self) -> None:
        self._link.start()

    def close(self) -> None:
        self._link.stop()

    def health(self) -> DriverHealth:
        if self._link.worker_dead:
            # Never reached through the worker's own boundary, but a dead worker must
            # not keep reading healthy.
            self._health.set_state(DriverState.FAILED)
            self._health.error(f"{self.label}: serial worker thread died", "worker_failures")
        return self._health.snapshot()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._link.wait_connected(timeout_s)
