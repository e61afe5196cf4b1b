"""Geolocation: pixel → ray → curved earth, DEM or lidar, with a Monte-Carlo uncertainty (docs/physics/geolocation.md)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from edge.dem import Dem, DemError, GridGeometry, utm_forward
from edge.geodesy import (
    EARTH_RADIUS_M,
    destination,
    distance_bearing,
    geodesic_direct,
    ray_height_m,
)
from edge.geolocation import (
    FLAME_TOP_M,
    MAX_RANGE_SKEW,
    ErrorModel,
    Geolocation,
    Lens,
    Pose,
    TowerSite,
    bearing_elevation_pixel,
    bearing_elevation_to,
    flat_ground_range_sigma_m,
    geolocate,
    geolocate_pixel,
    pixel_bearing_elevation,
    pixel_ray_enu,
)

TOWER_LAT, TOWER_LON = 47.0, 19.0
NO_ERRORS = ErrorModel(
    sigma_pan_deg=0.0, sigma_tilt_deg=0.0, sigma_k=0.0, sigma_dem_m=0.0, sigma_lidar_m=0.0
)
# A 640 × 512 thermal core with 17 µm pixels behind a 75 mm lens.
LENS = Lens.from_physical(75.0, 17.0, 640, 512)


def local_dem(heights_fn, half_size_m: float = 15_000.0, step_m: float = 30.0) -> Dem:
    """A north-up DEM on the tangent plane at the tower: heights_fn(east_m, north_m)."""
    axis = np.arange(-half_size_m, half_size_m + step_m / 2, step_m)
    east, north = np.meshgrid(axis, axis[::-1])
    geometry = GridGeometry(
        "local",
        origin_row=half_size_m,
        origin_col=-half_size_m,
        step_row=-step_m,
        step_col=step_m,
        reference_lat=TOWER_LAT,
        reference_lon=TOWER_LON,
    )
    return Dem(heights_fn(east, north), geometry)


def ridge_north_of_tower(east: np.ndarray, north: np.ndarray) -> np.ndarray:
    """150 m high east–west ridge crossing 6 km north of the tower."""
    return 150.0 * np.exp(-(((north - 6000.0) / 400.0) ** 2)) + 0.0 * east


# --- ray construction -----------------------------------------------------------------


def test_focal_length_in_pixels_from_lens_and_pitch() -> None:
    assert LENS.focal_length_px == pytest.approx(75.0e-3 / 17.0e-6)
    assert (LENS.cx_px, LENS.cy_px) == (319.5, 255.5)


def test_principal_point_looks_along_pan_and_tilt() -> None:
    pose = Pose(pan_deg=123.4, tilt_deg=-1.5)
    bearing, elevation = pixel_bearing_elevation(LENS.cx_px, LENS.cy_px, pose, LENS)
    assert bearing == pytest.approx(123.4, abs=1e-9)
    assert elevation == pytest.approx(-1.5, abs=1e-9)


def test_image_right_is_clockwise_and_image_up_is_higher() -> None:
    pose = Pose(pan_deg=10.0, tilt_deg=0.0)
    f = LENS.focal_length_px
    b_right, el_right = pixel_bearing_elevation(LENS.cx_px + 100.0, LENS.cy_px, pose, LENS)
    assert b_right == pytest.approx(10.0 + math.degrees(math.atan(100.0 / f)), abs=1e-9)
    assert el_right == pytest.approx(0.0, abs=1e-9)
    b_up, el_up = pixel_bearing_elevation(LENS.cx_px, LENS.cy_px - 100.0, pose, LENS)
    assert b_up == pytest.approx(10.0, abs=1e-9)
    assert el_up == pytest.approx(math.degrees(math.atan(100.0 / f)), abs=1e-9)


def test_pan_and_tilt_rotate_the_ray_as_the_enu_chain_says() -> None:
    # Pan 90° looks east; tilt −30° looks down: d = (cos 30°, 0, −sin 30°).
    d = pixel_ray_enu(LENS.cx_px, LENS.cy_px, Pose(90.0, -30.0), LENS)
    assert np.allclose(d, (math.cos(math.radians(30)), 0.0, -0.5), atol=1e-12)


def test_roll_turns_image_right_toward_image_down() -> None:
    # With +90° roll the image's x axis points down: a pixel right of centre looks lower.
    _, elevation = pixel_bearing_elevation(
        LENS.cx_px + 100.0, LENS.cy_px, Pose(0.0, 0.0, 90.0), LENS
    )
    assert elevation == pytest.approx(-math.degrees(math.atan(100.0 / LENS.focal_length_px)))


def test_undistortion_inverts_brown_conrady() -> None:
    lens = Lens(
        focal_length_px=1000.0, cx_px=320.0, cy_px=256.0, k1=-0.2, k2=0.05, p1=1e-3, p2=-5e-4
    )
    x = np.array([-0.3, 0.0, 0.1, 0.25])
    y = np.array([0.2, 0.0, -0.25, 0.22])
    u, v = lens.pixel(x, y)
    assert not np.allclose(u, 320.0 + 1000.0 * x)  # distortion really moves the pixels
    x2, y2 = lens.normalised(u, v)
    assert np.allclose(x2, x, atol=1e-9) and np.allclose(y2, y, atol=1e-9)


def test_direction_to_pixel_inverts_pixel_to_direction() -> None:
    lens = Lens(focal_length_px=900.0, cx_px=330.0, cy_px=250.0, k1=-0.1, p2=2e-4)
    pose = Pose(pan_deg=359.0, tilt_deg=-2.0, roll_deg=0.7)
    u = np.array([5.0, 330.0, 600.0])
    v = np.array([500.0, 250.0, 10.0])
    d = pixel_ray_enu(u, v, pose, lens)
    bearing = np.degrees(np.arctan2(d[:, 0], d[:, 1]))
    elevation = np.degrees(np.arcsin(d[:, 2]))
    u2, v2 = bearing_elevation_pixel(bearing, elevation, pose, lens)
    assert np.allclose(u2, u, atol=1e-6) and np.allclose(v2, v, atol=1e-6)
    behind_u, _ = bearing_elevation_pixel(179.0, 0.0, pose, lens)
    assert np.isnan(behind_u)


# --- curved earth (docs/algorithms/test-scenarios.md scenarios 16 and 17) --------------------------------


def test_scenario_16_sea_level_point_at_10_km_from_a_40_m_tower() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    g = geolocate(tower, 77.0, -0.2683, k=0.13, errors=NO_ERRORS)
    assert g.range_source == "earth"
    assert g.range_m == pytest.approx(10_000.0, abs=1.0)
    # A flat-earth model would put it at h / tan(depression) = 8.54 km.
    assert 40.0 / math.tan(math.radians(0.2683)) == pytest.approx(8541.0, abs=1.0)
    assert g.lat is not None and g.lon is not None
    d, bearing = distance_bearing(TOWER_LAT, TOWER_LON, g.lat, g.lon)
    assert d == pytest.approx(10_000.0, abs=1.0)
    assert bearing == pytest.approx(77.0, abs=1e-9)


def test_scenario_17_flat_ground_from_50_m_is_bearing_only() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 50.0)
    _, elevation = bearing_elevation_to(
        tower, *destination(TOWER_LAT, TOWER_LON, 200.0, 10_000.0), 0.0
    )
    errors = ErrorModel(sigma_pan_deg=0.05, sigma_tilt_deg=0.05, sigma_k=0.0, sigma_dem_m=0.0)
    g = geolocate(tower, 200.0, elevation, errors=errors)
    assert g.bearing_only
    assert g.range_sigma_m > 1000.0
    # The honest answer is an interval several kilometres long around the true range.
    assert g.range_min_m < 8500.0 and g.range_max_m > 12_000.0
    # ... stated as that interval on the bearing (a wedge), not as an ellipse about a point
    assert g.uncertainty is None


def _flat_fix_by_shape_alone(range_m: float) -> tuple[Geolocation, float, float]:
    """A fire range_m out on bearing 60° from a 40 m mast over flat ground, located with
    the spread limit lifted so the error's shape alone decides; and the near and far
    halves of its 95 % range interval."""
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    _, elevation = bearing_elevation_to(
        tower, *destination(TOWER_LAT, TOWER_LON, 60.0, range_m), 0.0
    )
    errors = ErrorModel(sigma_pan_deg=0.05, sigma_tilt_deg=0.05, samples=2000, seed=5)
    g = geolocate(tower, 60.0, elevation, errors=errors, max_range_sigma_m=100_000.0)
    assert g.range_m is not None
    return g, g.range_m - g.range_min_m, g.range_max_m - g.range_m


def test_a_lopsided_flat_ground_fix_is_a_wedge_not_an_ellipse() -> None:
    # Over flat ground the range goes as 1/depression: at 10 km from a 40 m mast the far
    # half of the 95 % interval is several times the near half, and no ellipse describes that.
    g, near, far = _flat_fix_by_shape_alone(10_000.0)
    assert far > MAX_RANGE_SKEW * near
    assert g.bearing_only and g.uncertainty is None
    assert g.range_min_m < 10_000.0 < g.range_max_m


def test_a_near_flat_ground_fix_keeps_its_ellipse() -> None:
    # 3 km from a 40 m mast the range error is ~8 % and nearly symmetric.
    g, near, far = _flat_fix_by_shape_alone(3_000.0)
    assert not g.bearing_only
    assert far < MAX_RANGE_SKEW * near
    assert g.uncertainty is not None
    assert g.uncertainty.orientation_deg == pytest.approx(60.0, abs=1.0)  # along the bearing


@pytest.mark.parametrize(
    ("height_m", "range_m", "expected_km"),
    [
        (30.0, 10_000.0, 3.8),
        (50.0, 10_000.0, 2.0),
        (50.0, 20_000.0, 15.0),
        (100.0, 10_000.0, 0.9),
        (100.0, 20_000.0, 4.8),
    ],
)
def test_flat_ground_range_error_table(height_m: float, range_m: float, expected_km: float) -> None:
    sigma = flat_ground_range_sigma_m(height_m, range_m, 0.05, k=0.13)
    assert sigma / 1000.0 == pytest.approx(expected_km, rel=0.06)


def test_monte_carlo_range_spread_matches_the_linearised_error_where_it_applies() -> None:
    # 100 m tower, 10 km: ±0.9 km is small enough for the linearisation to hold.
    tower = TowerSite(TOWER_LAT, TOWER_LON, 100.0)
    _, elevation = bearing_elevation_to(
        tower, *destination(TOWER_LAT, TOWER_LON, 0.0, 10_000.0), 0.0
    )
    errors = ErrorModel(0.0, 0.05, 0.0, 0.0, samples=2000, seed=3)
    g = geolocate(tower, 0.0, elevation, errors=errors)
    assert g.range_sigma_m == pytest.approx(
        flat_ground_range_sigma_m(100.0, 10_000.0, 0.05), rel=0.1
    )


def test_ray_above_the_horizon_gives_no_point() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    g = geolocate(tower, 45.0, 0.5)
    assert g.bearing_only and g.lat is None and g.range_m is None and g.uncertainty is None
    assert g.range_max_m == 30_000.0


def test_a_ray_just_over_the_horizon_is_bounded_by_where_flames_could_stand() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    k = 0.13
    a = (1.0 - k) / (2.0 * EARTH_RADIUS_M)
    horizon_m = math.sqrt(40.0 / a)
    dip_deg = math.degrees(math.atan(2.0 * a * horizon_m))
    g = geolocate(tower, 0.0, -dip_deg + 0.01, k=k, errors=NO_ERRORS)
    assert g.bearing_only and g.range_m is None
    # The ray passes the flame tops (10 m up) once more, beyond the horizon and short of
    # horizon + the flames' own horizon: not the configured 30 km cap.
    assert horizon_m < g.range_max_m < horizon_m + math.sqrt(FLAME_TOP_M / a)
    assert g.range_max_m != 30_000.0
    s = g.range_max_m
    height_m = 40.0 + s * math.tan(math.radians(-dip_deg + 0.01)) + a * s * s
    assert height_m == pytest.approx(FLAME_TOP_M, abs=0.01)


def test_canopy_stops_the_ray_earlier() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    bare = geolocate(tower, 0.0, -0.2683, errors=NO_ERRORS)
    forest = geolocate(tower, 0.0, -0.2683, canopy_height_m=20.0, errors=NO_ERRORS)
    assert bare.range_m is not None and forest.range_m is not None
    assert forest.range_m < bare.range_m - 1000.0
    assert forest.height_m == pytest.approx(20.0, abs=1e-6)


# --- lateral error (docs/physics/geolocation.md table) ---------------------------------------------


@pytest.mark.parametrize(
    ("sigma_pan_deg", "range_m", "lateral_1sigma_m"),
    [
        (0.01, 10_000.0, 1.7),
        (0.01, 20_000.0, 3.5),
        (0.05, 10_000.0, 8.7),
        (0.05, 20_000.0, 17.5),
        (0.1, 10_000.0, 17.5),
        (0.1, 20_000.0, 35.0),
    ],
)
def test_lateral_error_is_range_times_pan_sigma(
    sigma_pan_deg: float, range_m: float, lateral_1sigma_m: float
) -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    errors = ErrorModel(sigma_pan_deg, 0.0, 0.0, 0.0, 0.0, samples=4000, seed=11)
    g = geolocate(tower, 300.0, -0.2, lidar_range_m=range_m, errors=errors)
    assert g.uncertainty is not None
    one_sigma = g.uncertainty.semi_major_m / math.sqrt(5.991)
    assert one_sigma == pytest.approx(lateral_1sigma_m, rel=0.06)
    assert one_sigma == pytest.approx(range_m * math.radians(sigma_pan_deg), rel=0.04)
    assert g.uncertainty.orientation_deg == pytest.approx(30.0, abs=0.5)  # across the 300° bearing


# --- lidar ------------------------------------------------------------------------------


def test_lidar_range_takes_precedence_over_terrain() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    dem = local_dem(ridge_north_of_tower)
    g = geolocate(tower, 0.0, -0.2683, terrain=dem, lidar_range_m=3000.0, errors=NO_ERRORS)
    assert g.range_source == "lidar"
    assert g.range_m == pytest.approx(3000.0 * math.cos(math.radians(0.2683)), abs=1e-6)
    assert not g.bearing_only


def test_lidar_fix_has_a_small_ellipse_along_and_across_the_bearing() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    errors = ErrorModel(sigma_pan_deg=0.05, sigma_lidar_m=30.0, samples=2000)
    g = geolocate(tower, 90.0, -0.3, lidar_range_m=10_000.0, errors=errors)
    assert g.uncertainty is not None
    assert g.uncertainty.semi_major_m == pytest.approx(math.sqrt(5.991) * 30.0, rel=0.08)
    assert g.uncertainty.semi_minor_m == pytest.approx(math.sqrt(5.991) * 8.73, rel=0.08)
    assert g.uncertainty.orientation_deg == pytest.approx(90.0, abs=2.0)
    assert g.range_min_m < 10_000.0 - 40.0 and g.range_max_m > 10_000.0 + 40.0


# --- DEM intersection -------------------------------------------------------------------


def test_ridge_in_the_dem_stops_the_ray() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    dem = local_dem(ridge_north_of_tower)
    # Aimed at a sea-level point 10 km north, behind the ridge.
    g = geolocate(tower, 0.0, -0.2683, terrain=dem, errors=NO_ERRORS)
    assert g.range_source == "terrain"
    assert g.range_m is not None and 5000.0 < g.range_m < 6000.0
    assert g.height_m is not None and g.lat is not None and g.lon is not None
    assert g.height_m == pytest.approx(float(dem.height_m(g.lat, g.lon)), abs=0.05)


def test_dem_at_sea_level_agrees_with_the_curved_earth_solution() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    dem = local_dem(lambda e, n: 0.0 * e)
    over_dem = geolocate(tower, 33.0, -0.2683, terrain=dem, errors=NO_ERRORS)
    over_earth = geolocate(tower, 33.0, -0.2683, errors=NO_ERRORS)
    assert over_dem.range_m is not None and over_earth.range_m is not None
    assert over_dem.range_m == pytest.approx(over_earth.range_m, abs=0.5)


def test_ray_leaving_the_dem_without_meeting_it_gives_no_point() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    dem = local_dem(lambda e, n: 0.0 * e, half_size_m=5000.0)
    g = geolocate(tower, 0.0, -0.2683, terrain=dem, errors=NO_ERRORS)
    assert g.lat is None and g.bearing_only and g.range_source == "terrain"


def test_steep_terrain_gives_a_point_with_a_tight_ellipse() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    dem = local_dem(ridge_north_of_tower)
    g = geolocate(tower, 0.0, -0.2683, terrain=dem, errors=ErrorModel())
    assert not g.bearing_only
    assert g.uncertainty is not None and g.uncertainty.semi_major_m < 300.0
    assert g.range_max_m - g.range_min_m < 600.0


def test_tower_below_the_dem_surface_is_refused() -> None:
    dem = local_dem(lambda e, n: 0.0 * e + 120.0)
    with pytest.raises(ValueError, match="tower height_m"):
        geolocate(TowerSite(TOWER_LAT, TOWER_LON, 100.0), 0.0, -1.0, terrain=dem)


def test_monte_carlo_is_reproducible_for_a_seed() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    dem = local_dem(ridge_north_of_tower)
    a = geolocate(tower, 0.0, -0.2683, terrain=dem, errors=ErrorModel(seed=5))
    b = geolocate(tower, 0.0, -0.2683, terrain=dem, errors=ErrorModel(seed=5))
    assert a == b


# --- inverse: point the head at a position ----------------------------------------------


@pytest.mark.parametrize(
    ("bearing_deg", "distance_m"), [(10.0, 3000.0), (181.0, 5500.0), (275.0, 9000.0)]
)
def test_round_trip_position_to_pixel_to_position_over_a_dem(
    bearing_deg: float, distance_m: float
) -> None:
    # High enough above the 10–50 m swell that none of the targets is hidden behind it.
    tower = TowerSite(TOWER_LAT, TOWER_LON, 250.0)
    dem = local_dem(lambda e, n: 30.0 + 20.0 * np.sin(e / 900.0) * np.cos(n / 1300.0))
    lat, lon = destination(TOWER_LAT, TOWER_LON, bearing_deg, distance_m)
    height = float(dem.height_m(lat, lon))
    pan, tilt = bearing_elevation_to(tower, lat, lon, height)
    # The target sits off-centre in a rolled image with a little distortion.
    lens = Lens.from_physical(75.0, 17.0, 640, 512, k1=-0.05)
    pose = Pose(pan_deg=pan - 0.8, tilt_deg=tilt + 0.3, roll_deg=0.4)
    u, v = bearing_elevation_pixel(pan, tilt, pose, lens)
    g = geolocate_pixel(tower, float(u), float(v), pose, lens, terrain=dem, errors=NO_ERRORS)
    assert g.lat is not None and g.lon is not None
    miss_m, _ = distance_bearing(lat, lon, g.lat, g.lon)
    assert miss_m < 1.0


def test_round_trip_on_the_curved_earth() -> None:
    tower = TowerSite(TOWER_LAT, TOWER_LON, 45.0)
    lat, lon = destination(TOWER_LAT, TOWER_LON, 250.0, 12_000.0)
    pan, tilt = bearing_elevation_to(tower, lat, lon, 5.0, k=0.2)
    g = geolocate(tower, pan, tilt, ground_elevation_m=5.0, k=0.2, errors=NO_ERRORS)
    assert g.lat is not None and g.lon is not None
    assert distance_bearing(lat, lon, g.lat, g.lon)[0] < 0.05


def test_pointing_at_the_tower_itself_is_refused() -> None:
    with pytest.raises(ValueError, match="tower"):
        bearing_elevation_to(TowerSite(TOWER_LAT, TOWER_LON, 40.0), TOWER_LAT, TOWER_LON, 0.0)


# --- DEM files --------------------------------------------------------------------------


def write_tiff(
    path: Path,
    pixels: np.ndarray,
    extra_tags: list[tuple[int, int, tuple[Any, ...] | bytes]],
    byte_order: Literal["<", ">"] = "<",
) -> None:
    """A minimal one-strip baseline TIFF with extra (tag, type, values) entries, as GDAL writes them."""
    sample_format = {np.dtype(np.float32): 3, np.dtype(np.int16): 2, np.dtype(np.uint16): 1}
    dt = pixels.dtype.newbyteorder(byte_order)
    body = pixels.astype(dt).tobytes()
    rows, cols = pixels.shape
    tags: list[tuple[int, int, tuple[Any, ...] | bytes]] = [
        (256, 4, (cols,)),
        (257, 4, (rows,)),
        (258, 3, (pixels.dtype.itemsize * 8,)),
        (259, 3, (1,)),
        (262, 3, (1,)),
        (273, 4, (0,)),  # strip offset, patched below
        (277, 3, (1,)),
        (278, 4, (rows,)),
        (279, 4, (len(body),)),
        (284, 3, (1,)),
        (339, 3, (sample_format[pixels.dtype],)),
        *extra_tags,
    ]
    tags.sort(key=lambda t: t[0])
    codes = {2: "s", 3: "H", 4: "I", 12: "d"}
    ifd_size = 2 + 12 * len(tags) + 4
    data_start = 8 + ifd_size
    entries, blobs = b"", b""
    for tag, ftype, values in tags:
        if ftype == 2:
            assert isinstance(values, bytes)
            raw, count = values + b"\0", len(values) + 1
        else:
            assert isinstance(values, tuple)
            raw = struct.pack(byte_order + codes[ftype] * len(values), *values)
            count = len(values)
        if len(raw) <= 4:
            entries += struct.pack(byte_order + "HHI", tag, ftype, count) + raw.ljust(4, b"\0")
        else:
            offset = data_start + len(blobs)
            entries += struct.pack(byte_order + "HHII", tag, ftype, count, offset)
            blobs += raw + b"\0" * (len(raw) % 2)
    strip_offset = data_start + len(blobs)
    head = (b"II" if byte_order == "<" else b"MM") + struct.pack(byte_order + "HI", 42, 8)
    ifd = struct.pack(byte_order + "H", len(tags)) + entries + struct.pack(byte_order + "I", 0)
    out = bytearray(head + ifd + blobs + body)
    # Patch the StripOffsets value now that the layout is known.
    idx = [t[0] for t in tags].index(273)
    struct.pack_into(byte_order + "I", out, 8 + 2 + 12 * idx + 8, strip_offset)
    path.write_bytes(bytes(out))


def geokeys(model_type: int, raster_type: int, crs_key: int, epsg: int) -> tuple[int, ...]:
    return (1, 1, 0, 3, 1024, 0, 1, model_type, 1025, 0, 1, raster_type, crs_key, 0, 1, epsg)


def plane(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A tilted plane in lat/lon: bilinear interpolation must reproduce it exactly."""
    return 100.0 + 3000.0 * (lat - 47.0) - 2000.0 * (lon - 19.0)


