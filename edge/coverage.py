"""Today's detection range of the mission fires, from the link budget and the weather.

A tower that can no longer see the mission fires at their required range (haze, humid
air) says so in its status as `degraded` instead of silently missing fires.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from detectors.geometry import criterion_k
from detectors.radiometry import (
    Atmosphere,
    Optics,
    case_c_effective_area_m2,
    max_detectable_range_m,
)
from edge.config import CameraSettings, CoverageSettings, WeatherSettings
from edge.geodesy import EARTH_RADIUS_M


@dataclass(frozen=True)
class MissionRange:
    size_m: float
    required_range_m: float
    detectable_range_m: float

    @property
    def met(self) -> bool:
        return self.detectable_range_m >= self.required_range_m


def horizon_m(camera_height_m: float, refraction_k: float) -> float:
    """Distance to the refracted ground horizon from ``camera_height_m`` over level ground.

    √(2·h·R_E / (1 − k)): 24 km from 40 m with k = 0.13 (docs/physics/geolocation.md).
    A ray bent at least as much as the earth (k ≥ 1) never meets a horizon: infinite.
    """
    if refraction_k >= 1.0:
        return math.inf
    return math.sqrt(2.0 * max(camera_height_m, 0.0) * EARTH_RADIUS_M / (1.0 - refraction_k))


def optics_of(camera: CameraSettings) -> Optics:
    return Optics(
        pixel_pitch_um=camera.pixel_pitch_um,
        focal_length_mm=camera.focal_length_mm,
        f_number=camera.f_number,
        lens_efficiency=camera.lens_efficiency,
        netd_mk=camera.netd_mk,
    )


def atmosphere_of(weather: WeatherSettings) -> Atmosphere:
    return Atmosphere(
        air_temp_c=weather.air_temp_c,
        relative_humidity_pct=weather.relative_humidity_pct,
        visibility_km=weather.visibility_km,
        pressure_hpa=weather.pressure_hpa,
    )


def mission_ranges(
    camera: CameraSettings, weather: WeatherSettings, coverage: CoverageSettings, *, is_day: bool
) -> list[MissionRange]:
    """For each mission fire (design case C), the farthest range it is still detected at."""
    optics = optics_of(camera)
    atmosphere = atmosphere_of(weather)
    criterion = criterion_k(is_day)
    background_k = weather.air_temp_c + 273.15
    return [
        MissionRange(
            size_m=fire.size_m,
            required_range_m=fire.range_m,
            detectable_range_m=max_detectable_range_m(
                optics,
                atmosphere,
                case_c_effective_area_m2(fire.size_m),
                criterion,
                background_k=background_k,
            ),
        )
        for fire in coverage.mission_fires
    ]


def coverage_range_m(ranges: list[MissionRange]) -> float:
    """The detection range reported in status: the largest mission fire's range."""
    largest = max(ranges, key=lambda r: r.size_m)
    return largest.detectable_range_m
