"""Mapping between a head's own pan/tilt degrees and true azimuth/elevation.

The head reports angles from its own zero and sense; ``towerwatch calibrate`` measures
the north offset, the directions and the levelling of the pan axis (docs/physics/geolocation.md;
edge.calibration solves them from landmarks):
    azimuth   ψ = pan_sign · raw_pan + pan_offset_deg                      (mod 360)
    elevation θ = tilt_sign · raw_tilt + tilt_offset_deg + a·cos ψ + b·sin ψ
a and b are the small tilts of the pan axis (northward and eastward components); the
small-angle model is valid for |θ| < 10°, which covers a tower's view. The camera's
roll about its optical axis does not move the head; geolocation turns the image by it.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from drivers.base import StrictSettings


class PtzCalibration(StrictSettings):
    """Calibration of one head, as written by ``towerwatch calibrate``."""

    pan_offset_deg: float = Field(
        0.0, ge=-360.0, le=360.0, description="true azimuth of the head's pan zero"
    )
    pan_sign: Literal[1, -1] = Field(1, description="+1 if raw pan grows clockwise")
    tilt_offset_deg: float = Field(
        0.0, ge=-30.0, le=30.0, description="elevation of the head's tilt zero"
    )
    tilt_sign: Literal[1, -1] = Field(1, description="+1 if raw tilt grows upward")
    level_a_deg: float = Field(
        0.0, ge=-2.0, le=2.0, description="pan-axis levelling error, cos(azimuth) term"
    )
    level_b_deg: float = Field(
        0.0, ge=-2.0, le=2.0, description="pan-axis levelling error, sin(azimuth) term"
    )
    # A roll of more than a few degrees is a camera mounted askew, to be fixed on the mast.
    roll_deg: float = Field(
        0.0,
        ge=-10.0,
        le=10.0,
        description="camera rotation about its optical axis (positive turns image x toward y)",
    )

    @staticmethod
    def _wrap(angle_deg: float) -> float:
        # x % 360.0 is exactly 360.0 for a tiny negative x; [0, 360) is the contract
        wrapped = angle_deg % 360.0
        return 0.0 if wrapped >= 360.0 else wrapped

    def levelling_deg(self, azimuth_deg: float) -> float:
        """Elevation error of the pan axis' tilt when looking at ``azimuth_deg``."""
        psi = math.radians(azimuth_deg)
        return self.level_a_deg * math.cos(psi) + self.level_b_deg * math.sin(psi)

    def to_true(self, raw_pan_deg: float, raw_tilt_deg: float) -> tuple[float, float]:
        """Head angles → (true azimuth in [0, 360), elevation)."""
        azimuth = self._wrap(self.pan_sign * raw_pan_deg + self.pan_offset_deg)
        elevation = (
            self.tilt_sign * raw_tilt_deg + self.tilt_offset_deg + self.levelling_deg(azimuth)
        )
        return azimuth, elevation

    def to_device(self, azimuth_deg: float, elevation_deg: float) -> tuple[float, float]:
        """(true azimuth, elevation) → head angles, raw pan in [0, 360)."""
        azimuth = self._wrap(azimuth_deg)
        raw_pan = self._wrap(self.pan_sign * (azimuth - self.pan_offset_deg))
        raw_tilt = self.tilt_sign * (
            elevation_deg - self.tilt_offset_deg - self.levelling_deg(azimuth)
        )
        return raw_pan, raw_tilt
