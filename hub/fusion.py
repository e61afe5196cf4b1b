"""Fire fusion maths: bearing rays in a local metric frame, association and triangulation.

Pure functions over plain values (no store, no MQTT, no clock). Each bearing is an
azimuth clockwise from true north *at its tower*; two towers 15 km apart see true north
up to ~0.1° apart in one local frame (meridian convergence), so every bearing is turned
into the frame through ECEF before any geometry is done (algorithms note in docs/hub.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.geodesy import (
    WGS84_A_M,
    WGS84_E2,
    _enu_basis,
    destination,
    ecef_to_geodetic,
    enu_to_geodetic,
    geodetic_to_enu,
)

# χ² with 2 degrees of freedom: P(inside) = 0.95 ⇒ the 95 % ellipse scales 1σ by √5.991.
CHI2_2DOF_95: float = 5.991464547107979
# Normal quantile for a two-sided 95 % interval (bearing wedges, range intervals).
Z_95: float = 1.959963984540054
# χ² 99 % quantiles for 1..10 degrees of freedom (association gate); Wilson-Hilferty above.
_CHI2_99: tuple[float, ...] = (
    6.635,
    9.210,
    11.345,
    13.277,
    15.086,
    16.812,
    18.475,
    20.090,
    21.666,
    23.209,
)
_Z_99 = 2.3263478740408408
# A ray range interval is widened by this much before the gate: the tower's own interval is
# a 95 % statement, and a crossing just outside it is still the same fire.
RANGE_GATE_MARGIN_FRACTION = 0.1
# Range sources that constrain distance along the ray; `earth` over flat land is too loose
# to be more than the association interval.
RANGE_CONSTRAINING_SOURCES = frozenset({"lidar", "terrain"})
ELLIPSE_POLYGON_POINTS = 48
WEDGE_ARC_POINTS = 12


def chi2_quantile_99(dof: int) -> float:
    """99 % quantile of χ² with ``dof`` degrees of freedom (0 for dof ≤ 0)."""
    if dof <= 0:
        return 0.0
    if dof <= len(_CHI2_99):
        return _CHI2_99[dof - 1]
    h = 2.0 / (9.0 * dof)
    return dof * (1.0 - h + _Z_99 * math.sqrt(h)) ** 3


@dataclass(frozen=True)
class Observation:
    """One tower's latest look at a fire: the parts of an alarm the maths needs."""

    key: str
    tower_id: str
    tower_lat_deg: float
    tower_lon_deg: float
    bearing_deg: float
    bearing_sigma_deg: float
    time_s: float
    range_source: str = "none"
    range_m: float | None = None
    range_min_m: float | None = None
    range_max_m: float | None = None
    test: bool = False

    @property
    def constrains_range(self) -> bool:
        return self.range_source in RANGE_CONSTRAINING_SOURCES and self.range_m is not None

    @property
    def range_sigma_m(self) -> float:
        """1σ of the range: from the stated 95 % interval, else 2 % of the range."""
        if self.range_m is None:
            return math.inf
        if self.range_min_m is not None and self.range_max_m is not None:
            half = (self.range_max_m - self.range_min_m) / 2.0
            if half > 0.0:
                return half / Z_95
        return max(0.02 * self.range_m, 1.0)

    def range_interval_m(self, default_max_m: float) -> tuple[float, float]:
        low = self.range_min_m if self.range_min_m is not None else 0.0
        high = self.range_max_m if self.range_max_m is not None else default_max_m
        if self.range_m is not None and self.range_min_m is None and self.range_max_m is None:
            sigma = self.range_sigma_m
            low, high = self.range_m - 3.0 * sigma, self.range_m + 3.0 * sigma
        return low, high


def _ecef(lat_deg: float, lon_deg: float) -> tuple[float, float, float]:
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    sin_lat = math.sin(lat)
    n = WGS84_A_M / math.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)
    return (
        n * math.cos(lat) * math.cos(lon),
        n * math.cos(lat) * math.sin(lon),
        n * (1.0 - WGS84_E2) * sin_lat,
    )


