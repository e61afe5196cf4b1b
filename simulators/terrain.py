"""Terrain heights, land-cover classes and the curved-earth line of sight for every pixel of a pose."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from simulators.geo import EARTH_RADIUS_M, REFRACTION_K

F64 = npt.NDArray[np.float64]

# Land-cover class ids, shared with simulators.surfaces.
SKY = 0
REED = 1
VEGETATION = 2
WATER = 3
BARE_SOIL = 4
ASPHALT = 5
DIRT_ROAD = 6
ROOF_METAL = 7
ROCK = 8
SOLAR_PANEL = 9
N_CLASSES = 10
CLASS_NAMES = (
    "sky",
    "reed",
    "vegetation",
    "water",
    "bare_soil",
    "asphalt",
    "dirt_road",
    "roof",
    "rock",
    "solar_panel",
)
CLASS_BY_NAME = {name: i for i, name in enumerate(CLASS_NAMES)}


@dataclass(frozen=True)
class HeightGrid:
    """Ground heights above the tower's ground (m) on a square grid centred on the tower."""

    heights_m: npt.NDArray[np.float32]
    extent_m: float
    cell_m: float

    @classmethod
    def flat(cls, extent_m: float, cell_m: float) -> HeightGrid:
        n = int(round(2 * extent_m / cell_m)) + 1
        return cls(np.zeros((n, n), dtype=np.float32), extent_m, cell_m)

    def coords(self) -> F64:
        n = self.heights_m.shape[0]
        return np.asarray(-self.extent_m + np.arange(n) * self.cell_m, dtype=np.float64)

    def add_hill(self, x_m: float, y_m: float, height_m: float, radius_m: float) -> None:
        c = self.coords()
        d2 = (c[None, :] - x_m) ** 2 + (c[:, None] - y_m) ** 2
        self.heights_m[...] += (height_m * np.exp(-d2 / (2 * radius_m**2))).astype(np.float32)

    def add_ridge(
        self, x0: float, y0: float, x1: float, y1: float, height_m: float, half_width_m: float
    ) -> None:
        c = self.coords()
        d = segment_distance(c[None, :], c[:, None], x0, y0, x1, y1)
        self.heights_m[...] += (height_m * np.exp(-(d**2) / (2 * half_width_m**2))).astype(
            np.float32
        )

    def sample(self, x_m: F64, y_m: F64) -> F64:
        return _bilinear(
            self.heights_m,
            self.extent_m,
            self.cell_m,
            np.asarray(x_m, np.float64),
            np.asarray(y_m, np.float64),
        )


def segment_distance(px: F64, py: F64, x0: float, y0: float, x1: float, y1: float) -> F64:
    """Distance of points to the segment (x0, y0)–(x1, y1), broadcasting."""
    dx, dy = x1 - x0, y1 - y0
    ll = dx * dx + dy * dy
    t = np.clip(((px - x0) * dx + (py - y0) * dy) / ll, 0.0, 1.0) if ll > 0 else 0.0
    return np.asarray(np.hypot(px - (x0 + t * dx), py - (y0 + t * dy)), dtype=np.float64)


def _bilinear(grid: npt.NDArray[np.float32], extent: float, cell: float, x: F64, y: F64) -> F64:
    n = grid.shape[0]
    fx = np.clip((x + extent) / cell, 0, n - 1.000001)
    fy = np.clip((y + extent) / cell, 0, n - 1.000001)
    ix = fx.astype(np.int64)
    iy = fy.astype(np.int64)
    ax = fx - ix
    ay = fy - iy
    g = grid.astype(np.float64)
    top = g[iy, ix] * (1 - ax) + g[iy, ix + 1] * ax
    bot = g[iy + 1, ix] * (1 - ax) + g[iy + 1, ix + 1] * ax
    out = top * (1 - ay) + bot * ay
    inside = (np.abs(x) <= extent) & (np.abs(y) <= extent)
    return np.asarray(np.where(inside, out, 0.0), dtype=np.float64)


@numba.njit(cache=True)
def _height_at(
    grid: npt.NDArray[np.float32], extent: float, cell: float, x: float, y: float
) -> float:
    n = grid.shape[0]
    fx = (x + extent) / cell
    fy = (y + extent) / cell
    if fx < 0.0 or fy < 0.0 or fx >= n - 1 or fy >= n - 1:
        return 0.0
    ix = int(fx)
    iy = int(fy)
    ax = fx - ix
    ay = fy - iy
    top = grid[iy, ix] * (1 - ax) + grid[iy, ix + 1] * ax
    bot = grid[iy + 1, ix] * (1 - ax) + grid[iy + 1, ix + 1] * ax
    return top * (1 - ay) + bot * ay


@numba.njit(cache=True)
def _march_columns(
    grid: npt.NDArray[np.float32],
    extent: float,
    cell: float,
    eye_height_m: float,
    curvature: float,
    az_col: F64,
    elev: F64,
    max_range_m: float,
    out_range: F64,
) -> None:
    """Ground range hit by each pixel's ray (−1 for sky), one terrain profile per column.

    Along a column the elevation rises row by row, so the hit ranges only grow: a single
    forward march per column serves every row. The ray's angle to the terrain point at
    ground distance s is atan((h(s) − h_eye − s²(1−k)/2R) / s); the first s where it
    reaches the pixel's elevation is the hit, interpolated within the step.
    """
    n_rows, n_cols = elev.shape
    for c in range(n_cols):
        sa = math.sin(az_col[c])
        ca = math.cos(az_col[c])
        r = n_rows - 1
        s_prev = 0.0
        a_prev = -math.pi / 2
        s = 2.0
        while r >= 0:
            if s > max_range_m:
                while r >= 0:
                    out_range[r, c] = -1.0
                    r -= 1
                break
            h = _height_at(grid, extent, cell, s * sa, s * ca)
            a = math.atan2(h - eye_height_m - curvature * s * s, s)
            while r >= 0 and a >= elev[r, c]:
                frac = 1.0
                if a > a_prev:
                    frac = (elev[r, c] - a_prev) / (a - a_prev)
                    frac = min(1.0, max(0.0, frac))
                out_range[r, c] = s_prev + frac * (s - s_prev)
                r -= 1
            s_prev = s
            a_prev = a
            s += max(2.0, 0.003 * s)


