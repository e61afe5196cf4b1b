"""Diurnal surface temperatures of each land-cover class, driven by the sun, air and clouds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.solar import sun_position
from simulators.terrain import (
    ASPHALT,
    BARE_SOIL,
    DIRT_ROAD,
    N_CLASSES,
    REED,
    ROCK,
    ROOF_METAL,
    SKY,
    SOLAR_PANEL,
    VEGETATION,
    WATER,
)


@dataclass(frozen=True)
class SurfaceClass:
    """Thermal behaviour of one land-cover class.

    solar_gain_k: excess over air under a clear overhead sun; lag_h: thermal inertia
    (the surface follows the sun this many hours late); night_k: excess over air in a
    clear night (negative for surfaces that cool radiatively below the air);
    texture: how much of the world's clutter the class shows; specular: whether it
    mirrors the sun (water, metal, glass).
    """

    emissivity: float
    solar_gain_k: float
    lag_h: float
    night_k: float
    texture: float
    specular: bool


# Sunlit asphalt, metal roofs and bare soil run 10–35 K above vegetation near noon
# (docs/algorithms/suppression.md); water barely moves; vegetation transpires and stays near air.
SURFACES: dict[int, SurfaceClass] = {
    SKY: SurfaceClass(1.0, 0.0, 0.0, 0.0, 0.0, False),
    REED: SurfaceClass(0.97, 4.0, 0.3, -1.5, 1.0, False),
    VEGETATION: SurfaceClass(0.97, 3.0, 0.3, -1.5, 0.8, False),
    WATER: SurfaceClass(0.98, 1.0, 4.0, 1.5, 0.1, True),
    BARE_SOIL: SurfaceClass(0.93, 24.0, 1.0, -3.0, 1.5, False),
    ASPHALT: SurfaceClass(0.95, 32.0, 1.5, 1.0, 0.5, False),
    DIRT_ROAD: SurfaceClass(0.93, 20.0, 1.0, -3.5, 0.8, False),
    ROOF_METAL: SurfaceClass(0.35, 30.0, 0.1, -5.0, 0.3, True),
    ROCK: SurfaceClass(0.92, 22.0, 2.0, 1.0, 1.2, False),
    SOLAR_PANEL: SurfaceClass(0.85, 26.0, 0.2, -3.0, 0.2, True),
}
EMISSIVITY = np.array([SURFACES[i].emissivity for i in range(N_CLASSES)], dtype=np.float32)
TEXTURE = np.array([SURFACES[i].texture for i in range(N_CLASSES)], dtype=np.float32)
SPECULAR = np.array([SURFACES[i].specular for i in range(N_CLASSES)], dtype=bool)


def _night_weight(sun_el_deg: float) -> float:
    """0 in daylight, 1 once the sun is 6° below the horizon (civil twilight), smooth between."""
    return min(1.0, max(0.0, (3.0 - sun_el_deg) / 9.0))


def air_temperature_k(
    mean_c: float, diurnal_range_k: float, t_unix: float, lon_deg: float
) -> float:
    """Air temperature with its daily cycle: lowest near 05 h, highest near 15 h local solar time."""
    solar_hour = ((t_unix / 3600.0) + lon_deg / 15.0) % 24.0
    return (
        mean_c + 273.15 + 0.5 * diurnal_range_k * math.cos(2 * math.pi * (solar_hour - 15.0) / 24.0)
    )


def class_temperatures_k(
    t_unix: float,
    lat_deg: float,
    lon_deg: float,
    air_mean_c: float,
    diurnal_range_k: float,
    cloud_cover: float,
) -> npt.NDArray[np.float64]:
    """Surface temperature (K) of every land-cover class at ``t_unix`` (index = class id)."""
    air = air_temperature_k(air_mean_c, diurnal_range_k, t_unix, lon_deg)
    _, el_now = sun_position(t_unix, lat_deg, lon_deg)
    night = _night_weight(el_now)
    # Clouds cut the direct sun and the radiative escape to a cold sky alike.
    sun_scale = 1.0 - 0.75 * cloud_cover
    night_scale = 1.0 - 0.8 * cloud_cover
    out = np.empty(N_CLASSES, dtype=np.float64)
    for cid, s in SURFACES.items():
        if cid == SKY:
            out[cid] = air
            continue
        _, el_lag = sun_position(t_unix - s.lag_h * 3600.0, lat_deg, lon_deg)
        forcing = max(0.0, math.sin(math.radians(el_lag)))
        out[cid] = air + s.solar_gain_k * forcing * sun_scale + s.night_k * night * night_scale
    return out


def sky_brightness_k(
    air_k: float, elevation_deg: npt.ArrayLike, cloud_cover: float
) -> npt.NDArray[np.float64]:
    """Brightness temperature of the sky by elevation: the air near the horizon, colder overhead.

    The effective clear-sky temperature at the zenith is about 40 K below the air; clouds
    bring it back toward the air. The horizon stays at the air's temperature because a
    horizontal path through the window is optically thick.
    """
    el = np.clip(np.asarray(elevation_deg, dtype=np.float64), 0.0, 90.0)
    depth = 40.0 * (1.0 - 0.85 * cloud_cover)
    return np.asarray(air_k - depth * (1.0 - np.exp(-el / 8.0)), dtype=np.float64)
