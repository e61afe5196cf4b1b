"""The patrol plan: where the head looks next, tiled for the lens and clear of the sun.

Stops tile the sector clockwise with a configured overlap. Every stop is approached
clockwise so the gears' backlash always sits on the same side (docs/algorithms/confirmation.md): a move
that would arrive counter-clockwise first goes to a pre-position a little anticlockwise of
the stop. A stop whose field of view would hold the sun (plus a margin) is skipped for
the microbolometer's sake and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from detectors.geometry import signed_delta_deg, wrap_deg

APPROACH_MARGIN_DEG = 2.0  # pre-position anticlockwise of a stop: beyond any head's backlash


@dataclass(frozen=True)
class Stop:
    index: int
    pan_deg: float
    tilt_deg: float
    hfov_deg: float
    preset: str | None = None


def tile_sector(
    start_deg: float, span_deg: float, tilt_deg: float, hfov_deg: float, overlap_fraction: float
) -> list[Stop]:
    """Stops covering [start, start + span] clockwise, each overlapping the next."""
    if hfov_deg <= 0:
        raise ValueError(f"hfov_deg must be > 0, got {hfov_deg}")
    step = hfov_deg * (1.0 - overlap_fraction)
    full_circle = span_deg >= 360.0 - 1e-9
    if full_circle:
        count = max(1, math.ceil(360.0 / step))
        step = 360.0 / count
        centres = [start_deg + step * (i + 0.5) for i in range(count)]
    else:
        # first and last fields of view flush with the sector edges
        inner = max(span_deg - hfov_deg, 0.0)
        count = max(1, math.ceil(inner / step) + 1) if inner > 0 else 1
        if count == 1:
            centres = [start_deg + span_deg / 2.0]
        else:
            spacing = inner / (count - 1)
            centres = [start_deg + hfov_deg / 2.0 + spacing * i for i in range(count)]
    return [Stop(i, wrap_deg(c), tilt_deg, hfov_deg) for i, c in enumerate(centres)]


def sun_in_view(
    pan_deg: float,
    tilt_deg: float,
    hfov_deg: float,
    vfov_deg: float,
    sun_az_deg: float,
    sun_el_deg: float,
    margin_deg: float,
) -> bool:
    """Would the sun be within the field of view widened by ``margin_deg``?"""
    if sun_el_deg < -1.0:  # below the horizon (with refraction): nothing to protect
        return False
    d_az = abs(signed_delta_deg(pan_deg, sun_az_deg)) * math.cos(math.radians(sun_el_deg))
    d_el = abs(sun_el_deg - tilt_deg)
    return d_az <= hfov_deg / 2.0 + margin_deg and d_el <= vfov_deg / 2.0 + margin_deg


class PatrolPlan:
    """Cycles through the stops; remembers where it left off when interrupted."""

    def __init__(self, stops: list[Stop]) -> None:
        if not stops:
            raise ValueError("a patrol needs at least one stop")
        self.stops = stops
        self._next = 0
        self.cycles_completed = 0
        self.skipped_for_sun = 0

    def resume_at(self, index: int) -> None:
        """Make ``index`` the next stop (after an interruption at that stop)."""
        if not 0 <= index < len(self.stops):
            raise IndexError(f"no patrol stop {index}")
        self._next = index

    def take_next(self) -> Stop:
        """The next stop; wraps around and counts a completed cycle."""
        stop = self.stops[self._next]
        self._next += 1
        if self._next >= len(self.stops):
            self._next = 0
            self.cycles_completed += 1
        return stop

    def take_next_clear_of_sun(
        self, vfov_deg: float, sun_az_deg: float, sun_el_deg: float, margin_deg: float
    ) -> Stop | None:
        """The next stop whose view is clear of the sun; None if the sun blocks them all."""
        for _ in range(len(self.stops)):
            stop = self.take_next()
            if not sun_in_view(
                stop.pan_deg,
                stop.tilt_deg,
                stop.hfov_deg,
                vfov_deg,
                sun_az_deg,
                sun_el_deg,
                margin_deg,
            ):
                return stop
            self.skipped_for_sun += 1
        return None


def approach_waypoints(current_pan_deg: float, target_pan_deg: float) -> list[float]:
    """Pan targets to send so the final approach is clockwise (backlash on one side)."""
    turn = signed_delta_deg(current_pan_deg, target_pan_deg)
    if turn > 0.0 or abs(turn) < 1e-6:
        return [wrap_deg(target_pan_deg)]
    return [wrap_deg(target_pan_deg - APPROACH_MARGIN_DEG), wrap_deg(target_pan_deg)]