def test_npy_grid_round_trips_through_its_sidecar(tmp_path: Path) -> None:
    lat = 47.1 - 0.001 * np.arange(200)
    lon = 18.9 + 0.0015 * np.arange(150)
    grid_lat, grid_lon = np.meshgrid(lat, lon, indexing="ij")
    dem = Dem(plane(grid_lat, grid_lon), GridGeometry("geographic", 47.1, 18.9, -0.001, 0.0015))
    dem.save(tmp_path / "site")
    doc = json.loads((tmp_path / "site.json").read_text())
    assert doc["crs"] == "geographic" and doc["format"] == "towerwatch.dem/1"
    loaded = Dem.load(tmp_path / "site.npy")
    rng = np.random.default_rng(1)
    q_lat = rng.uniform(lat[-1], lat[0], 500)
    q_lon = rng.uniform(lon[0], lon[-1], 500)
    assert np.allclose(loaded.height_m(q_lat, q_lon), plane(q_lat, q_lon), atol=1e-9)
    # The smaller spacing: 0.001° of latitude at 47°N is 111.17 m (0.0015° of longitude 114 m).
    assert loaded.cell_size_m == pytest.approx(111.17, rel=0.002)


def test_bilinear_lookup_between_four_nodes() -> None:
    dem = Dem([[0.0, 10.0], [20.0, 50.0]], GridGeometry("geographic", 47.001, 19.0, -0.001, 0.001))
    assert float(dem.height_m(47.0005, 19.0005)) == pytest.approx(20.0)  # mean of the four
    assert float(dem.height_m(47.001, 19.001)) == pytest.approx(10.0)  # a node itself


