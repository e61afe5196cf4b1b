"""The daemon's one clock: the system clock in the field, the camera's clock in simulation.

Against a simulated tower the tower's own clock (carried by every frame's timestamp) is
the truth, so a tower running N× faster than real time is followed unchanged. Nothing in
the daemon sleeps on wall time to wait for an event in the world: it waits for frames.

Two more readings come from the same object so tests can step them: `monotonic()` for
every duration of the process itself (status period, watchdog, frame staleness, the
run's deadline; a wall-clock step must not stall or hurry them) and `utc()` for the
heartbeat stamp, which is the gateway's real time whatever the tower clock says.
"""

from __future__ import annotations

import math
import time
from typing import Literal, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Tower time: UTC unix seconds of the world the detectors see."""
        ...

    def observe_frame(self, t: float) -> None:
        """A frame stamped ``t`` arrived."""
        ...

    def monotonic(self) -> float:
        """Seconds that never step, for durations."""
        ...

    def utc(self) -> float:
        """The gateway's UTC unix seconds."""
        ...


class SystemClock:
    """The gateway's clock (NTP- or GNSS-disciplined in the field)."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def utc(self) -> float:
        return time.time()

    def observe_frame(self, t: float) -> None:
        """The system clock does not follow the camera."""


class CameraClock:
    """Time of the newest frame; never goes backwards (a late frame does not rewind it)."""

    def __init__(self) -> None:
        self._t = 0.0

    def now(self) -> float:
        return self._t

    def observe_frame(self, t: float) -> None:
        if t > self._t:
            self._t = t

    def monotonic(self) -> float:
        return time.monotonic()

    def utc(self) -> float:
        return time.time()

    @property
    def started(self) -> bool:
        return self._t > 0.0


def clock_for(time_source: Literal["system", "camera"]) -> Clock:
    """The clock `time_source` in the config names."""
    return CameraClock() if time_source == "camera" else SystemClock()


class RunDeadline:
    """When a run with `--duration` is over, whatever the frames do.

    The duration counts in tower time from the first frame, so a simulated tower at N×
    speed ends after duration/N wall seconds. Before the first frame, and whenever frames
    stop (a camera tower's clock then freezes), the rest of it runs on the monotonic
    clock from the last frame: a dead camera cannot keep the run alive.
    """

    def __init__(self, duration_s: float | None, started_mono: float) -> None:
        self.duration_s = math.inf if duration_s is None else duration_s
        self._started_mono = started_mono
        self._first_t: float | None = None
        self._last_t = 0.0
        self._last_frame_mono = started_mono

    def frame(self, tower_t: float, mono: float) -> None:
        """A frame was processed at tower time tower_t, monotonic time mono."""
        if self._first_t is None:
            self._first_t = tower_t
        self._last_t = max(self._last_t, tower_t)
        self._last_frame_mono = mono

    def over(self, tower_now: float, mono: float) -> bool:
        if self._first_t is None:
            return mono - self._started_mono >= self.duration_s
        if max(tower_now, self._last_t) - self._first_t >= self.duration_s:
            return True
        # what was left at the last frame runs on from there in monotonic seconds
        left_at_last_frame_s = self.duration_s - (self._last_t - self._first_t)
        return mono - self._last_frame_mono >= left_at_last_frame_s
