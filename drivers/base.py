"""The written protocols every device driver implements, and their shared value types.

A driver is chosen by the ``type`` field of its config section (see drivers.registry).
Constructors do no I/O; ``open()`` connects, ``close()`` releases, and every driver is
a context manager. Drivers reconnect by themselves with backoff and report a
``DriverHealth`` for the status topic. They never raise for a device that is merely
absent or noisy: they count, log and report; only usage errors raise.
"""

from __future__ import annotations

import abc
import ctypes
import enum
import functools
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Generic, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class StrictSettings(BaseModel):
    """Base of every config section: unknown keys refused, frozen after load."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class CameraStreamSettings(StrictSettings):
    """The keys every camera stream driver shares: whether it is read on demand."""

    # the field that names which camera a section serves ("thermal" or "visible")
    _camera_field: ClassVar[str]

    on_demand: bool | None = Field(
        None,
        description="receive frames only while they are wanted (a confirmation, a "
        "snapshot); unset: yes for the visible camera, no for the thermal",
    )
    probe_every_s: float = Field(
        600.0, ge=10.0, le=86400.0, description="an on-demand stream is opened this often"
    )

    @property
    def reads_on_demand(self) -> bool:
        if self.on_demand is not None:
            return self.on_demand
        return bool(getattr(self, self._camera_field) == "visible")


class DriverError(Exception):
    """A device failed in a way its caller must hear about; the message names the device."""


class DeviceUnavailable(DriverError):
    """The device is absent, silent or refusing: the caller may retry later."""


class SecretStore(Protocol):
    """Where drivers read passwords and keys from (never from the YAML)."""

    def read(self, name: str) -> str:
        """The secret called ``name``; raises DriverError naming it when it is missing."""
        ...


_PR_SET_NAME = 15  # prctl(2): name the calling thread, 15 bytes at most


@functools.cache
def _prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: threads keep the process's name
        return None


class NamedThread(threading.Thread):
    """A thread whose name the kernel knows too (``top -H``, ``/proc/PID/task/*/comm``),
    so a technician or a benchmark can see which thread spends the gateway's CPU."""

    def run(self) -> None:
        prctl = _prctl()
        if prctl is not None:
            prctl(_PR_SET_NAME, self.name.encode()[:15], 0, 0, 0)
        super().run()


class DriverState(enum.StrEnum):
    CLOSED = "closed"
    CONNECTING = "connecting"
    OK = "ok"
    IDLE = "idle"  # a stream read on demand, left until it is wanted; it answered last time
    FAILED = "failed"


@dataclass
class DriverHealth:
    """What a driver tells the status topic about itself."""

    name: str
    state: DriverState = DriverState.CLOSED
    last_error: str | None = None
    last_error_at: float | None = None
    counters: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "counters": dict(self.counters),
        }


class HealthTracker:
    """Thread-safe health bookkeeping shared by the drivers (state, last error, counters)."""

    def __init__(self, name: str) -> None:
        self._lock = threading.Lock()
        self._health = DriverHealth(name=name)

    def set_state(self, state: DriverState) -> None:
        with self._lock:
            self._health.state = state

    def error(self, message: str, counter: str = "errors") -> None:
        with self._lock:
            self._health.last_error = message
            self._health.last_error_at = time.time()
            self._health.counters[counter] = self._health.counters.get(counter, 0) + 1

    def count(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self._health.counters[counter] = self._health.counters.get(counter, 0) + n

    def snapshot(self) -> DriverHealth:
        with self._lock:
            h = self._health
            return DriverHealth(h.name, h.state, h.last_error, h.last_error_at, dict(h.counters))


class Backoff:
    """Exponential reconnect delay: 0.5 s doubling to ``max_s``, reset on success."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._next_s = initial_s

    def next_delay(self) -> float:
        delay = self._next_s
        self._next_s = min(self._next_s * 2.0, self.max_s)
        return delay

    def reset(self) -> None:
        self._next_s = self.initial_s


T = TypeVar("T")


class StreamDemand:
    """When a camera stream that is read on demand is wanted.

    A visible camera's frames are needed only around a confirmation or a snapshot;
    receiving and checking a megabyte a frame the rest of the time costs the gateway a
    core's worth of small work for nothing. The consumer calls ``want(hold_s)``; the
    reader thread waits in ``wait()`` while no one wants frames, reads while ``wanted()``
    and then leaves the stream. Every ``probe_every_s`` the stream is wanted for a moment
    by itself, so a camera that died shows in status before an alarm needs it. A stream
    that is not on demand is always wanted.
    """

    PROBE_HOLD_S = 3.0  # long enough to connect and receive a frame or two

    def __init__(self, on_demand: bool, probe_every_s: float = 600.0) -> None:
        self.on_demand = on_demand
        self.probe_every_s = probe_every_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._until = 0.0
        self._next_probe = 0.0  # the first probe is due at once: is the camera there?

    def want(self, hold_s: float) -> None:
        if not self.on_demand:
            return  # always wanted; the thermal stream's read calls this every frame
        with self._lock:
            self._until = max(self._until, time.monotonic() + hold_s)
            self._next_probe = max(self._next_probe, self._until + self.probe_every_s)
        self._wake.set()

    def wanted(self) -> bool:
        if not self.on_demand:
            return True
        with self._lock:
            return time.monotonic() < self._until

    def wait(self, stop: threading.Event) -> bool:
        """Block until the stream is wanted (True) or ``stop`` is set (False); a probe
        falls due ``probe_every_s`` after the stream was last wanted."""
        while not stop.is_set():
            self._wake.clear()
            if self.wanted():
                return True
            left = self._next_probe - time.monotonic()
            if left <= 0:
                self.want(self.PROBE_HOLD_S)
                continue
            self._wake.wait(left)
        return False

    def interrupt(self) -> None:
        """Wake ``wait`` so it sees its stop event (the driver is closing)."""
        self._wake.set()


class NewestWinsQueue(Generic[T]):
    """A bounded queue from a reader thread to its consumer where the newest items win.

    When the consumer falls behind, the oldest item is dropped: a fire watch wants the
    newest view, not a growing backlog. Items offered and items dropped are counted in
    health under the names given.
    """

    def __init__(self, size: int, health: HealthTracker, counter: str, dropped_counter: str):
        self._queue: queue.Queue[T] = queue.Queue(maxsize=size)
        self._health = health
        self._counter = counter
        self._dropped_counter = dropped_counter

    def put(self, item: T) -> None:
        """Add ``item``, dropping the oldest when full; never blocks."""
        self._health.count(self._counter)
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self._health.count(self._dropped_counter)
                except queue.Empty:
                    continue

    def get(self, timeout_s: float) -> T | None:
        """The oldest item waiting, or None when none came within ``timeout_s``."""
        try:
            return self._queue.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            return None

    def take_newest(self) -> T | None:
        """The newest item waiting, or None; the older ones are dropped (and counted)."""
        newest: T | None = None
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return newest
            if newest is not None:
                self._health.count(self._dropped_counter)
            newest = item


class Driver(abc.ABC):
    """Context-manager plumbing shared by every driver."""

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def health(self) -> DriverHealth: ...

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class Frame:
    """One image from a camera.

    ``image`` is float32 Kelvin (H, W) when ``radiometric``; otherwise uint8 (H, W) for
    AGC thermal video or uint8 (H, W, 3) BGR for a visible camera. ``t`` is the source's
    own clock in unix seconds (UTC): in the field the camera's, against a simulated tower
    the tower's. Pose fields are the metadata the stream carried, NaN when it carried none.
    ``shutter`` is true while a non-uniformity correction is in progress (frame unusable).
    """

    image: np.ndarray
    t: float
    seq: int
    radiometric: bool
    pan_deg: float = float("nan")
    tilt_deg: float = float("nan")
    hfov_deg: float = float("nan")
    vfov_deg: float = float("nan")
    shutter: bool = False


@runtime_checkable
class FrameSource(Protocol):
    """A thermal or visible camera stream."""

    def open(self) -> None: ...
    def close(self) -> None: ...
    def health(self) -> DriverHealth: ...

    def read(self, timeout_s: float) -> Frame | None:
        """The next frame, or None when none came within ``timeout_s`` (health says why)."""
        ...

    def newest(self) -> Frame | None:
        """The latest frame received since the last call, or None, without waiting; the
        frames before it are dropped. For a stream whose frames are wanted only now and
        then (the visible camera's, for snapshots): a source may decode only this one."""
        ...

    def want(self, hold_s: float) -> None:
        """Frames will be asked for within ``hold_s`` from now. A source read on demand
        (``on_demand``) receives only while wanted, and ``read`` wants frames by itself;
        a source that always reads has nothing to do."""
        ...


# --------------------------------------------------------------------------- PTZ


@dataclass(frozen=True)
class PtzStatus:
    """Where the head points, in true azimuth / elevation after calibration."""

    pan_deg: float
    tilt_deg: float
    hfov_deg: float
    moving: bool
    t: float  # the device's time of the reading, unix seconds (UTC)


@runtime_checkable
class PtzHead(Protocol):
    """A pan-tilt(-zoom) head. Angles: pan = true azimuth clockwise from north, tilt =
    elevation (negative below the horizon), hfov = horizontal field of view of the
    thermal camera (the zoom), all in degrees."""

    def open(self) -> None: ...
    def close(self) -> None: ...
    def health(self) -> DriverHealth: ...

    def absolute_move(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None = None) -> None: ...
    def relative_move(self, dpan_deg: float, dtilt_deg: float) -> None: ...

    def continuous_move(self, pan_speed: float, tilt_speed: float, deadline_s: float) -> None:
        """Move at a speed in [-1, 1] of full speed; stops on its own after ``deadline_s``."""
        ...

    def stop(self) -> None: ...
    def status(self) -> PtzStatus: ...
    def presets(self) -> Mapping[str, str]:
        """Preset token → name."""
        ...

    def goto_preset(self, token: str) -> None: ...
    def set_preset(self, name: str) -> str: ...


# --------------------------------------------------------------------------- lidar


@dataclass(frozen=True)
class LidarProfile:
    """One backscatter profile: ``bins[i]`` is the return at range first_bin_m + i·bin_m."""

    t: float
    azimuth_deg: float
    elevation_deg: float
    first_bin_m: float
    bin_m: float
    bins: np.ndarray  # float32 raw counts, background not removed


@runtime_checkable
class SmokeLidar(Protocol):
    def open(self) -> None: ...
    def close(self) -> None: ...
    def health(self) -> DriverHealth: ...

    def request_scan(self, azimuth_deg: float, elevation_deg: float, shots: int) -> None: ...
    def read_profile(self, timeout_s: float) -> LidarProfile | None: ...


# --------------------------------------------------------------------------- GNSS


@dataclass(frozen=True)
class GnssFix:
    t: float
    lat: float
    lon: float
    alt_m: float
    fix_quality: int
    satellites: int
    hdop: float


@runtime_checkable
class Gnss(Protocol):
    def open(self) -> None: ...
    def close(self) -> None: ...
    def health(self) -> DriverHealth: ...

    def latest_fix(self) -> GnssFix | None:
        """The newest trusted fix (real fix only, never 0,0), or None."""
        ...


# --------------------------------------------------------------------------- relay


@runtime_checkable
class RelayOutput(Protocol):
    def open(self) -> None: ...
    def close(self) -> None: ...
    def health(self) -> DriverHealth: ...

    def set_output(self, on: bool) -> None: ...
    def output(self) -> bool | None:
        """The last state the device confirmed, None when unknown."""
        ...