def test_lookup_outside_the_grid_names_the_point(tmp_path: Path) -> None:
    dem = Dem(np.zeros((3, 3)), GridGeometry("geographic", 47.002, 19.0, -0.001, 0.001))
    assert np.isnan(dem.height_or_nan(47.5, 19.0))
    with pytest.raises(DemError, match="lat 47.500000, lon 19.000000"):
        dem.height_m([47.001, 47.5], [19.001, 19.0])


def test_no_data_nodes_give_no_height() -> None:
    grid = np.array([[1.0, 2.0, 3.0], [4.0, -9999.0, 6.0], [7.0, 8.0, 9.0]])
    dem = Dem(grid, GridGeometry("geographic", 47.002, 19.0, -0.001, 0.001), nodata=-9999.0)
    assert np.isnan(dem.height_or_nan(47.0015, 19.0005))
    assert float(dem.height_m(47.002, 19.0)) == 1.0


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ({"format": "other/1", "crs": "geographic"}, "'format' must be"),
        ({"format": "towerwatch.dem/1", "crs": "mercator"}, "'crs' must be one of"),
        (
            {
                "format": "towerwatch.dem/1",
                "crs": "geographic",
                "origin_deg": [47, 19],
                "step_deg": [0.001],
            },
            "'step_deg' must be a list of two numbers",
        ),
        (
            {
                "format": "towerwatch.dem/1",
                "crs": "geographic",
                "origin_deg": [47, 19],
                "step_deg": [0, 1],
                "spacing": 3,
            },
            "unknown keys \\['spacing'\\]",
        ),
        (
            {
                "format": "towerwatch.dem/1",
                "crs": "geographic",
                "origin_deg": [47, 19],
                "step_deg": [0, 0.001],
            },
            "steps must be non-zero",
        ),
        (
            {
                "format": "towerwatch.dem/1",
                "crs": "utm",
                "origin_m": [5e6, 4e5],
                "step_m": [-30, 30],
                "zone": 33,
            },
            "'hemisphere'",
        ),
    ],
)
def test_malformed_sidecars_are_refused_with_the_key_to_fix(
    tmp_path: Path, sidecar: dict[str, Any], message: str
) -> None:
    np.save(tmp_path / "dem.npy", np.zeros((4, 4)))
    (tmp_path / "dem.json").write_text(json.dumps(sidecar))
    with pytest.raises(DemError, match=message) as info:
        Dem.load(tmp_path / "dem.npy")
    assert "dem.json" in str(info.value)


