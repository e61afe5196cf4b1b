"""Geodesy: WGS-84 ECEF/ENU frames, geodesics and the refracted line of sight against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.geodesy import (
    WGS84_A_M,
    WGS84_B_M,
    WGS84_E2,
    apparent_elevation_deg,
    destination,
    distance_bearing,
    ecef_to_geodetic,
    enu_to_geodetic,
    geodesic_direct,
    geodesic_inverse,
    geodetic_to_ecef,
    geodetic_to_enu,
    ray_height_m,
)


def dms(d: float, m: float, s: float) -> float:
    return math.copysign(abs(d) + m / 60.0 + s / 3600.0, d)


def meridian_arc_m(lat1_deg: float, lat2_deg: float) -> float:
    """Independent reference: ∫ M(φ) dφ by Simpson's rule, M the meridian radius of curvature."""
    phi = np.radians(np.linspace(lat1_deg, lat2_deg, 2001))
    m = WGS84_A_M * (1.0 - WGS84_E2) / (1.0 - WGS84_E2 * np.sin(phi) ** 2) ** 1.5
    h = phi[1] - phi[0]
    return float(h / 3.0 * (m[0] + m[-1] + 4.0 * m[1:-1:2].sum() + 2.0 * m[2:-1:2].sum()))


def test_ecef_of_known_points() -> None:
    assert np.allclose(geodetic_to_ecef(0.0, 0.0, 0.0), (WGS84_A_M, 0.0, 0.0), atol=1e-6)
    assert np.allclose(geodetic_to_ecef(0.0, 90.0, 100.0), (0.0, WGS84_A_M + 100.0, 0.0), atol=1e-6)
    assert np.allclose(geodetic_to_ecef(90.0, 0.0, 0.0), (0.0, 0.0, WGS84_B_M), atol=1e-6)
    # 45°N, 45°E at 0 m: N = a/√(1 − e²/2); x = y = N/2, z = N(1 − e²)/√2.
    n = WGS84_A_M / math.sqrt(1.0 - WGS84_E2 / 2.0)
    assert np.allclose(
        geodetic_to_ecef(45.0, 45.0, 0.0),
        (n / 2.0, n / 2.0, n * (1.0 - WGS84_E2) / math.sqrt(2.0)),
        atol=1e-6,
    )


@settings(max_examples=200, deadline=None)
@given(
    lat=st.floats(-90.0, 90.0),
    lon=st.floats(-179.999, 180.0),
    h=st.floats(-500.0, 20_000.0),
)
def test_ecef_round_trip_is_sub_millimetre(lat: float, lon: float, h: float) -> None:
    lat2, lon2, h2 = ecef_to_geodetic(*geodetic_to_ecef(lat, lon, h))
    assert abs(float(lat2) - lat) < 1e-9
    if abs(lat) < 89.9999:
        assert abs((float(lon2) - lon + 180.0) % 360.0 - 180.0) < 1e-9
    assert abs(float(h2) - h) < 1e-3


def test_enu_axes_point_east_north_up() -> None:
    lat0, lon0, h0 = 47.5, 19.0, 200.0
    e, n, u = geodetic_to_enu(lat0, lon0, h0 + 50.0, lat0, lon0, h0)
    assert np.allclose((e, n, u), (0.0, 0.0, 50.0), atol=1e-6)
    # Geodesic distances are on the ellipsoid (h = 0), where 1 km along the surface is
    # 1 km in the tangent plane to a few micrometres.
    lat_n, lon_n = destination(lat0, lon0, 0.0, 1000.0)
    e, n, u = geodetic_to_enu(lat_n, lon_n, 0.0, lat0, lon0, 0.0)
    assert abs(float(e)) < 1e-6 and abs(float(n) - 1000.0) < 0.01
    assert float(u) == pytest.approx(-(1000.0**2) / (2 * 6.37e6), rel=0.01)  # the earth drops away
    lat_e, lon_e = destination(lat0, lon0, 90.0, 1000.0)
    e, n, _ = geodetic_to_enu(lat_e, lon_e, 0.0, lat0, lon0, 0.0)
    assert abs(float(e) - 1000.0) < 0.01 and abs(float(n)) < 0.1


def test_enu_round_trip() -> None:
    e = np.array([-15_000.0, 0.0, 3000.0, 25_000.0])
    n = np.array([8000.0, -20_000.0, 0.5, 25_000.0])
    u = np.array([-20.0, 0.0, 300.0, -50.0])
    lat, lon, h = enu_to_geodetic(e, n, u, 46.2, 20.1, 95.0)
    e2, n2, u2 = geodetic_to_enu(lat, lon, h, 46.2, 20.1, 95.0)
    assert np.allclose(e2, e, atol=1e-4) and np.allclose(n2, n, atol=1e-4)
    assert np.allclose(u2, u, atol=1e-4)


