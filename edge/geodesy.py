"""WGS-84 geodesy: ECEF and local ENU frames, geodesics (Vincenty), refracted lines of sight."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

# The earth and refraction constants live in detectors.geometry (shared with the
# simulators). The refracted line of sight uses the mean radius: the radius of curvature
# along the actual azimuth would move the 10 km drop by < 1 cm, far below what a 0.1
# uncertainty in the refraction coefficient does (~0.8 m). Near the ground k ranges
# from about -4 to +16 (Hirt et al. 2010); 0.13 is the classical daytime value the
# tower's geometry is calibrated against.
from detectors.geometry import (
    DEFAULT_REFRACTION_K,
    EARTH_RADIUS_M,
    WGS84_A_M,
    WGS84_B_M,
    WGS84_E2,
    WGS84_F,
)

FloatArray = npt.NDArray[np.float64]

WGS84_EP2 = WGS84_E2 / (1.0 - WGS84_E2)

_VINCENTY_TOL_RAD = 1e-12
_VINCENTY_MAX_ITER = 200


def _f64(x: npt.ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def geodetic_to_ecef(
    lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike, h_m: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Earth-centred earth-fixed (x, y, z) in metres of WGS-84 lat/lon and ellipsoidal height."""
    lat = np.radians(_f64(lat_deg))
    lon = np.radians(_f64(lon_deg))
    h = _f64(h_m)
    sin_lat = np.sin(lat)
    n = WGS84_A_M / np.sqrt(1.0 - WGS84_E2 * sin_lat**2)
    x = (n + h) * np.cos(lat) * np.cos(lon)
    y = (n + h) * np.cos(lat) * np.sin(lon)
    z = (n * (1.0 - WGS84_E2) + h) * sin_lat
    return x, y, z


