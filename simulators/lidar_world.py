"""What the tower's smoke lidar sees of the simulated world: a ``profile_fn`` for LidarSimulator.

Along the beam from the tower's mast top, at an azimuth and elevation, each range bin
gets the clean-air backscatter and extinction of the scenario's visibility plus the
smoke of every burning fire (SimWorld.smoke_extinction_per_m, in tower-local metres, at
the tower clock's time), over the elastic lidar equation of LidarAtmosphere. The beam
stops at the first opaque thing it meets: the terrain (with earth curvature and
refraction) or a building, known heat source, vehicle or panel of the scene.
"""

from __future__ import annotations

import math

import numpy as np

from simulators.geo import earth_drop_m
from simulators.lidar import LidarAtmosphere
from simulators.world import SimWorld

# Smoke aerosol: extinction-to-backscatter ratio (sr) of biomass-burning smoke at 1.5 µm.
SMOKE_LIDAR_RATIO_SR = 60.0
# Diffuse reflectance of the ground (dry reed, soil) and of man-made things at 1.5 µm.
GROUND_REFLECTANCE = 0.3
OBJECT_REFLECTANCE = 0.2


class WorldLidarView:
    """``(azimuth_deg, elevation_deg, t_unix) -> (first_bin_m, bin_m, expected counts/shot)``."""

    def __init__(self, world: SimWorld, atmosphere: LidarAtmosphere | None = None) -> None:
        self.world = world
        if atmosphere is None:
            visibility_m = world.scenario.weather.visibility_km * 1000.0
            atmosphere = LidarAtmosphere(extinction_per_m=3.912 / visibility_m)
        self.atmosphere = atmosphere

    def __call__(
        self, azimuth_deg: float, elevation_deg: float, t_unix: float
    ) -> tuple[float, float, np.ndarray]:
        atm = self.atmosphere
        r = atm.range_m
        az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
        ground = r * math.cos(el)
        x = ground * math.sin(az)
        y = ground * math.cos(az)
        terrain = self.world.grid.sample(x, y)
        # Height of the beam above the ground under it: the (refracted) beam runs straight
        # while the curved ground falls away below it by the earth drop.
        z = self.world.eye_height_m + r * math.sin(el) + earth_drop_m(ground) - terrain
        smoke = self.world.smoke_extinction_per_m(x, y, np.maximum(z, 0.0), t_unix)
        alpha = atm.extinction_per_m + smoke
        beta = atm.backscatter_per_m_sr + smoke / SMOKE_LIDAR_RATIO_SR
        optical_depth = np.cumsum(alpha) * atm.bin_m - alpha * atm.bin_m * 0.5
        transmission2 = np.exp(-2.0 * optical_depth)
        signal = atm.system_constant * atm.overlap * beta * transmission2 / r**2
        stop, reflectance = self._first_obstacle(r, x, y, z, azimuth_deg, t_unix)
        if stop is not None:
            signal[stop] += (
                atm.system_constant
                * atm.overlap[stop]
                * (reflectance / math.pi / atm.bin_m)
                * transmission2[stop]
                / r[stop] ** 2
            )
            signal[stop + 1 :] = 0.0
        return atm.first_bin_m, atm.bin_m, (signal + atm.background_counts).astype(np.float32)

    def _first_obstacle(
        self,
        r: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        z: np.ndarray,
        azimuth_deg: float,
        t_unix: float,
    ) -> tuple[int | None, float]:
        """Bin index of the first surface on the beam and its reflectance."""
        below = np.flatnonzero(z <= 0.0)
        stop = int(below[0]) if below.size else None
        reflectance = GROUND_REFLECTANCE
        sa, ca = math.sin(math.radians(azimuth_deg)), math.cos(math.radians(azimuth_deg))
        bin_m = self.atmosphere.bin_m
        ground = np.hypot(x, y)
        for thing in self.world.things_at(t_unix):
            if thing.kind == "fire":
                continue  # flames and hot gas are not a surface for the beam
            for sheet in thing.sheets:
                along = sheet.x_m * sa + sheet.y_m * ca
                across = abs(sheet.x_m * ca - sheet.y_m * sa)
                if along <= 0.0 or across > 0.5 * sheet.width_m:
                    continue
                i = int(np.searchsorted(ground, along))
                if i >= r.size or abs(float(ground[i]) - along) > bin_m:
                    continue
                if not sheet.base_m <= z[i] <= sheet.base_m + sheet.height_m:
                    continue
                if stop is None or i < stop:
                    stop, reflectance = i, OBJECT_REFLECTANCE
        return stop, reflectance