class LocalFrame:
    """East/north metres on the tangent plane at an origin (ENU through ECEF)."""

    def __init__(self, lat0_deg: float, lon0_deg: float) -> None:
        self.lat0_deg = lat0_deg
        self.lon0_deg = lon0_deg
        self._basis = _enu_basis(lat0_deg, lon0_deg)
        self._rows = tuple(tuple(float(v) for v in row) for row in self._basis)
        self._origin = _ecef(lat0_deg, lon0_deg)

    # Scalar versions of the same transforms in plain floats: a county pass converts
    # thousands of single points, where numpy's per-call overhead dominates.
    def local_of(self, lat_deg: float, lon_deg: float) -> tuple[float, float]:
        x, y, z = _ecef(lat_deg, lon_deg)
        dx, dy, dz = x - self._origin[0], y - self._origin[1], z - self._origin[2]
        east, north = self._rows[0], self._rows[1]
        return (
            east[0] * dx + east[1] * dy + east[2] * dz,
            north[0] * dx + north[1] * dy + north[2] * dz,
        )

    def geodetic_of(self, e_m: float, n_m: float) -> tuple[float, float]:
        east, north = self._rows[0], self._rows[1]
        x = self._origin[0] + e_m * east[0] + n_m * north[0]
        y = self._origin[1] + e_m * east[1] + n_m * north[1]
        z = self._origin[2] + e_m * east[2] + n_m * north[2]
        lat, lon, _ = ecef_to_geodetic(x, y, z)
        return float(lat), float(lon)

    @classmethod
    def around(cls, observations: Sequence[Observation]) -> LocalFrame:
        lat = sum(o.tower_lat_deg for o in observations) / len(observations)
        lon = sum(o.tower_lon_deg for o in observations) / len(observations)
        return cls(lat, lon)

    def to_local(self, lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike) -> npt.NDArray[np.float64]:
        e, n, _ = geodetic_to_enu(lat_deg, lon_deg, 0.0, self.lat0_deg, self.lon0_deg, 0.0)
        return np.stack([np.asarray(e), np.asarray(n)], axis=-1)

    def to_geodetic(
        self, e_m: npt.ArrayLike, n_m: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        # A point on the plane is not on the ellipsoid; drop it to the surface along the
        # local vertical by converting and discarding the (small) height.
        lat, lon, _ = enu_to_geodetic(e_m, n_m, 0.0, self.lat0_deg, self.lon0_deg, 0.0)
        return np.asarray(lat), np.asarray(lon)

    def azimuth_in_frame_rad(self, lat_deg: float, lon_deg: float, azimuth_deg: float) -> float:
        """A true azimuth at (lat, lon) as an azimuth clockwise from the frame's north."""
        lat, lon, az = math.radians(lat_deg), math.radians(lon_deg), math.radians(azimuth_deg)
        sl, cl, so, co = math.sin(lat), math.cos(lat), math.sin(lon), math.cos(lon)
        sa, ca = math.sin(az), math.cos(az)
        # sin(az)·east + cos(az)·north of the point, in ECEF (rows of its ENU basis)
        dx = -sa * so - ca * sl * co
        dy = sa * co - ca * sl * so
        dz = ca * cl
        b = self._basis
        east = b[0, 0] * dx + b[0, 1] * dy + b[0, 2] * dz
        north = b[1, 0] * dx + b[1, 1] * dy + b[1, 2] * dz
        return math.atan2(east, north)


@dataclass(frozen=True)
class Ray:
    origin_m: npt.NDArray[np.float64]
    azimuth_rad: float
    sigma_rad: float

    @property
    def direction(self) -> npt.NDArray[np.float64]:
        return np.array([math.sin(self.azimuth_rad), math.cos(self.azimuth_rad)])


def rays_in(frame: LocalFrame, observations: Sequence[Observation]) -> list[Ray]:
    return [
        Ray(
            np.array(frame.local_of(o.tower_lat_deg, o.tower_lon_deg)),
            frame.azimuth_in_frame_rad(o.tower_lat_deg, o.tower_lon_deg, o.bearing_deg),
            math.radians(o.bearing_sigma_deg),
        )
        for o in observations
    ]


def crossing(a: Ray, b: Ray) -> tuple[float, float] | None:
    """Distances along ``a`` and ``b`` to where they cross, or None when parallel."""
    da, db = a.direction, b.direction
    det = da[0] * (-db[1]) - da[1] * (-db[0])
    if abs(det) < 1e-9:
        return None
    rhs = b.origin_m - a.origin_m
    t_a = (rhs[0] * (-db[1]) - rhs[1] * (-db[0])) / det
    t_b = (da[0] * rhs[1] - da[1] * rhs[0]) / det
    return float(t_a), float(t_b)


def intersection_angle_deg(a: Ray, b: Ray) -> float:
    """Angle between two rays at their crossing, 0-180°."""
    return math.degrees(abs(_wrap_pi(a.azimuth_rad - b.azimuth_rad)))


def _wrap_pi(angle_rad: float) -> float:
    return (angle_rad + math.pi) % (2.0 * math.pi) - math.pi


@dataclass(frozen=True)
class Ellipse:
    """A 95 % error ellipse; orientation of the major axis clockwise from true north."""

    semi_major_m: float
    semi_minor_m: float
    orientation_deg: float


@dataclass(frozen=True)
class Fix:
    """A triangulated position with its covariance and the fit's χ²."""

    lat_deg: float
    lon_deg: float
    ellipse: Ellipse
    chi2: float
    dof: int
    min_angle_deg: float
    max_angle_deg: float
    local_m: tuple[float, float]
    covariance_m2: tuple[tuple[float, float], tuple[float, float]]
    frame: LocalFrame = field(repr=False, compare=False)


def _normal_equations(
    x: tuple[float, float], rays: Sequence[Ray], observations: Sequence[Observation]
) -> tuple[float, float, float, float, float, float, int]:
    """JᵀJ (a11, a12, a22), Jᵀr (g1, g2), χ² and the row count of the whitened residuals.

    Rows: one per bearing, one per lidar/terrain range. Plain floats: a 2×2 system is
    solved faster by hand than by numpy, and a county pass solves hundreds of them.
    """
    a11 = a12 = a22 = g1 = g2 = chi2 = 0.0
    rows = 0
    for ray, obs in zip(rays, observations, strict=True):
        de = x[0] - float(ray.origin_m[0])
        dn = x[1] - float(ray.origin_m[1])
        r2 = de * de + dn * dn
        predicted = math.atan2(de, dn)
        res = _wrap_pi(ray.azimuth_rad - predicted) / ray.sigma_rad
        # d(predicted)/d(east, north) = (north, -east) / r²; the residual has the opposite sign
        j1, j2 = -dn / r2 / ray.sigma_rad, de / r2 / ray.sigma_rad
        a11, a12, a22 = a11 + j1 * j1, a12 + j1 * j2, a22 + j2 * j2
        g1, g2, chi2, rows = g1 + j1 * res, g2 + j2 * res, chi2 + res * res, rows + 1
        if obs.constrains_range and obs.range_m is not None:
            r = math.sqrt(r2)
            sigma = obs.range_sigma_m
            res = (obs.range_m - r) / sigma
            j1, j2 = -de / r / sigma, -dn / r / sigma
            a11, a12, a22 = a11 + j1 * j1, a12 + j1 * j2, a22 + j2 * j2
            g1, g2, chi2, rows = g1 + j1 * res, g2 + j2 * res, chi2 + res * res, rows + 1
    return a11, a12, a22, g1, g2, chi2, rows


def _initial_guess(
    rays: Sequence[Ray], observations: Sequence[Observation]
) -> npt.NDArray[np.float64] | None:
    best: tuple[float, npt.NDArray[np.float64]] | None = None
    for i in range(len(rays)):
        for j in range(i + 1, len(rays)):
            cross = crossing(rays[i], rays[j])
            if cross is None or cross[0] <= 0.0 or cross[1] <= 0.0:
                continue
            quality = abs(math.sin(math.radians(intersection_angle_deg(rays[i], rays[j]))))
            if best is None or quality > best[0]:
                best = (quality, rays[i].origin_m + cross[0] * rays[i].direction)
    if best is not None:
        return best[1]
    for ray, obs in zip(rays, observations, strict=True):
        if obs.constrains_range and obs.range_m is not None:
            return ray.origin_m + obs.range_m * ray.direction
    return None


def triangulate(observations: Sequence[Observation], iterations: int = 8) -> Fix | None:
    """Weighted least squares of bearings (and lidar/terrain ranges) in a local frame.

    Returns None when the observations do not determine a point (one bearing without a
    range, parallel or diverging rays). The covariance is the inverse normal matrix: with
    the stated 1σ bearings, the 95 % ellipse is √χ²₂(0.95) times its 1σ axes.
    """
    if not observations:
        return None
    frame = LocalFrame.around(observations)
    rays = rays_in(frame, observations)
    x = _initial_guess(rays, observations)
    if x is None:
        return None
    e, n = float(x[0]), float(x[1])
    for _ in range(iterations):
        a11, a12, a22, g1, g2, _, _ = _normal_equations((e, n), rays, observations)
        det = a11 * a22 - a12 * a12
        if det < 1e-18:
            return None
        step_e = -(a22 * g1 - a12 * g2) / det
        step_n = -(a11 * g2 - a12 * g1) / det
        e, n = e + step_e, n + step_n
        # converged to a centimetre: far below any stated uncertainty
        if step_e * step_e + step_n * step_n < 1e-4:
            break
    a11, a12, a22, _, _, chi2, rows = _normal_equations((e, n), rays, observations)
    det = a11 * a22 - a12 * a12
    if det < 1e-18:
        return None
    x = np.array([e, n])
    # A fix behind a tower is no fix: the ray points away from it.
    for ray in rays:
        if float((x - ray.origin_m) @ ray.direction) <= 0.0:
            return None
    normal = np.array([[a11, a12], [a12, a22]])
    cov: npt.NDArray[np.float64] = np.asarray(np.linalg.inv(normal), dtype=np.float64)
    lat, lon = frame.geodetic_of(e, n)
    ellipse = ellipse_from_covariance(cov, frame, lat, lon)
    angles = [
        math.degrees(abs(_wrap_pi(math.atan2(*(x - a.origin_m)) - math.atan2(*(x - b.origin_m)))))
        for i, a in enumerate(rays)
        for b in rays[i + 1 :]
    ]
    return Fix(
        lat_deg=lat,
        lon_deg=lon,
        ellipse=ellipse,
        chi2=chi2,
        dof=rows - 2,
        min_angle_deg=min(angles) if angles else 0.0,
        max_angle_deg=max(angles) if angles else 0.0,
        local_m=(float(x[0]), float(x[1])),
        covariance_m2=((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))),
        frame=frame,
    )