@numba.njit(cache=True)
def _march_rays(
    grid: npt.NDArray[np.float32],
    extent: float,
    cell: float,
    eye_height_m: float,
    curvature: float,
    az: F64,
    elev: F64,
    start_m: F64,
    max_range_m: float,
    out_range: F64,
) -> None:
    """Ground range hit by each single ray (−1 for sky), marching out from ``start_m``.

    The same step rule as :func:`_march_columns`; the terrain angle is compared through
    its tangent, which is monotonic in it, so no arctangent is taken per step. A ray
    may start at any range its line of sight is known to clear (e.g. a lower ray's hit).
    """
    for i in range(az.shape[0]):
        sa = math.sin(az[i])
        ca = math.cos(az[i])
        slope = math.tan(elev[i])
        s_prev = start_m[i]
        h = _height_at(grid, extent, cell, s_prev * sa, s_prev * ca)
        g_prev = (h - eye_height_m - curvature * s_prev * s_prev) / s_prev - slope
        out_range[i] = -1.0
        if g_prev >= 0.0:
            out_range[i] = s_prev
            continue
        s = s_prev + max(2.0, 0.003 * s_prev)
        while s <= max_range_m:
            h = _height_at(grid, extent, cell, s * sa, s * ca)
            g = (h - eye_height_m - curvature * s * s) / s - slope
            if g >= 0.0:
                frac = 1.0
                if g > g_prev:
                    frac = min(1.0, max(0.0, -g_prev / (g - g_prev)))
                out_range[i] = s_prev + frac * (s - s_prev)
                break
            s_prev = s
            g_prev = g
            s += max(2.0, 0.003 * s)


def ray_ranges(
    grid: HeightGrid,
    eye_height_m: float,
    az_rad: F64,
    el_rad: F64,
    start_m: F64,
    max_range_m: float,
    k: float = REFRACTION_K,
) -> F64:
    """Ground range (m) each ray meets the terrain at, −1 for sky; rays are flat arrays.

    ``start_m`` is where each march begins: a range the ray is known not to have hit
    the ground before, such as the hit range of a ray just below it in the same column.
    """
    az = np.ascontiguousarray(az_rad, dtype=np.float64).ravel()
    out = np.empty(az.shape, dtype=np.float64)
    _march_rays(
        grid.heights_m,
        grid.extent_m,
        grid.cell_m,
        eye_height_m,
        (1.0 - k) / (2.0 * EARTH_RADIUS_M),
        az,
        np.ascontiguousarray(el_rad, dtype=np.float64).ravel(),
        np.ascontiguousarray(start_m, dtype=np.float64).ravel(),
        max_range_m,
        out,
    )
    return out


def line_of_sight_ranges(
    grid: HeightGrid,
    eye_height_m: float,
    az_rad: F64,
    el_rad: F64,
    max_range_m: float,
    k: float = REFRACTION_K,
) -> F64:
    """Ground range (m) each pixel's ray meets the terrain at, −1 where it sees the sky."""
    az_col = np.ascontiguousarray(az_rad[az_rad.shape[0] // 2, :], dtype=np.float64)
    out = np.empty(el_rad.shape, dtype=np.float64)
    _march_columns(
        grid.heights_m,
        grid.extent_m,
        grid.cell_m,
        eye_height_m,
        (1.0 - k) / (2.0 * EARTH_RADIUS_M),
        az_col,
        np.ascontiguousarray(el_rad, dtype=np.float64),
        max_range_m,
        out,
    )
    return out


def value_noise(x_m: F64, y_m: F64, cell_m: float, seed: int) -> F64:
    """Smooth deterministic noise in [−1, 1] over ground coordinates (hashed lattice, bilinear).

    Tied to the ground, not the pixel, so the same field looks the same from any pose.
    """
    fx = x_m / cell_m
    fy = y_m / cell_m
    ix = np.floor(fx).astype(np.int64)
    iy = np.floor(fy).astype(np.int64)
    ax = fx - ix
    ay = fy - iy
    ax = ax * ax * (3 - 2 * ax)
    ay = ay * ay * (3 - 2 * ay)

    def h(i: npt.NDArray[np.int64], j: npt.NDArray[np.int64]) -> F64:
        v = (i * 374761393 + j * 668265263 + seed * 2147483647) & 0xFFFFFFFF
        v = ((v ^ (v >> 13)) * 1274126177) & 0xFFFFFFFF
        v = v ^ (v >> 16)
        return np.asarray(v / 2147483647.5 - 1.0, dtype=np.float64)

    top = h(ix, iy) * (1 - ax) + h(ix + 1, iy) * ax
    bot = h(ix, iy + 1) * (1 - ax) + h(ix + 1, iy + 1) * ax
    return np.asarray(top * (1 - ay) + bot * ay, dtype=np.float64)
