"""Sun position against published reference values, and the glint geometry."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from detectors.solar import (
    cox_munk_slope_variance,
    glint_angle_deg,
    glint_cone_half_angle_deg,
    sun_position,
)


def _unix(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_matches_nrel_spa_worked_example() -> None:
    # Reda & Andreas 2004, Table A5.1: Golden, Colorado, 2003-10-17 12:30:30 MST.
    # Topocentric zenith 50.11162°, azimuth 194.34024° (their refraction is for 820 hPa,
    # ours for the standard atmosphere: 0.004° apart at this height).
    az, el = sun_position(_unix(2003, 10, 17, 19, 30, 30), 39.742476, -105.1786)
    assert az == pytest.approx(194.34024, abs=0.01)
    assert 90.0 - el == pytest.approx(50.11162, abs=0.02)


def test_noon_elevation_at_june_solstice_is_90_minus_lat_plus_obliquity() -> None:
    lat = 47.0
    day = _unix(2024, 6, 20)
    peak_el = max(sun_position(day + m * 60.0, lat, 20.0)[1] for m in range(0, 1440))
    # Declination at the 2024 solstice is +23.44°; refraction adds 0.007° at 66°.
    assert peak_el == pytest.approx(90.0 - lat + 23.44, abs=0.05)


def test_noon_sun_is_due_south_in_the_north_and_due_north_in_the_south() -> None:
    day = _unix(2024, 1, 15)
    for lat, expected_az in ((47.0, 180.0), (-33.0, 0.0)):
        samples = [sun_position(day + m * 60.0, lat, 0.0) for m in range(0, 1440)]
        az, _ = max(samples, key=lambda s: s[1])
        assert min(abs(az - expected_az), 360.0 - abs(az - expected_az)) < 1.0


def test_sun_is_below_the_horizon_at_local_midnight_and_rises_in_the_east() -> None:
    # Hungarian plain, spring equinox: 00:00 local is 23:00 UTC the day before.
    _, el_midnight = sun_position(_unix(2024, 3, 19, 23, 0), 47.0, 20.0)
    assert el_midnight < -30.0
    az_morning, el_morning = sun_position(_unix(2024, 3, 20, 5, 0), 47.0, 20.0)
    assert 0.0 < el_morning < 20.0
    assert 80.0 < az_morning < 110.0


def test_refraction_lifts_the_low_sun_by_about_half_a_degree() -> None:
    t = _unix(2024, 3, 20, 4, 45)
    _, apparent = sun_position(t, 47.0, 20.0)
    _, true = sun_position(t, 47.0, 20.0, refraction=False)
    assert true < 2.0
    assert 0.2 < apparent - true < 0.6


def test_latitude_out_of_range_is_refused_with_its_value() -> None:
    with pytest.raises(ValueError, match="91"):
        sun_position(0.0, 91.0, 0.0)


def test_glint_angle_is_zero_when_sun_sits_in_the_mirror_direction() -> None:
    assert glint_angle_deg(250.0, -3.0, 250.0, 3.0) == pytest.approx(0.0, abs=1e-6)
    # Looking 1° down toward a sun 5° high: the mirror ray is 1° up, 4° below the sun.
    assert glint_angle_deg(90.0, -1.0, 90.0, 5.0) == pytest.approx(4.0, abs=1e-9)
    # Back to the sun: far from glint.
    assert glint_angle_deg(270.0, -1.0, 90.0, 5.0) > 170.0


def test_glint_angle_is_symmetric_in_azimuth_offset() -> None:
    left = glint_angle_deg(170.0, -2.0, 180.0, 10.0)
    right = glint_angle_deg(190.0, -2.0, 180.0, 10.0)
    assert left == pytest.approx(right)
    assert left > 10.0


def test_cox_munk_cone_widens_with_wind() -> None:
    assert cox_munk_slope_variance(0.0) == pytest.approx(0.003)
    assert cox_munk_slope_variance(10.0) == pytest.approx(0.0542)
    calm = glint_cone_half_angle_deg(0.0)
    windy = glint_cone_half_angle_deg(10.0)
    assert calm == pytest.approx(2.0 * math.degrees(math.atan(math.sqrt(0.0015))))
    assert windy > 3.0 * calm