def ellipse_from_covariance(
    cov: npt.NDArray[np.float64], frame: LocalFrame, lat_deg: float, lon_deg: float
) -> Ellipse:
    values, vectors = np.linalg.eigh(cov)
    major = vectors[:, 1]
    frame_az = math.atan2(major[0], major[1])
    # The frame's north is not true north at the fire; turn the axis back by the difference.
    north_at_fire = frame.azimuth_in_frame_rad(lat_deg, lon_deg, 0.0)
    orientation = math.degrees(frame_az - north_at_fire) % 180.0
    return Ellipse(
        semi_major_m=math.sqrt(max(float(values[1]), 0.0) * CHI2_2DOF_95),
        semi_minor_m=math.sqrt(max(float(values[0]), 0.0) * CHI2_2DOF_95),
        orientation_deg=orientation,
    )


def inside_ellipse(fix: Fix, lat_deg: float, lon_deg: float) -> bool:
    """True when (lat, lon) lies inside the fix's 95 % ellipse (Mahalanobis test)."""
    point = fix.frame.local_of(lat_deg, lon_deg)
    d = np.array(point) - np.array(fix.local_m)
    cov = np.array(fix.covariance_m2)
    return float(d @ np.linalg.solve(cov, d)) <= CHI2_2DOF_95


