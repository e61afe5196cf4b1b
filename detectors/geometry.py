"""Shared maths of a tower's view, written once: angles, the earth, refraction, detection criteria.

The daemon (edge/) and the simulators both import these, so a simulated tower and the
real one agree on the curved earth and on what "detectable" means.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

# Mean earth radius (IUGG): curvature drops and horizon dips use it; geodesy proper uses WGS84.
EARTH_RADIUS_M: Final = 6_371_000.0
WGS84_A_M: Final = 6_378_137.0
WGS84_F: Final = 1.0 / 298.257223563
WGS84_B_M: Final = WGS84_A_M * (1.0 - WGS84_F)
WGS84_E2: Final = WGS84_F * (2.0 - WGS84_F)

# Standard terrestrial refraction coefficient over land by day (docs: refraction bends a
# near-horizontal ray down with a radius of R_E / k).
DEFAULT_REFRACTION_K: Final = 0.13

# Single-look detection criterion at the worst sub-pixel position: the apparent contrast a
# fire must give over its background to be detected, by day and by night (the day
# background is warmer and more cluttered). The coverage check and the link budget use it.
CRITERION_DAY_K: Final = 10.0
CRITERION_NIGHT_K: Final = 6.0


def criterion_k(is_day: bool) -> float:
    """The detection criterion (K of apparent contrast) for day or night."""
    return CRITERION_DAY_K if is_day else CRITERION_NIGHT_K


def wrap_deg(angle_deg: float) -> float:
    """An angle in [0, 360)."""
    return angle_deg % 360.0


def signed_delta_deg(from_deg: float, to_deg: float) -> float:
    """Shortest signed turn from one direction to another, in (-180, 180]."""
    d = (to_deg - from_deg + 180.0) % 360.0 - 180.0
    return 180.0 if d == -180.0 else d


def angle_diff_deg(a_deg: float, b_deg: float) -> float:
    """Smallest absolute difference of two directions, in [0, 180]."""
    return abs(signed_delta_deg(a_deg, b_deg))


def line_of_sight_gap(
    bearing_a_deg: float,
    elevation_a_deg: float,
    bearing_b_deg: float,
    elevation_b_deg: float,
    bearing_tolerance_deg: float,
    elevation_tolerance_deg: float,
) -> float:
    """How far apart two lines of sight are, in tolerances: at most 1 is the same one.

    Without a range, bearing and elevation are all one tower knows of a fire's place;
    over flat ground the elevation is what tells a fire at 5 km from one at 10 km behind
    it (0.23° apart from a 40 m mast).
    """
    return max(
        angle_diff_deg(bearing_a_deg, bearing_b_deg) / bearing_tolerance_deg,
        abs(elevation_a_deg - elevation_b_deg) / elevation_tolerance_deg,
    )


def earth_drop_m(
    ground_range_m: npt.ArrayLike, k: float = DEFAULT_REFRACTION_K
) -> npt.NDArray[np.float64]:
    """How far the curved ground falls below a refracted level ray at a distance: s²(1−k)/(2R)."""
    s = np.asarray(ground_range_m, dtype=np.float64)
    return np.asarray(s * s * (1.0 - k) / (2.0 * EARTH_RADIUS_M), dtype=np.float64)


def horizon_dip_deg(height_above_surface_m: float, k: float = DEFAULT_REFRACTION_K) -> float:
    """Dip of a sea-level (flat) horizon below level: √(2h(1 − k)/R_E) (0.19° from 40 m)."""
    if height_above_surface_m <= 0.0:
        raise ValueError(
            f"height above the water (or flat land) must be positive, got {height_above_surface_m} m"
        )
    if k >= 1.0:
        raise ValueError(f"refraction k must be < 1 for a visible horizon, got {k}")
    return math.degrees(math.sqrt(2.0 * height_above_surface_m * (1.0 - k) / EARTH_RADIUS_M))