def test_missing_sidecar_and_unknown_formats_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "dem.npy", np.zeros((4, 4)))
    with pytest.raises(DemError, match="missing sidecar dem.json"):
        Dem.load(tmp_path / "dem.npy")
    (tmp_path / "dem.asc").write_text("ncols 4\n")
    with pytest.raises(DemError, match="unknown DEM format"):
        Dem.load(tmp_path / "dem.asc")
    with pytest.raises(DemError, match="not found"):
        Dem.load(tmp_path / "absent.npy")
    (tmp_path / "fake.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(DemError, match="not a TIFF"):
        Dem.load(tmp_path / "fake.tif")


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_geographic_geotiff_with_pixel_is_area(
    tmp_path: Path, byte_order: Literal["<", ">"]
) -> None:
    # 1 arc-second cells; the tiepoint is the top-left corner of the top-left pixel.
    step = 1.0 / 3600.0
    rows, cols = 120, 90
    top, left = 47.05, 18.98
    lat = top - step * (np.arange(rows) + 0.5)
    lon = left + step * (np.arange(cols) + 0.5)
    grid_lat, grid_lon = np.meshgrid(lat, lon, indexing="ij")
    heights = plane(grid_lat, grid_lon).astype(np.float32)
    write_tiff(
        tmp_path / "srtm.tif",
        heights,
        [
            (33550, 12, (step, step, 0.0)),
            (33922, 12, (0.0, 0.0, 0.0, left, top, 0.0)),
            (34735, 3, geokeys(2, 1, 2048, 4326)),
        ],
        byte_order,
    )
    dem = Dem.load(tmp_path / "srtm.tif")
    assert dem.shape == (rows, cols)
    assert float(dem.height_m(lat[7], lon[11])) == pytest.approx(float(heights[7, 11]), abs=1e-4)
    q_lat, q_lon = 47.03, 19.0
    assert float(dem.height_m(q_lat, q_lon)) == pytest.approx(
        float(plane(np.array(q_lat), np.array(q_lon))), abs=1e-3
    )
    assert dem.cell_size_m == pytest.approx(30.87 * math.cos(math.radians(47.03)), rel=0.01)


def test_utm_geotiff_with_no_data_and_pixel_is_point(tmp_path: Path) -> None:
    # UTM zone 34N around 47°N 19°E (EPSG:32634), 30 m cells, node-registered.
    east0, north0 = utm_forward(46.98, 18.97, 34, False)
    e0, n0 = float(east0) // 30 * 30, float(north0) // 30 * 30 + 3000
    rows, cols = 110, 110
    heights = (200 + np.arange(rows)[:, None] - np.arange(cols)[None, :]).astype(np.int16)
    heights[50, 50] = -32768
    write_tiff(
        tmp_path / "utm.tif",
        heights,
        [
            (33550, 12, (30.0, 30.0, 0.0)),
            (33922, 12, (0.0, 0.0, 0.0, e0, n0, 0.0)),
            (34735, 3, geokeys(1, 2, 3072, 32634)),
            (42113, 2, b"-32768"),
        ],
    )
    dem = Dem.load(tmp_path / "utm.tif")
    assert dem.geometry.crs == "utm" and dem.geometry.utm_zone == 34
    # Find the lat/lon of node (20, 30) by inverting the projection numerically.
    target_e, target_n = e0 + 30 * 30, n0 - 20 * 30
    lat, lon = 46.98, 18.97
    for _ in range(5):
        e, n = utm_forward(lat, lon, 34, False)
        lat += (target_n - float(n)) / 111_200.0
        lon += (target_e - float(e)) / (111_200.0 * math.cos(math.radians(lat)))
    assert float(dem.height_m(lat, lon)) == pytest.approx(200 + 20 - 30, abs=0.01)
    assert dem.cell_size_m == 30.0
    assert np.isnan(dem.heights_m[50, 50])


def test_geotiff_in_an_unsupported_crs_is_refused(tmp_path: Path) -> None:
    write_tiff(
        tmp_path / "eov.tif",
        np.zeros((4, 4), np.float32),
        [
            (33550, 12, (10.0, 10.0, 0.0)),
            (33922, 12, (0.0, 0.0, 0.0, 650_000.0, 240_000.0, 0.0)),
            (34735, 3, geokeys(1, 1, 3072, 23700)),
        ],
    )
    with pytest.raises(DemError, match="EPSG:23700 is not supported"):
        Dem.load(tmp_path / "eov.tif")


def test_plain_tiff_with_a_world_file(tmp_path: Path) -> None:
    step = 0.001
    rows, cols = 30, 40
    lat = 47.02 - step * np.arange(rows)
    lon = 18.99 + step * np.arange(cols)
    grid_lat, grid_lon = np.meshgrid(lat, lon, indexing="ij")
    heights = plane(grid_lat, grid_lon).astype(np.float32)
    write_tiff(tmp_path / "dem.tif", heights, [])
    with pytest.raises(DemError, match="no world file"):
        Dem.load(tmp_path / "dem.tif", crs="geographic")
    # World file: x step, two rotations, y step, then the centre of the top-left pixel.
    (tmp_path / "dem.tfw").write_text(f"{step}\n0\n0\n{-step}\n18.99\n47.02\n")
    with pytest.raises(DemError, match="does not say its CRS"):
        Dem.load(tmp_path / "dem.tif")
    dem = Dem.load(tmp_path / "dem.tif", crs="geographic")
    assert float(dem.height_m(47.005, 19.01)) == pytest.approx(
        float(plane(np.array(47.005), np.array(19.01))), abs=1e-3
    )


def test_utm_projection_of_a_known_point() -> None:
    # CN Tower, 43°38′33.24″N 79°23′13.7″W: UTM 17N 630084 m E, 4833438 m N.
    easting, northing = utm_forward(43.642567, -79.387139, 17, False)
    assert float(easting) == pytest.approx(630_084.0, abs=1.0)
    assert float(northing) == pytest.approx(4_833_438.0, abs=1.0)
    # Central meridian on the equator: false easting, zero northing. One degree south on
    # the central meridian: 10 000 km false northing less 0.9996 × 110 574 m of meridian.
    assert np.allclose(utm_forward(0.0, 21.0, 34, False), (500_000.0, 0.0), atol=1e-6)
    assert float(utm_forward(-1.0, 21.0, 34, True)[1]) == pytest.approx(
        10_000_000.0 - 0.9996 * 110_574.4, abs=1.0
    )


def test_march_misses_no_single_cell_peak_against_a_brute_force_scan() -> None:
    # Sparse one-node spikes: each is a bilinear pyramid only two cells wide, the
    # hardest case for the envelope skip and the half-cell step.
    rng = np.random.default_rng(4)

    def spikes(east: np.ndarray, north: np.ndarray) -> np.ndarray:
        heights = np.zeros_like(east)
        mask = rng.random(east.shape) < 0.01
        heights[mask] = rng.uniform(5.0, 80.0, int(mask.sum()))
        return heights

    tower = TowerSite(TOWER_LAT, TOWER_LON, 40.0)
    dem = local_dem(spikes, half_size_m=12_000.0)
    s = np.arange(1.0, 11_000.0, 1.0)
    stopped_by_a_spike = 0
    for bearing in np.arange(0.0, 360.0, 30.0):
        g = geolocate(tower, bearing, -0.3, terrain=dem, max_range_m=11_000.0, errors=NO_ERRORS)
        lat, lon, _ = geodesic_direct(TOWER_LAT, TOWER_LON, bearing, s)
        below = ray_height_m(s, 40.0, -0.3) <= dem.height_or_nan(lat, lon)
        assert g.range_m is not None
        truth = float(s[np.argmax(below)])
        assert g.range_m == pytest.approx(truth, abs=1.0)
        stopped_by_a_spike += truth < 7500.0  # bare ground would stop the ray at ~8 km
    assert stopped_by_a_spike >= 3
