"""The simulated tower's clock: UTC that can run many times faster than wall time."""

from __future__ import annotations

import threading
import time


class SimClock:
    """``now()`` = start + speed × (monotonic time since start), in unix seconds.

    Every simulated device reads this one clock, so the head's slew, a fire's growth and
    the frame timestamps stay consistent when the tower runs at ``speed`` × real time.
    """

    def __init__(self, start_unix_s: float, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be > 0, got {speed}")
        self._start_unix_s = start_unix_s
        self._speed = speed
        self._t0 = time.monotonic()
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        with self._lock:
            return self._start_unix_s + (time.monotonic() - self._t0) * self._speed

    def wall_seconds(self, sim_seconds: float) -> float:
        """How long ``sim_seconds`` of tower time last in wall time."""
        return sim_seconds / self._speed
