"""Sun position (NOAA / Meeus low-precision ephemeris) and the specular sun-glint angle."""

from __future__ import annotations

import math

# Unix epoch as a Julian day, and J2000.0: the ephemeris polynomials are in Julian
# centuries from J2000.0.
_JD_UNIX_EPOCH = 2440587.5
_JD_J2000 = 2451545.0
_DAYS_PER_CENTURY = 36525.0


def _refraction_deg(true_elevation_deg: float) -> float:
    """Atmospheric refraction of the sun's disc (NOAA piecewise fit, standard atmosphere).

    The camera sees the apparent sun, and low-sun glint is exactly where refraction
    (0.57° at the horizon) matters.
    """
    e = true_elevation_deg
    if e > 85.0:
        return 0.0
    te = math.tan(math.radians(e))
    if e > 5.0:
        arcsec = 58.1 / te - 0.07 / te**3 + 0.000086 / te**5
    elif e > -0.575:
        arcsec = 1735.0 + e * (-518.2 + e * (103.4 + e * (-12.79 + e * 0.711)))
    else:
        arcsec = -20.772 / te
    return arcsec / 3600.0


def sun_position(
    t_unix: float, lat_deg: float, lon_deg: float, *, refraction: bool = True
) -> tuple[float, float]:
    """Sun (azimuth_deg clockwise from true north in [0, 360), elevation_deg) at a place.

    NOAA solar calculator equations (after Meeus, *Astronomical Algorithms*): about
    0.01° in 1800–2100 for |lat| < 72°. ``refraction`` adds the standard-atmosphere
    refraction, giving the apparent elevation a camera sees.
    """
    if not -90.0 <= lat_deg <= 90.0:
        raise ValueError(f"latitude must be in [-90, 90] degrees, got {lat_deg}")
    jd = t_unix / 86400.0 + _JD_UNIX_EPOCH
    t = (jd - _JD_J2000) / _DAYS_PER_CENTURY

    mean_long = (280.46646 + t * (36000.76983 + t * 0.0003032)) % 360.0
    mean_anom = 357.52911 + t * (35999.05029 - 0.0001537 * t)
    ecc = 0.016708634 - t * (0.000042037 + 0.0000001267 * t)
    m = math.radians(mean_anom)
    centre = (
        math.sin(m) * (1.914602 - t * (0.004817 + 0.000014 * t))
        + math.sin(2 * m) * (0.019993 - 0.000101 * t)
        + math.sin(3 * m) * 0.000289
    )
    true_long = mean_long + centre
    omega = math.radians(125.04 - 1934.136 * t)
    app_long = math.radians(true_long - 0.00569 - 0.00478 * math.sin(omega))
    mean_obliq = (
        23.0 + (26.0 + (21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))) / 60.0) / 60.0
    )
    obliq = math.radians(mean_obliq + 0.00256 * math.cos(omega))
    decl = math.asin(math.sin(obliq) * math.sin(app_long))

    y = math.tan(obliq / 2.0) ** 2
    l0 = math.radians(mean_long)
    eq_time_min = 4.0 * math.degrees(
        y * math.sin(2 * l0)
        - 2 * ecc * math.sin(m)
        + 4 * ecc * y * math.sin(m) * math.cos(2 * l0)
        - 0.5 * y * y * math.sin(4 * l0)
        - 1.25 * ecc * ecc * math.sin(2 * m)
    )
    minutes_utc = (t_unix % 86400.0) / 60.0
    true_solar_min = (minutes_utc + eq_time_min + 4.0 * lon_deg) % 1440.0
    hour_angle = math.radians(true_solar_min / 4.0 - 180.0)

    lat = math.radians(lat_deg)
    cos_zen = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    zenith = math.acos(max(-1.0, min(1.0, cos_zen)))
    # atan2 form stays defined at the poles and at the zenith, unlike the acos form.
    azimuth = math.degrees(
        math.atan2(
            math.sin(hour_angle),
            math.cos(hour_angle) * math.sin(lat) - math.tan(decl) * math.cos(lat),
        )
    )
    azimuth_deg = (azimuth + 180.0) % 360.0
    elevation_deg = 90.0 - math.degrees(zenith)
    if refraction:
        elevation_deg += _refraction_deg(elevation_deg)
    return azimuth_deg, elevation_deg


def direction_enu(az_deg: float, el_deg: float) -> tuple[float, float, float]:
    """Unit vector (east, north, up) of a direction given by azimuth and elevation."""
    az = math.radians(az_deg)
    el = math.radians(el_deg)
    return (math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el))


def glint_angle_deg(
    view_az_deg: float, view_el_deg: float, sun_az_deg: float, sun_el_deg: float
) -> float:
    """Angle in degrees between the view ray mirrored in a level surface and the sun.

    The camera looks along (view_az, view_el), normally below the horizon. A level
    water or metal surface reflects that ray to (view_az, −view_el); 0° means the sun is
    exactly in the mirror direction (full specular glint). Wave or surface slopes widen
    the glint into a cone (see :func:`glint_cone_half_angle_deg`).
    """
    rx, ry, rz = direction_enu(view_az_deg, -view_el_deg)
    sx, sy, sz = direction_enu(sun_az_deg, sun_el_deg)
    cos_g = max(-1.0, min(1.0, rx * sx + ry * sy + rz * sz))
    return math.degrees(math.acos(cos_g))


def cox_munk_slope_variance(wind_speed_m_s: float) -> float:
    """Mean-square wave slope of open water (Cox & Munk 1954): 0.003 + 0.00512·U."""
    if wind_speed_m_s < 0:
        raise ValueError(f"wind speed must be >= 0 m/s, got {wind_speed_m_s}")
    return 0.003 + 0.00512 * wind_speed_m_s


def glint_cone_half_angle_deg(wind_speed_m_s: float) -> float:
    """One-sigma half angle of the glint cone off water at a wind speed.

    A facet tilted by α turns the reflected ray by 2α, and the slope σ is split over two
    axes, so the cone's one-sigma half angle is 2·atan(√(σ²/2)).
    """
    sigma = math.sqrt(cox_munk_slope_variance(wind_speed_m_s) / 2.0)
    return 2.0 * math.degrees(math.atan(sigma))
