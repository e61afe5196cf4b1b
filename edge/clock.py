"""The daemon's one clock: the system clock in the field, the camera's clock in simulation.

Against a simulated tower the tower's own clock (carried by every frame's timestamp) is
the truth, so a tower running N× faster than real time is followed unchanged. Nothing in
the daemon sleeps on wall time to wait for an event in the world: it waits for frames.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """UTC unix seconds."""
        ...

    def observe_frame(self, t: float) -> None:
        """A frame stamped ``t`` arrived."""
        ...


class SystemClock:
    """The gateway's clock (NTP- or GNSS-disciplined in the field)."""

    def now(self) -> float:
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

    @property
    def started(self) -> bool:
        return self._t > 0.0