def ecef_to_geodetic(
    x_m: npt.ArrayLike, y_m: npt.ArrayLike, z_m: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """WGS-84 (lat_deg, lon_deg, h_m) of ECEF coordinates (Bowring's iteration).

    Two Bowring iterations are sub-millimetre for points within tens of kilometres
    of the surface; a third costs nothing and covers aircraft heights.
    """
    x, y, z = _f64(x_m), _f64(y_m), _f64(z_m)
    lon = np.arctan2(y, x)
    p = np.hypot(x, y)
    beta = np.arctan2(z, (1.0 - WGS84_F) * p)
    lat = beta
    for _ in range(3):
        lat = np.arctan2(
            z + WGS84_EP2 * WGS84_B_M * np.sin(beta) ** 3,
            p - WGS84_E2 * WGS84_A_M * np.cos(beta) ** 3,
        )
        beta = np.arctan2((1.0 - WGS84_F) * np.sin(lat), np.cos(lat))
    sin_lat = np.sin(lat)
    # This form of the height stays well-conditioned at the poles, where p -> 0.
    h = p * np.cos(lat) + z * sin_lat - WGS84_A_M * np.sqrt(1.0 - WGS84_E2 * sin_lat**2)
    return np.degrees(lat), np.degrees(lon), h


def _enu_basis(lat0_deg: float, lon0_deg: float) -> FloatArray:
    """Rows: unit east, north, up vectors in ECEF at a geodetic origin."""
    lat, lon = math.radians(lat0_deg), math.radians(lon0_deg)
    sl, cl = math.sin(lat), math.cos(lat)
    so, co = math.sin(lon), math.cos(lon)
    return np.array(
        [
            [-so, co, 0.0],
            [-sl * co, -sl * so, cl],
            [cl * co, cl * so, sl],
        ]
    )


def ecef_to_enu(
    x_m: npt.ArrayLike,
    y_m: npt.ArrayLike,
    z_m: npt.ArrayLike,
    lat0_deg: float,
    lon0_deg: float,
    h0_m: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Local (east, north, up) in metres of ECEF points, relative to a geodetic origin."""
    x0, y0, z0 = (float(c) for c in geodetic_to_ecef(lat0_deg, lon0_deg, h0_m))
    d = np.stack(np.broadcast_arrays(_f64(x_m) - x0, _f64(y_m) - y0, _f64(z_m) - z0))
    e, n, u = np.tensordot(_enu_basis(lat0_deg, lon0_deg), d, axes=1)
    return e, n, u


def enu_to_ecef(
    e_m: npt.ArrayLike,
    n_m: npt.ArrayLike,
    u_m: npt.ArrayLike,
    lat0_deg: float,
    lon0_deg: float,
    h0_m: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """ECEF coordinates of local (east, north, up) offsets from a geodetic origin."""
    x0, y0, z0 = (float(c) for c in geodetic_to_ecef(lat0_deg, lon0_deg, h0_m))
    d = np.stack(np.broadcast_arrays(_f64(e_m), _f64(n_m), _f64(u_m)))
    x, y, z = np.tensordot(_enu_basis(lat0_deg, lon0_deg).T, d, axes=1)
    return x + x0, y + y0, z + z0


def geodetic_to_enu(
    lat_deg: npt.ArrayLike,
    lon_deg: npt.ArrayLike,
    h_m: npt.ArrayLike,
    lat0_deg: float,
    lon0_deg: float,
    h0_m: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Local (east, north, up) in metres of geodetic points, relative to a geodetic origin."""
    return ecef_to_enu(*geodetic_to_ecef(lat_deg, lon_deg, h_m), lat0_deg, lon0_deg, h0_m)


def enu_to_geodetic(
    e_m: npt.ArrayLike,
    n_m: npt.ArrayLike,
    u_m: npt.ArrayLike,
    lat0_deg: float,
    lon0_deg: float,
    h0_m: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Geodetic (lat_deg, lon_deg, h_m) of local (east, north, up) offsets from an origin."""
    return ecef_to_geodetic(*enu_to_ecef(e_m, n_m, u_m, lat0_deg, lon0_deg, h0_m))


def geodesic_inverse(
    lat1_deg: npt.ArrayLike,
    lon1_deg: npt.ArrayLike,
    lat2_deg: npt.ArrayLike,
    lon2_deg: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Ellipsoidal (distance_m, azimuth1_deg, azimuth2_deg) between points (Vincenty 1975).

    azimuth1 is the initial bearing at point 1, azimuth2 the forward bearing on
    arrival at point 2, both clockwise from true north in [0, 360). Accurate to
    well under a millimetre; raises for nearly antipodal points, where the
    iteration does not converge (never the case for a tower's field of view).
    """
    lat1, lat2 = np.radians(_f64(lat1_deg)), np.radians(_f64(lat2_deg))
    big_l = np.radians(_f64(lon2_deg) - _f64(lon1_deg))
    lat1, lat2, big_l = np.broadcast_arrays(lat1, lat2, big_l)
    f, a, b = WGS84_F, WGS84_A_M, WGS84_B_M
    u1 = np.arctan((1.0 - f) * np.tan(lat1))
    u2 = np.arctan((1.0 - f) * np.tan(lat2))
    su1, cu1, su2, cu2 = np.sin(u1), np.cos(u1), np.sin(u2), np.cos(u2)
    lam = big_l.copy()
    for _ in range(_VINCENTY_MAX_ITER):
        sl, cl = np.sin(lam), np.cos(lam)
        sin_sigma = np.hypot(cu2 * sl, cu1 * su2 - su1 * cu2 * cl)
        cos_sigma = su1 * su2 + cu1 * cu2 * cl
        sigma = np.arctan2(sin_sigma, cos_sigma)
        coincident = sin_sigma == 0.0
        safe_sin_sigma = np.where(coincident, 1.0, sin_sigma)
        sin_alpha = np.where(coincident, 0.0, cu1 * cu2 * sl / safe_sin_sigma)
        cos2_alpha = 1.0 - sin_alpha**2
        # On the equator cos2_alpha is 0 and the term vanishes (Vincenty's note).
        safe_cos2 = np.where(cos2_alpha == 0.0, 1.0, cos2_alpha)
        cos_2sm = np.where(cos2_alpha == 0.0, 0.0, cos_sigma - 2.0 * su1 * su2 / safe_cos2)
        c = f / 16.0 * cos2_alpha * (4.0 + f * (4.0 - 3.0 * cos2_alpha))
        lam_prev = lam
        lam = big_l + (1.0 - c) * f * sin_alpha * (
            sigma + c * sin_sigma * (cos_2sm + c * cos_sigma * (-1.0 + 2.0 * cos_2sm**2))
        )
        if np.all(np.abs(lam - lam_prev) < _VINCENTY_TOL_RAD):
            break
    else:
        raise ValueError(
            "geodesic between nearly antipodal points did not converge; "
            "points must be in the same hemisphere of view"
        )
    usq = cos2_alpha * (a * a - b * b) / (b * b)
    big_a = 1.0 + usq / 16384.0 * (4096.0 + usq * (-768.0 + usq * (320.0 - 175.0 * usq)))
    big_b = usq / 1024.0 * (256.0 + usq * (-128.0 + usq * (74.0 - 47.0 * usq)))
    delta_sigma = (
        big_b
        * sin_sigma
        * (
            cos_2sm
            + big_b
            / 4.0
            * (
                cos_sigma * (-1.0 + 2.0 * cos_2sm**2)
                - big_b / 6.0 * cos_2sm * (-3.0 + 4.0 * sin_sigma**2) * (-3.0 + 4.0 * cos_2sm**2)
            )
        )
    )
    distance = b * big_a * (sigma - delta_sigma)
    sl, cl = np.sin(lam), np.cos(lam)
    az1 = np.arctan2(cu2 * sl, cu1 * su2 - su1 * cu2 * cl)
    az2 = np.arctan2(cu1 * sl, -su1 * cu2 + cu1 * su2 * cl)
    az1 = np.where(coincident, 0.0, az1)
    az2 = np.where(coincident, 0.0, az2)
    return distance, np.degrees(az1) % 360.0, np.degrees(az2) % 360.0


def geodesic_direct(
    lat1_deg: npt.ArrayLike,
    lon1_deg: npt.ArrayLike,
    azimuth1_deg: npt.ArrayLike,
    distance_m: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(lat2_deg, lon2_deg, azimuth2_deg) reached along a geodesic (Vincenty 1975).

    Starts at point 1 with initial bearing azimuth1 (clockwise from true north) and
    travels distance_m along the WGS-84 ellipsoid; longitudes come back in
    (-180, 180].
    """
    lat1 = np.radians(_f64(lat1_deg))
    alpha1 = np.radians(_f64(azimuth1_deg))
    s = _f64(distance_m)
    lat1, alpha1, s, lon1_b = np.broadcast_arrays(lat1, alpha1, s, _f64(lon1_deg))
    f, a, b = WGS84_F, WGS84_A_M, WGS84_B_M
    sa1, ca1 = np.sin(alpha1), np.cos(alpha1)
    tan_u1 = (1.0 - f) * np.tan(lat1)
    cu1 = 1.0 / np.sqrt(1.0 + tan_u1**2)
    su1 = tan_u1 * cu1
    sigma1 = np.arctan2(tan_u1, ca1)
    sin_alpha = cu1 * sa1
    cos2_alpha = 1.0 - sin_alpha**2
    usq = cos2_alpha * (a * a - b * b) / (b * b)
    big_a = 1.0 + usq / 16384.0 * (4096.0 + usq * (-768.0 + usq * (320.0 - 175.0 * usq)))
    big_b = usq / 1024.0 * (256.0 + usq * (-128.0 + usq * (74.0 - 47.0 * usq)))
    sigma = s / (b * big_a)
    for _ in range(_VINCENTY_MAX_ITER):
        cos_2sm = np.cos(2.0 * sigma1 + sigma)
        sin_sigma, cos_sigma = np.sin(sigma), np.cos(sigma)
        delta_sigma = (
            big_b
            * sin_sigma
            * (
                cos_2sm
                + big_b
                / 4.0
                * (
                    cos_sigma * (-1.0 + 2.0 * cos_2sm**2)
                    - big_b
                    / 6.0
                    * cos_2sm
                    * (-3.0 + 4.0 * sin_sigma**2)
                    * (-3.0 + 4.0 * cos_2sm**2)
                )
            )
        )
        sigma_prev = sigma
        sigma = s / (b * big_a) + delta_sigma
        if np.all(np.abs(sigma - sigma_prev) < _VINCENTY_TOL_RAD):
            break
    cos_2sm = np.cos(2.0 * sigma1 + sigma)
    sin_sigma, cos_sigma = np.sin(sigma), np.cos(sigma)
    tmp = su1 * sin_sigma - cu1 * cos_sigma * ca1
    lat2 = np.arctan2(su1 * cos_sigma + cu1 * sin_sigma * ca1, (1.0 - f) * np.hypot(sin_alpha, tmp))
    lam = np.arctan2(sin_sigma * sa1, cu1 * cos_sigma - su1 * sin_sigma * ca1)
    c = f / 16.0 * cos2_alpha * (4.0 + f * (4.0 - 3.0 * cos2_alpha))
    big_l = lam - (1.0 - c) * f * sin_alpha * (
        sigma + c * sin_sigma * (cos_2sm + c * cos_sigma * (-1.0 + 2.0 * cos_2sm**2))
    )
    lon2 = (lon1_b + np.degrees(big_l) + 180.0) % 360.0 - 180.0
    alpha2 = np.arctan2(sin_alpha, -tmp)
    return np.degrees(lat2), lon2, np.degrees(alpha2) % 360.0


def distance_bearing(
    lat1_deg: float, lon1_deg: float, lat2_deg: float, lon2_deg: float
) -> tuple[float, float]:
    """(distance_m, initial bearing_deg) from point 1 to point 2 on the WGS-84 ellipsoid."""
    d, az1, _ = geodesic_inverse(lat1_deg, lon1_deg, lat2_deg, lon2_deg)
    return float(d), float(az1)


def destination(
    lat_deg: float, lon_deg: float, bearing_deg: float, distance_m: float
) -> tuple[float, float]:
    """(lat_deg, lon_deg) reached from a point along a geodesic with an initial bearing."""
    lat2, lon2, _ = geodesic_direct(lat_deg, lon_deg, bearing_deg, distance_m)
    return float(lat2), float(lon2)


def ray_height_m(
    ground_distance_m: npt.ArrayLike,
    start_height_m: npt.ArrayLike,
    elevation_deg: npt.ArrayLike,
    k: npt.ArrayLike = DEFAULT_REFRACTION_K,
) -> FloatArray:
    """Height above the sphere of a refracted line of sight at a ground distance.

    z(s) = z0 + s·tan θ + s²(1 − k)/(2 R_E): the earth's curvature drops the
    surface away below the tangent plane by s²/(2 R_E) and refraction bends the
    ray back down by k times that (docs/physics/geolocation.md).
    """
    s = _f64(ground_distance_m)
    return (
        _f64(start_height_m)
        + s * np.tan(np.radians(_f64(elevation_deg)))
        + s**2 * (1.0 - _f64(k)) / (2.0 * EARTH_RADIUS_M)
    )


def elevation_to_height_deg(
    ground_distance_m: npt.ArrayLike,
    start_height_m: npt.ArrayLike,
    target_height_m: npt.ArrayLike,
    k: npt.ArrayLike = DEFAULT_REFRACTION_K,
) -> FloatArray:
    """Apparent elevation angle of a target at a ground distance and height: inverse of ray_height_m."""
    s = _f64(ground_distance_m)
    if np.any(s <= 0.0):
        raise ValueError("ground distance to the target must be positive (target at the tower?)")
    dz = _f64(target_height_m) - _f64(start_height_m)
    return np.degrees(np.arctan((dz - s**2 * (1.0 - _f64(k)) / (2.0 * EARTH_RADIUS_M)) / s))


def apparent_elevation_deg(
    lat0_deg: float,
    lon0_deg: float,
    height0_m: float,
    lat_deg: npt.ArrayLike,
    lon_deg: npt.ArrayLike,
    height_m: npt.ArrayLike,
    k: npt.ArrayLike = DEFAULT_REFRACTION_K,
) -> FloatArray:
    """Apparent (refracted) elevation of targets seen from an observer; heights above MSL.

    Includes earth curvature and refraction coefficient k, consistent with
    ray_height_m, so a target placed by a ray is seen again at the ray's angle.
    """
    s, _, _ = geodesic_inverse(lat0_deg, lon0_deg, lat_deg, lon_deg)
    return elevation_to_height_deg(s, height0_m, height_m, k)