def test_vincenty_published_example_flinders_peak_to_buninyong() -> None:
    # Vincenty (1975) / Geoscience Australia worked example on GRS80 (= WGS-84 to 0.1 mm here).
    lat1, lon1 = dms(-37, 57, 3.72030), dms(144, 25, 29.52440)
    lat2, lon2 = dms(-37, 39, 10.15610), dms(143, 55, 35.38390)
    d, az1, az2 = geodesic_inverse(lat1, lon1, lat2, lon2)
    assert float(d) == pytest.approx(54_972.271, abs=0.002)
    assert float(az1) == pytest.approx(dms(306, 52, 5.37), abs=1.0 / 3600.0 / 50.0)
    # The published reverse azimuth is the forward azimuth at point 2 minus 180°.
    assert float(az2) - 180.0 == pytest.approx(dms(127, 10, 25.07), abs=1.0 / 3600.0 / 50.0)
    lat_b, lon_b, _ = geodesic_direct(lat1, lon1, az1, d)
    assert float(lat_b) == pytest.approx(lat2, abs=1e-9)
    assert float(lon_b) == pytest.approx(lon2, abs=1e-9)


@pytest.mark.parametrize("lat1", [0.0, 23.5, 47.0, 61.3])
def test_meridian_distance_over_20_km_matches_the_arc_integral(lat1: float) -> None:
    lat2 = lat1 + 0.18  # about 20 km north
    d, az1 = distance_bearing(lat1, 19.0, lat2, 19.0)
    assert abs(d - meridian_arc_m(lat1, lat2)) < 0.5
    assert az1 == pytest.approx(0.0, abs=1e-9)


def test_equatorial_distance_is_a_times_longitude_difference() -> None:
    d, az1 = distance_bearing(0.0, 10.0, 0.0, 10.18)
    assert abs(d - WGS84_A_M * math.radians(0.18)) < 0.5
    assert az1 == pytest.approx(90.0, abs=1e-9)


def test_coincident_points_have_zero_distance() -> None:
    d, _ = distance_bearing(47.1, 19.2, 47.1, 19.2)
    assert d == 0.0


def test_nearly_antipodal_points_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="antipodal"):
        geodesic_inverse(0.0, 0.0, 0.5, 179.7)


@settings(max_examples=100, deadline=None)
@given(
    lat=st.floats(-80.0, 80.0),
    lon=st.floats(-180.0, 180.0),
    az=st.floats(0.0, 359.999),
    dist=st.floats(1.0, 60_000.0),
)
def test_direct_then_inverse_round_trip(lat: float, lon: float, az: float, dist: float) -> None:
    lat2, lon2 = destination(lat, lon, az, dist)
    d, az1 = distance_bearing(lat, lon, lat2, lon2)
    assert abs(d - dist) < 1e-4
    # The bearing must agree to better than 0.1 mm of lateral offset at the far point.
    assert abs(math.radians((az1 - az + 180.0) % 360.0 - 180.0)) * dist < 1e-4


def test_direct_is_vectorised_over_bearings_and_distances() -> None:
    az = np.array([[0.0], [90.0], [225.0]])
    s = np.array([[0.0, 5000.0, 10_000.0]])
    lat, lon, _ = geodesic_direct(47.0, 19.0, az, s)
    assert lat.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            lat_ij, lon_ij = destination(47.0, 19.0, float(az[i, 0]), float(s[0, j]))
            assert lat[i, j] == pytest.approx(lat_ij, abs=1e-12)
            assert lon[i, j] == pytest.approx(lon_ij, abs=1e-12)


def test_curvature_drop_with_standard_refraction() -> None:
    # docs/physics/geolocation.md: a level ray sits 6.8 m above the surface at 10 km and 27.3 m at 20 km.
    assert float(ray_height_m(10_000.0, 0.0, 0.0, 0.13)) == pytest.approx(6.8, abs=0.05)
    assert float(ray_height_m(20_000.0, 0.0, 0.0, 0.13)) == pytest.approx(27.3, abs=0.05)
    # With k = 1 the ray follows the earth exactly.
    assert float(ray_height_m(20_000.0, 12.0, 0.0, 1.0)) == pytest.approx(12.0)


def test_apparent_elevation_of_a_sea_level_point_10_km_from_a_40_m_tower() -> None:
    lat, lon = destination(47.0, 19.0, 123.0, 10_000.0)
    el = float(apparent_elevation_deg(47.0, 19.0, 40.0, lat, lon, 0.0, k=0.13))
    assert el == pytest.approx(-0.2683, abs=5e-5)
    # Without refraction the same point is seen lower: the curvature drop is not bent back.
    assert float(apparent_elevation_deg(47.0, 19.0, 40.0, lat, lon, 0.0, k=0.0)) < el - 0.004
