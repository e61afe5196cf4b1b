"""Local geometry of the simulated world: WGS84 ↔ tower ENU, curved earth with refraction."""

from __future__ import annotations

import math

import numpy as np

# The earth, refraction and curvature maths are the daemon's own (detectors.geometry), so
# the simulated world and the tower's geolocation agree by construction.
from detectors.geometry import (
    DEFAULT_REFRACTION_K,
    EARTH_RADIUS_M,
    WGS84_A_M,
    WGS84_E2,
    earth_drop_m,
    horizon_dip_deg,
)

# The simulators' name for the standard refraction coefficient over land.
REFRACTION_K = DEFAULT_REFRACTION_K

__all__ = ["EARTH_RADIUS_M", "REFRACTION_K", "earth_drop_m", "horizon_dip_deg"]


def _ecef(lat_deg: float, lon_deg: float, h_m: float) -> np.ndarray:
    lat = math.radians(lat_deg)
    lon = math.radians(lon_deg)
    n = WGS84_A_M / math.sqrt(1.0 - WGS84_E2 * math.sin(lat) ** 2)
    return np.array(
        [
            (n + h_m) * math.cos(lat) * math.cos(lon),
            (n + h_m) * math.cos(lat) * math.sin(lon),
            (n * (1.0 - WGS84_E2) + h_m) * math.sin(lat),
        ]
    )


def _enu_rotation(lat_deg: float, lon_deg: float) -> np.ndarray:
    lat = math.radians(lat_deg)
    lon = math.radians(lon_deg)
    return np.array(
        [
            [-math.sin(lon), math.cos(lon), 0.0],
            [-math.sin(lat) * math.cos(lon), -math.sin(lat) * math.sin(lon), math.cos(lat)],
            [math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)],
        ]
    )


class LocalFrame:
    """Tower-centred frame: x east, y north (m) along the ground; heights above the tower's ground.

    Horizontal positions are the ENU tangent-plane coordinates of the WGS84 point, so the
    daemon's geolocation (WGS84 → ECEF → ENU) and the simulator agree; the earth's
    curvature is applied separately as a height drop along the line of sight.
    """

    def __init__(self, lat_deg: float, lon_deg: float) -> None:
        self.lat_deg = lat_deg
        self.lon_deg = lon_deg
        self._origin = _ecef(lat_deg, lon_deg, 0.0)
        self._rot = _enu_rotation(lat_deg, lon_deg)

    def to_local(self, lat_deg: float, lon_deg: float) -> tuple[float, float]:
        enu = self._rot @ (_ecef(lat_deg, lon_deg, 0.0) - self._origin)
        return float(enu[0]), float(enu[1])

    def to_wgs84(self, x_m: float, y_m: float) -> tuple[float, float]:
        """Inverse of :meth:`to_local` by fixed-point iteration (converges to < 1 mm in 4 steps)."""
        lat, lon = self.lat_deg, self.lon_deg
        m_per_deg_lat = math.pi * EARTH_RADIUS_M / 180.0
        for _ in range(6):
            ex, ey = self.to_local(lat, lon)
            lat += (y_m - ey) / m_per_deg_lat
            lon += (x_m - ex) / (m_per_deg_lat * math.cos(math.radians(lat)))
        return lat, lon


def bearing_range_to_local(bearing_deg: float, range_m: float) -> tuple[float, float]:
    b = math.radians(bearing_deg)
    return range_m * math.sin(b), range_m * math.cos(b)


def apparent_elevation_deg(
    eye_height_m: float, target_height_m: float, ground_range_m: float, k: float = REFRACTION_K
) -> float:
    """Elevation at which a point at ``target_height_m`` and ``ground_range_m`` appears, with refraction."""
    dz = target_height_m - eye_height_m - float(earth_drop_m(ground_range_m, k))
    return math.degrees(math.atan2(dz, ground_range_m))