# --------------------------------------------------------------------------- polygons


def _ccw_ring(points: list[tuple[float, float]]) -> list[list[float]]:
    """Close a (lon, lat) ring and make it counter-clockwise (RFC 7946 exterior ring)."""
    area2 = sum(
        x1 * y2 - x2 * y1
        for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True)
    )
    if area2 < 0:
        points = points[::-1]
    ring = [[round(lon, 7), round(lat, 7)] for lon, lat in points]
    ring.append(list(ring[0]))
    return ring


def ellipse_ring(
    lat_deg: float, lon_deg: float, ellipse: Ellipse, points: int = ELLIPSE_POLYGON_POINTS
) -> list[list[float]]:
    """The 95 % ellipse as a closed [lon, lat] ring."""
    frame = LocalFrame(lat_deg, lon_deg)
    theta = np.linspace(0.0, 2.0 * math.pi, points, endpoint=False)
    along = ellipse.semi_major_m * np.cos(theta)
    across = ellipse.semi_minor_m * np.sin(theta)
    o = math.radians(ellipse.orientation_deg)
    east = along * math.sin(o) + across * math.cos(o)
    north = along * math.cos(o) - across * math.sin(o)
    lats, lons = frame.to_geodetic(east, north)
    return _ccw_ring(list(zip(lons.tolist(), lats.tolist(), strict=True)))


def wedge_ring(
    obs: Observation, default_max_range_m: float, arc_points: int = WEDGE_ARC_POINTS
) -> list[list[float]]:
    """The bearing wedge of one tower (±1.96σ, over its range interval) as a [lon, lat] ring."""
    low_m, high_m = obs.range_interval_m(default_max_range_m)
    low_m = max(low_m, 0.0)
    high_m = max(high_m, low_m + 1.0)
    half_deg = Z_95 * obs.bearing_sigma_deg
    bearings = np.linspace(obs.bearing_deg - half_deg, obs.bearing_deg + half_deg, arc_points)
    far = [destination(obs.tower_lat_deg, obs.tower_lon_deg, float(b), high_m) for b in bearings]
    if low_m > 0.0:
        near = [
            destination(obs.tower_lat_deg, obs.tower_lon_deg, float(b), low_m) for b in bearings
        ]
    else:
        near = [(obs.tower_lat_deg, obs.tower_lon_deg)]
    latlon = far + near[::-1]
    return _ccw_ring([(lon, lat) for lat, lon in latlon])
