"""Fire geolocation: pixel + pose + lens → ENU ray → terrain, curved earth or lidar, with uncertainty."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge.geodesy import (
    DEFAULT_REFRACTION_K,
    EARTH_RADIUS_M,
    FloatArray,
    elevation_to_height_deg,
    geodesic_direct,
    geodesic_inverse,
    geodetic_to_enu,
    ray_height_m,
)
from edge.messages import RangeSource, Uncertainty

# Camera axes (x right, y down, z forward) to ENU at pan = tilt = 0: the camera looks
# north with its x axis east and its image "up" (−y) along the local vertical.
_CAMERA_TO_ENU = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# A 2-D Gaussian holds 95 % of its mass inside the ellipse at Mahalanobis distance²
# of χ²₂(0.95) = 5.991.
_CHI2_2D_95 = 5.991464547107979

# Geodesic nodes along each marched ray are spaced this far apart; positions in
# between are interpolated linearly in lat/lon, which is off by millimetres only
# (a geodesic bends away from a lat/lon chord by ~L² tan φ / 8R).
_PATH_NODE_SPACING_M = 1000.0
_MARCH_BLOCK_STEPS = 64
# The coarse pass steps this many fine steps at a time against the terrain envelope;
# the margin absorbs rounding in the envelope comparison.
_COARSE_STEP_FACTOR = 16
_ENVELOPE_MARGIN_M = 0.01
_BISECTION_STEPS = 16
_UNDISTORT_ITERATIONS = 20
# An ellipse describes a fix only when the error is close to Gaussian: the far half of
# the 2.5-97.5 % range interval (beyond the nominal range) and the near half differ by at
# most this factor. Over flat ground the range goes as 1/depression, so the interval is
# lopsided toward the far side; at this factor the range error is about 17 % of the range.
# A lopsided fix is published as its bearing wedge instead. An interval whose larger half
# is within SKEW_NEGLIGIBLE_FRACTION of the range is small whatever its shape (a steep
# slope stops nearly every ray at one place) and keeps its ellipse.
MAX_RANGE_SKEW = 2.0
SKEW_NEGLIGIBLE_FRACTION = 0.05


@dataclass(frozen=True)
class Lens:
    """Pinhole camera with Brown–Conrady distortion; pixel (u, v) = (column, row) from the top left."""

    focal_length_px: float
    cx_px: float
    cy_px: float
    k1: float = 0.0
    k2: float = 0.0
    p1: float = 0.0
    p2: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.focal_length_px) and self.focal_length_px > 0.0):
            raise ValueError(f"lens focal_length_px must be positive, got {self.focal_length_px}")

    @classmethod
    def from_physical(
        cls,
        focal_length_mm: float,
        pixel_pitch_um: float,
        width_px: int,
        height_px: int,
        *,
        cx_px: float | None = None,
        cy_px: float | None = None,
        k1: float = 0.0,
        k2: float = 0.0,
        p1: float = 0.0,
        p2: float = 0.0,
    ) -> Lens:
        """Lens from focal length and detector pitch; principal point defaults to the image centre."""
        if focal_length_mm <= 0.0:
            raise ValueError(f"lens focal_length_mm must be positive, got {focal_length_mm}")
        if pixel_pitch_um <= 0.0:
            raise ValueError(f"lens pixel_pitch_um must be positive, got {pixel_pitch_um}")
        return cls(
            focal_length_px=focal_length_mm * 1000.0 / pixel_pitch_um,
            cx_px=(width_px - 1) / 2.0 if cx_px is None else cx_px,
            cy_px=(height_px - 1) / 2.0 if cy_px is None else cy_px,
            k1=k1,
            k2=k2,
            p1=p1,
            p2=p2,
        )

    def _distort(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        r2 = x * x + y * y
        radial = 1.0 + self.k1 * r2 + self.k2 * r2 * r2
        xd = x * radial + 2.0 * self.p1 * x * y + self.p2 * (r2 + 2.0 * x * x)
        yd = y * radial + self.p1 * (r2 + 2.0 * y * y) + 2.0 * self.p2 * x * y
        return xd, yd

    def normalised(self, u_px: npt.ArrayLike, v_px: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Undistorted normalised image coordinates (x/z, y/z) of pixels."""
        xd = (np.asarray(u_px, dtype=np.float64) - self.cx_px) / self.focal_length_px
        yd = (np.asarray(v_px, dtype=np.float64) - self.cy_px) / self.focal_length_px
        if self.k1 == self.k2 == self.p1 == self.p2 == 0.0:
            return xd, yd
        # Fixed-point inversion of the distortion model (as OpenCV's undistortPoints):
        # converges in a few iterations for the mild distortion of long thermal lenses.
        x, y = xd.copy(), yd.copy()
        for _ in range(_UNDISTORT_ITERATIONS):
            fx, fy = self._distort(x, y)
            x = x + (xd - fx)
            y = y + (yd - fy)
        return x, y

    def pixel(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Pixel (u, v) of undistorted normalised image coordinates (x/z, y/z)."""
        xd, yd = self._distort(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        return xd * self.focal_length_px + self.cx_px, yd * self.focal_length_px + self.cy_px


@dataclass(frozen=True)
class Pose:
    """Calibrated head pose: pan = true azimuth, tilt = elevation, roll about the optical axis.

    Positive roll turns the image x axis toward the image y axis (clockwise as
    seen from behind the camera). Raw head readings become a Pose through
    edge.calibration.true_pose.
    """

    pan_deg: float
    tilt_deg: float
    roll_deg: float = 0.0


@dataclass(frozen=True)
class TowerSite:
    """Camera optical centre: WGS-84 lat/lon and height above MSL (ground + mast)."""

    lat: float
    lon: float
    height_m: float


@dataclass(frozen=True)
class ErrorModel:
    """1-σ errors propagated by the Monte-Carlo, and its size and seed (reproducible per alarm).

    sigma_k defaults to 0.3: near the ground k swings by 1–1.5 on sunny days
    (Hirt et al. 2010), less at the tens of metres a tower's ray flies at.
    sigma_dem_m is the terrain height error (DEM, or the configured flat ground).
    """

    sigma_pan_deg: float = 0.05
    sigma_tilt_deg: float = 0.05
    sigma_k: float = 0.3
    sigma_dem_m: float = 2.0
    sigma_lidar_m: float = 7.5
    samples: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("sigma_pan_deg", "sigma_tilt_deg", "sigma_k", "sigma_dem_m", "sigma_lidar_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"error model {name} must be a finite value >= 0, got {value}")
        if self.samples < 10:
            raise ValueError(f"error model samples must be >= 10, got {self.samples}")


class Terrain(Protocol):
    """Terrain heights (m above MSL) for the ray march; edge.dem.Dem implements it."""

    @property
    def cell_size_m(self) -> float:
        """Smallest grid spacing in metres: the march steps at most half of it."""
        ...

    def height_or_nan(self, lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike) -> FloatArray:
        """Interpolated heights; NaN where the point lies outside the grid."""
        ...

    def envelope_or_nan(
        self, lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike, radius_m: float
    ) -> FloatArray:
        """Upper bounds of the heights within radius_m of each point; NaN outside the grid."""
        ...


@dataclass(frozen=True)
class Geolocation:
    """A located fire: point, bearing, range with its source, and a 95 % uncertainty.

    range_m is the ground distance from the tower foot along the geodesic.
    lat/lon/range_m/height_m are None when the nominal ray does not meet the ground
    within the maximum range. bearing_only is True when the range is too uncertain, or
    its error too far from Gaussian, to give a point: then the alarm must carry the
    bearing and the interval [range_min_m, range_max_m] (the bearing wedge), not a
    position, and uncertainty is None. The nominal point of a bearing-only fix is kept
    here for what needs a most likely range (the fire's size), never published.
    """

    lat: float | None
    lon: float | None
    height_m: float | None
    bearing_deg: float
    elevation_deg: float
    range_m: float | None
    range_source: RangeSource
    range_sigma_m: float
    range_min_m: float
    range_max_m: float
    uncertainty: Uncertainty | None
    bearing_only: bool


def _rot_x(angle_rad: float) -> FloatArray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_z(angle_rad: float) -> FloatArray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _camera_to_enu(pose: Pose) -> FloatArray:
    # d_ENU = R_U(−ψ) · R_E(θ) · M · R_z(ρ) · d_c (docs/physics/geolocation.md). In ENU, E is the
    # x axis and U the z axis; in camera axes the optical axis is z.
    return (
        _rot_z(-math.radians(pose.pan_deg))
        @ _rot_x(math.radians(pose.tilt_deg))
        @ _CAMERA_TO_ENU
        @ _rot_z(math.radians(pose.roll_deg))
    )


def pixel_ray_enu(u_px: npt.ArrayLike, v_px: npt.ArrayLike, pose: Pose, lens: Lens) -> FloatArray:
    """Unit line-of-sight vectors (east, north, up) of pixels; shape (..., 3)."""
    x, y = lens.normalised(u_px, v_px)
    d_cam = np.stack(np.broadcast_arrays(x, y, np.ones_like(x)), axis=-1)
    d_cam /= np.linalg.norm(d_cam, axis=-1, keepdims=True)
    return np.asarray(d_cam @ _camera_to_enu(pose).T, dtype=np.float64)


def enu_bearing_elevation(d_enu: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(bearing_deg in [0, 360), elevation_deg) of ENU direction vectors (..., 3)."""
    d = np.asarray(d_enu, dtype=np.float64)
    e, n, u = d[..., 0], d[..., 1], d[..., 2]
    return np.degrees(np.arctan2(e, n)) % 360.0, np.degrees(np.arctan2(u, np.hypot(e, n)))


def pixel_bearing_elevation(
    u_px: float, v_px: float, pose: Pose, lens: Lens
) -> tuple[float, float]:
    """(bearing_deg, elevation_deg) of the line of sight through one pixel."""
    bearing, elevation = enu_bearing_elevation(pixel_ray_enu(u_px, v_px, pose, lens))
    return float(bearing), float(elevation)


def bearing_elevation_pixel(
    bearing_deg: npt.ArrayLike, elevation_deg: npt.ArrayLike, pose: Pose, lens: Lens
) -> tuple[FloatArray, FloatArray]:
    """Pixel (u, v) where directions appear in the image at a pose; NaN behind the camera."""
    b = np.radians(np.asarray(bearing_deg, dtype=np.float64))
    el = np.radians(np.asarray(elevation_deg, dtype=np.float64))
    d_enu = np.stack([np.cos(el) * np.sin(b), np.cos(el) * np.cos(b), np.sin(el)], axis=-1)
    d_cam = d_enu @ _camera_to_enu(pose)  # the rotation's inverse is its transpose
    z = d_cam[..., 2]
    in_front = z > 1e-9
    safe_z = np.where(in_front, z, 1.0)
    u, v = lens.pixel(d_cam[..., 0] / safe_z, d_cam[..., 1] / safe_z)
    return np.where(in_front, u, np.nan), np.where(in_front, v, np.nan)


# A commanded target closer than this is the tower itself: it has no direction to look in.
MIN_TARGET_DISTANCE_M = 10.0


def check_target(tower: TowerSite, lat: float, lon: float, max_range_m: float) -> float:
    """The great-circle distance (m) to a point the head is asked to look at.

    ValueError names the point when it is the tower's own position or lies beyond
    max_range_m (the antipode included, where no geodesic is defined): the spherical
    formula used here is defined everywhere, so the check itself cannot fail.
    """
    lat1, lat2 = math.radians(tower.lat), math.radians(lat)
    half_dlat = (lat2 - lat1) / 2.0
    half_dlon = math.radians(lon - tower.lon) / 2.0
    h = math.sin(half_dlat) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(half_dlon) ** 2
    distance_m = 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
    if distance_m < MIN_TARGET_DISTANCE_M:
        raise ValueError(
            f"({lat}, {lon}) is the tower's own position ({distance_m:.0f} m away); "
            f"give a point at least {MIN_TARGET_DISTANCE_M:.0f} m from it"
        )
    if distance_m > max_range_m:
        raise ValueError(
            f"({lat}, {lon}) is {distance_m / 1000.0:.1f} km away, beyond "
            f"geolocation.max_range_m ({max_range_m / 1000.0:.1f} km)"
        )
    return distance_m


def bearing_elevation_to(
    tower: TowerSite,
    lat: float,
    lon: float,
    height_m: float,
    k: float = DEFAULT_REFRACTION_K,
) -> tuple[float, float]:
    """(pan/bearing_deg, tilt/elevation_deg) at which the tower sees a point, with refraction.

    Used to point the head at a known position and to place known heat sources
    and landmarks in angular coordinates; the inverse of geolocate.
    """
    distance, bearing, _ = geodesic_inverse(tower.lat, tower.lon, lat, lon)
    if float(distance) <= 0.0:
        raise ValueError(f"target ({lat}, {lon}) is at the tower's own position")
    elevation = elevation_to_height_deg(distance, tower.height_m, height_m, k)
    return float(bearing), float(elevation)


def flat_ground_range_sigma_m(
    tower_height_m: float,
    range_m: float,
    sigma_tilt_deg: float,
    k: float = DEFAULT_REFRACTION_K,
) -> float:
    """Linearised range error over flat ground: σ_θ / |h/R² − (1 − k)/(2 R_E)|; inf at the horizon.

    h is the tower's height above the ground. This is the analytic check of the
    Monte-Carlo (docs/physics/geolocation.md table); near the horizon the true spread is
    asymmetric and the Monte-Carlo is what geolocate reports.
    """
    slope = abs(tower_height_m / range_m**2 - (1.0 - k) / (2.0 * EARTH_RADIUS_M))
    return math.inf if slope == 0.0 else math.radians(sigma_tilt_deg) / slope


def _flat_intersection_m(
    start_height_m: float,
    ground_m: FloatArray,
    elevation_deg: FloatArray,
    k: FloatArray,
) -> FloatArray:
    """Ground distance where z(s) meets a level surface; NaN when the ray never does."""
    a = (1.0 - k) / (2.0 * EARTH_RADIUS_M)
    b = np.tan(np.radians(elevation_deg))
    c = start_height_m - ground_m
    disc = b * b - 4.0 * a * c
    root = np.sqrt(np.where(disc >= 0.0, disc, 0.0))
    denom = -b + root
    # 2c/(−b + √disc) is the near root of a·s² + b·s + c = 0 without the cancellation
    # of (−b − √disc)/2a when a is tiny (k close to 1); it also covers k > 1 (ducting).
    ok = (disc >= 0.0) & (denom > 0.0) & (c > 0.0)
    return np.where(ok, 2.0 * c / np.where(ok, denom, 1.0), np.nan)


# The tallest flames of a wind-driven reed or grass fire stand a few metres above the
# canopy; 10 m bounds them. Beyond the tower's horizon a fire shows only its flame tops
# against the sky, so this height sets how far a bearing-only fire can be.
FLAME_TOP_M = 10.0


def _flat_far_reach_m(
    start_height_m: float,
    ground_m: FloatArray,
    elevation_deg: FloatArray,
    k: FloatArray,
    flame_top_m: float = FLAME_TOP_M,
) -> FloatArray:
    """Farthest distance at which a ray that misses the level ground still passes within
    ``flame_top_m`` of it: the far end of where a fire's flames could stand on that line
    of sight. NaN when the ray never comes that low (the source stands higher: a flare
    top, a plume) or when the earth does not curve away from it (k ≥ 1)."""
    a = (1.0 - k) / (2.0 * EARTH_RADIUS_M)
    b = np.tan(np.radians(elevation_deg))
    c = start_height_m - ground_m - flame_top_m
    disc = b * b - 4.0 * a * c
    ok = (a > 0.0) & (disc >= 0.0)
    far = (-b + np.sqrt(np.where(ok, disc, 0.0))) / np.where(ok, 2.0 * a, 1.0)
    return np.where(ok & (far > 0.0), far, np.nan)


def _interp_path(nodes: FloatArray, s_m: FloatArray, spacing_m: float) -> FloatArray:
    """Values along each ray (rows of nodes, one node every spacing_m) at distances s_m.

    s_m is either one row of distances shared by all rays, shape (1, m), or one
    distance per ray, shape (n, 1).
    """
    pos = s_m / spacing_m
    idx = np.clip(pos.astype(np.intp), 0, nodes.shape[1] - 2)  # pos >= 0: truncation is floor
    w = pos - idx
    if s_m.shape[0] == 1:
        # Shared distances: whole-column gathers, much cheaper than per-element ones.
        lo, hi = nodes[:, idx[0]], nodes[:, idx[0] + 1]
    else:
        lo = np.take_along_axis(nodes, idx, axis=1)
        hi = np.take_along_axis(nodes, idx + 1, axis=1)
    return np.asarray(lo + (hi - lo) * w, dtype=np.float64)


def _terrain_intersection_m(
    tower: TowerSite,
    terrain: Terrain,
    bearing_deg: FloatArray,
    elevation_deg: FloatArray,
    k: FloatArray,
    surface_offset_m: FloatArray,
    max_range_m: float,
) -> FloatArray:
    """Ground distance where each refracted ray first meets terrain + offset; NaN when none.

    A coarse pass against the terrain's upper envelope skips the stretches where
    a ray clears every hill; from the first stretch it may not clear, the ray is
    marched with a step of at most half a DEM cell, so no ridge one cell wide is
    stepped over, and the bracketing step is bisected.
    """
    n = bearing_deg.shape[0]
    n_nodes = int(math.ceil(max_range_m / _PATH_NODE_SPACING_M)) + 2
    node_s = np.arange(n_nodes) * _PATH_NODE_SPACING_M
    lat_nodes, lon_nodes, _ = geodesic_direct(
        tower.lat, tower.lon, bearing_deg[:, None], node_s[None, :]
    )
    # Unwrap longitudes about the tower so interpolation never jumps across ±180°.
    lon_nodes = tower.lon + (lon_nodes - tower.lon + 180.0) % 360.0 - 180.0
    step_m = min(terrain.cell_size_m / 2.0, 50.0)

    def clearance(rows: npt.NDArray[np.intp], s: FloatArray) -> FloatArray:
        lat = _interp_path(lat_nodes[rows], s, _PATH_NODE_SPACING_M)
        lon = _interp_path(lon_nodes[rows], s, _PATH_NODE_SPACING_M)
        ground = terrain.height_or_nan(lat, lon) + surface_offset_m[rows, None]
        z = ray_height_m(s, tower.height_m, elevation_deg[rows, None], k[rows, None])
        return np.asarray(z - ground, dtype=np.float64)

    # Coarse pass: segment i is clear when the ray's lowest point on it (a parabola
    # sags at most A·Δ²/4 below its lower end) is above every height within half a
    # segment of its middle.
    coarse_m = step_m * _COARSE_STEP_FACTOR
    n_seg = int(math.ceil(max_range_m / coarse_m))
    edges = np.minimum(np.arange(n_seg + 1) * coarse_m, max_range_m)
    mids = 0.5 * (edges[:-1] + edges[1:])[None, :]
    envelope = terrain.envelope_or_nan(
        _interp_path(lat_nodes, mids, _PATH_NODE_SPACING_M),
        _interp_path(lon_nodes, mids, _PATH_NODE_SPACING_M),
        coarse_m / 2.0,
    )
    z_edges = ray_height_m(edges[None, :], tower.height_m, elevation_deg[:, None], k[:, None])
    sag = np.maximum((1.0 - k) / (2.0 * EARTH_RADIUS_M), 0.0)[:, None] * coarse_m**2 / 4.0
    lowest = np.minimum(z_edges[:, :-1], z_edges[:, 1:]) - sag - _ENVELOPE_MARGIN_M
    blocked = ~np.isnan(envelope) & (lowest <= envelope + surface_offset_m[:, None])
    # next_blocked[i, j]: the first segment at or after j that ray i may not clear.
    seg_index = np.where(blocked, np.arange(n_seg)[None, :], n_seg)
    next_blocked = np.minimum.accumulate(seg_index[:, ::-1], axis=1)[:, ::-1]
    next_blocked = np.concatenate([next_blocked, np.full((n, 1), n_seg)], axis=1)
    start = edges[np.minimum(next_blocked[:, 0], n_seg)]

    result = np.full(n, np.nan)
    active = np.flatnonzero(blocked.any(axis=1))
    seen_inside = np.zeros(n, dtype=bool)
    s0 = start.copy()
    block = np.arange(1, _MARCH_BLOCK_STEPS + 1) * step_m
    while active.size:
        s = np.minimum(s0[active, None] + block[None, :], max_range_m)
        gap = clearance(active, s)
        inside = ~np.isnan(gap)
        hit = inside & (gap <= 0.0)
        has_hit = hit.any(axis=1)
        if has_hit.any():
            rows = active[has_hit]
            first = hit[has_hit].argmax(axis=1)
            hi = s[has_hit, first]
            lo = np.maximum(hi - step_m, 0.0)
            for _ in range(_BISECTION_STEPS):
                mid = 0.5 * (lo + hi)
                below = clearance(rows, mid[:, None])[:, 0] <= 0.0
                hi = np.where(below, mid, hi)
                lo = np.where(below, lo, mid)
            result[rows] = hi
        seen_inside[active] |= inside.any(axis=1)
        # A ray that has crossed the grid and left it cannot come back (the grid is a
        # rectangle in its own coordinates), so stop marching it.
        left_grid = seen_inside[active] & ~inside.any(axis=1)
        active = active[~has_hit & ~left_grid]
        # Jump over clear stretches to the next segment the ray may not clear.
        s_next = s0[active] + block[-1]
        seg = np.minimum((s_next // coarse_m).astype(np.intp), n_seg)
        nxt = next_blocked[active, seg]
        s0[active] = np.where(
            nxt < n_seg, np.maximum(s_next, edges[np.minimum(nxt, n_seg)]), s_next
        )
        active = active[(nxt < n_seg) & (s0[active] < max_range_m)]
    return result


def _ellipse(east_m: FloatArray, north_m: FloatArray) -> Uncertainty:
    """The 95 % ellipse of a point cloud (orientation clockwise from north)."""
    cov = np.cov(np.stack([east_m, north_m]))
    eigval, eigvec = np.linalg.eigh(cov)
    eigval = np.clip(eigval, 0.0, None)
    major = eigvec[:, 1]
    orientation = math.degrees(math.atan2(major[0], major[1])) % 180.0
    return Uncertainty(
        semi_major_m=math.sqrt(_CHI2_2D_95 * eigval[1]),
        semi_minor_m=math.sqrt(_CHI2_2D_95 * eigval[0]),
        # a tiny negative angle wraps to exactly 180.0 in floating point
        orientation_deg=0.0 if orientation >= 180.0 else orientation,
    )


def plume_drift_sigma_m(
    tower_height_m: float,
    ground_m: float,
    slant_range_m: float,
    beam_elevation_deg: float,
    wind_m_s: float,
    rise_m_s: float,
    k: float = DEFAULT_REFRACTION_K,
) -> float:
    """1-σ along-beam distance between where a lidar beam crossed a plume and its fire.

    The beam meets the smoke z metres above the ground; smoke rising at rise_m_s in a
    wind of wind_m_s has drifted z·wind/rise downwind by then. Without the wind's
    direction the fire lies that far from the crossing in any direction: the along-beam
    offset d·cos φ with φ uniform has σ = d/√2 (and never exceeds d).
    """
    if not rise_m_s > 0.0:
        raise ValueError(f"plume rise speed must be positive, got {rise_m_s}")
    ground_range_m = slant_range_m * math.cos(math.radians(beam_elevation_deg))
    beam_m = float(ray_height_m(ground_range_m, tower_height_m, beam_elevation_deg, k))
    height_m = max(beam_m - ground_m, 0.0)
    return height_m * wind_m_s / rise_m_s / math.sqrt(2.0)


def _lopsided(range_m: float, p025_m: float, p975_m: float) -> bool:
    """True when the range interval is too lopsided about the nominal range for an ellipse."""
    near, far = max(range_m - p025_m, 0.0), max(p975_m - range_m, 0.0)
    if max(near, far) <= SKEW_NEGLIGIBLE_FRACTION * range_m:
        return False
    return max(near, far) > MAX_RANGE_SKEW * min(near, far)


def geolocate(
    tower: TowerSite,
    bearing_deg: float,
    elevation_deg: float,
    *,
    terrain: Terrain | None = None,
    ground_elevation_m: float = 0.0,
    canopy_height_m: float = 0.0,
    lidar_range_m: float | None = None,
    k: float = DEFAULT_REFRACTION_K,
    max_range_m: float = 30_000.0,
    errors: ErrorModel | None = None,
    max_range_sigma_m: float = 1000.0,
) -> Geolocation:
    """Locate the point a line of sight (true bearing, apparent elevation) falls on.

    Range comes from the lidar's slant range when given ('lidar'), else from the
    first intersection of the refracted ray with the DEM ('terrain') or with flat
    ground at ground_elevation_m on the curved earth ('earth'); canopy_height_m
    raises the surface the ray is stopped by. The 95 % ellipse and the 2.5–97.5 %
    range interval come from a seeded Monte-Carlo over pan, tilt, k, terrain
    height and lidar range errors; the result is bearing-only when the range
    spread (half the 16–84 % interval) exceeds max_range_sigma_m, when the ray may
    not meet the ground within max_range_m, or when the interval is too lopsided
    about the nominal range for an ellipse (MAX_RANGE_SKEW). Over flat ground a ray that misses it
    ends, for range_max_m, where it passes FLAME_TOP_M above the ground: beyond that
    no fire's flames can stand on the line of sight. max_range_m bounds it only where
    nothing better is known (terrain, a source that stands higher than flames).
    """
    if errors is None:
        errors = ErrorModel()
    if not max_range_m > 0.0:
        raise ValueError(f"max_range_m must be positive, got {max_range_m}")
    if lidar_range_m is not None and not lidar_range_m > 0.0:
        raise ValueError(f"lidar range must be positive, got {lidar_range_m}")
    if not -90.0 < elevation_deg < 90.0:
        raise ValueError(f"elevation_deg must be in (-90, 90), got {elevation_deg}")
    bearing_deg = bearing_deg % 360.0

    rng = np.random.default_rng(errors.seed)
    n = errors.samples
    bearings = np.empty(n + 1)
    elevations = np.empty(n + 1)
    ks = np.empty(n + 1)
    surface = np.empty(n + 1)
    # Sample 0 is the nominal ray; the rest are perturbed.
    bearings[0], elevations[0], ks[0], surface[0] = bearing_deg, elevation_deg, k, 0.0
    bearings[1:] = (bearing_deg + rng.normal(0.0, errors.sigma_pan_deg, n)) % 360.0
    elevations[1:] = elevation_deg + rng.normal(0.0, errors.sigma_tilt_deg, n)
    ks[1:] = k + rng.normal(0.0, errors.sigma_k, n)
    surface[1:] = rng.normal(0.0, errors.sigma_dem_m, n)
    surface += canopy_height_m

    source: RangeSource
    # Where a ray that misses the ground may still end: the configured cap, unless the
    # flat earth says more honestly how far flames on that line of sight can be.
    miss_bound_m = np.full(n + 1, max_range_m)
    if lidar_range_m is not None:
        source = "lidar"
        slant = np.empty(n + 1)
        slant[0] = lidar_range_m
        slant[1:] = lidar_range_m + rng.normal(0.0, errors.sigma_lidar_m, n)
        # Ground distance of a slant range: s = r·cos θ is within centimetres of the
        # curved-earth value at tower geometries (correction ~ r² sin θ / R_E).
        ranges = np.where(slant > 0.0, slant * np.cos(np.radians(elevations)), np.nan)
        ranges = np.where(ranges <= max_range_m, ranges, np.nan)
    elif terrain is None:
        source = "earth"
        ranges = _flat_intersection_m(tower.height_m, ground_elevation_m + surface, elevations, ks)
        ranges = np.where(ranges <= max_range_m, ranges, np.nan)
        far_m = _flat_far_reach_m(tower.height_m, ground_elevation_m + surface, elevations, ks)
        miss_bound_m = np.where(np.isnan(far_m), max_range_m, far_m)
    else:
        source = "terrain"
        ground_at_tower = float(terrain.height_or_nan(tower.lat, tower.lon))
        if math.isfinite(ground_at_tower) and ground_at_tower + canopy_height_m >= tower.height_m:
            raise ValueError(
                f"tower height_m {tower.height_m} is not above the DEM surface "
                f"{ground_at_tower + canopy_height_m:.1f} m at the tower; "
                "tower height must be the camera's height above MSL"
            )
        ranges = _terrain_intersection_m(
            tower, terrain, bearings, elevations, ks, surface, max_range_m
        )

    hits = ~np.isnan(ranges)
    clipped = np.where(hits, ranges, miss_bound_m)
    sample_ranges = clipped[1:]
    p025, p16, p84, p975 = np.percentile(sample_ranges, [2.5, 16.0, 84.0, 97.5])
    range_sigma = float(p84 - p16) / 2.0
    nominal_hit = bool(hits[0])
    miss_fraction = float(np.mean(~hits[1:]))
    bearing_only = (
        not nominal_hit
        or range_sigma > max_range_sigma_m
        or miss_fraction > 0.025
        or _lopsided(float(ranges[0]), float(p025), float(p975))
    )

    lat_s, lon_s, _ = geodesic_direct(tower.lat, tower.lon, bearings, clipped)
    if not nominal_hit:
        return Geolocation(
            lat=None,
            lon=None,
            height_m=None,
            bearing_deg=bearing_deg,
            elevation_deg=elevation_deg,
            range_m=None,
            range_source=source,
            range_sigma_m=range_sigma,
            range_min_m=float(min(p025, miss_bound_m[0])),
            range_max_m=float(max(p975, miss_bound_m[0])),
            uncertainty=None,
            bearing_only=True,
        )
    lat0, lon0 = float(lat_s[0]), float(lon_s[0])
    range0 = float(ranges[0])
    height0 = float(ray_height_m(range0, tower.height_m, elevation_deg, k))
    uncertainty = None
    if not bearing_only:
        east, north, _ = geodetic_to_enu(lat_s[1:], lon_s[1:], 0.0, lat0, lon0, 0.0)
        uncertainty = _ellipse(east, north)
    return Geolocation(
        lat=lat0,
        lon=lon0,
        height_m=height0,
        bearing_deg=bearing_deg,
        elevation_deg=elevation_deg,
        range_m=range0,
        range_source=source,
        range_sigma_m=range_sigma,
        range_min_m=float(min(p025, range0)),
        range_max_m=float(max(p975, range0)),
        uncertainty=uncertainty,
        bearing_only=bearing_only,
    )


def geolocate_pixel(
    tower: TowerSite,
    u_px: float,
    v_px: float,
    pose: Pose,
    lens: Lens,
    *,
    terrain: Terrain | None = None,
    ground_elevation_m: float = 0.0,
    canopy_height_m: float = 0.0,
    lidar_range_m: float | None = None,
    k: float = DEFAULT_REFRACTION_K,
    max_range_m: float = 30_000.0,
    errors: ErrorModel | None = None,
    max_range_sigma_m: float = 1000.0,
) -> Geolocation:
    """geolocate() for the line of sight through pixel (u, v) at a calibrated pose."""
    bearing, elevation = pixel_bearing_elevation(u_px, v_px, pose, lens)
    return geolocate(
        tower,
        bearing,
        elevation,
        terrain=terrain,
        ground_elevation_m=ground_elevation_m,
        canopy_height_m=canopy_height_m,
        lidar_range_m=lidar_range_m,
        k=k,
        max_range_m=max_range_m,
        errors=errors,
        max_range_sigma_m=max_range_sigma_m,
    )
