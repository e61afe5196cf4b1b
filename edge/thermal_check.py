"""The radiometric check of `towerwatch calibrate thermal`: measured against reference sources.

A reference of known temperature T_ref and emissivity ε in front of the camera (a few
metres: no atmosphere to speak of) sends ε·L(T_ref) + (1 − ε)·L(T_amb), the second term
the surroundings it reflects. The camera reports brightness temperatures (ε = 1), so
the reading to expect is T_b(ε·L(T_ref) + (1 − ε)·L(T_amb)) in the camera's band
(detectors.radiometry). One reference gives the offset measured − expected; two at
different temperatures give gain and offset of measured = gain · expected + offset.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from detectors.radiometry import band_radiance_exact, brightness_temperature


def expected_reading_k(reference_k: float, emissivity: float, ambient_k: float) -> float:
    """The brightness temperature a radiometric camera should read on the reference."""
    if not 0.0 < emissivity <= 1.0:
        raise ValueError(f"emissivity must be in (0, 1], got {emissivity:g}")
    if emissivity == 1.0:
        return reference_k
    radiance = emissivity * band_radiance_exact(reference_k) + (1.0 - emissivity) * (
        band_radiance_exact(ambient_k)
    )
    return float(brightness_temperature([radiance])[0])


@dataclass(frozen=True)
class ReferenceReading:
    reference_k: float
    expected_k: float
    measured_k: float  # mean over the frames of the window means
    noise_k: float  # standard deviation of the window means over the frames
    frames: int
    u_px: int
    v_px: int

    @property
    def error_k(self) -> float:
        return self.measured_k - self.expected_k


@dataclass(frozen=True)
class ThermalCheck:
    readings: tuple[ReferenceReading, ...]
    tolerance_k: float
    offset_k: float
    gain: float | None  # with two references

    @property
    def passed(self) -> bool:
        return all(abs(r.error_k) <= self.tolerance_k for r in self.readings)


def reading(
    reference_k: float,
    expected_k: float,
    window_means_k: Sequence[float],
    u_px: int,
    v_px: int,
) -> ReferenceReading:
    if not window_means_k:
        raise ValueError("no frames")
    noise = statistics.stdev(window_means_k) if len(window_means_k) > 1 else 0.0
    return ReferenceReading(reference_k, expected_k, statistics.fmean(window_means_k), noise,
                            len(window_means_k), u_px, v_px)  # fmt: skip


def check(readings: Sequence[ReferenceReading], tolerance_k: float) -> ThermalCheck:
    """Offset (one reference) or gain and offset (two), and the pass/fail verdict."""
    if len(readings) == 1:
        return ThermalCheck(tuple(readings), tolerance_k, readings[0].error_k, None)
    if len(readings) != 2:
        raise ValueError(f"one or two references, got {len(readings)}")
    a, b = readings
    span = b.expected_k - a.expected_k
    if math.isclose(span, 0.0, abs_tol=1.0):
        raise ValueError(
            f"the two references must differ by more than 1 K in expected reading "
            f"({a.expected_k:.2f} K and {b.expected_k:.2f} K)"
        )
    gain = (b.measured_k - a.measured_k) / span
    offset = a.measured_k - gain * a.expected_k
    return ThermalCheck(tuple(readings), tolerance_k, offset, gain)
