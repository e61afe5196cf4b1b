"""Digital elevation model: a height grid (.npy + JSON sidecar, or GeoTIFF) with bilinear lookup."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge.geodesy import WGS84_A_M, WGS84_E2, WGS84_F, FloatArray, geodetic_to_enu

SIDECAR_FORMAT = "towerwatch.dem/1"

CrsKind = Literal["geographic", "local", "utm"]

# GeoTIFF tags (GeoTIFF 1.0 spec §2.6) and GDAL's no-data tag.
_TAG_MODEL_PIXEL_SCALE = 33550
_TAG_MODEL_TIEPOINT = 33922
_TAG_MODEL_TRANSFORMATION = 34264
_TAG_GEO_KEY_DIRECTORY = 34735
_TAG_GDAL_NODATA = 42113
_KEY_MODEL_TYPE = 1024
_KEY_RASTER_TYPE = 1025
_KEY_GEOGRAPHIC_TYPE = 2048
_KEY_PROJECTED_CS_TYPE = 3072
_MODEL_TYPE_PROJECTED = 1
_MODEL_TYPE_GEOGRAPHIC = 2
_RASTER_PIXEL_IS_POINT = 2

# Geographic datums accepted as WGS-84: ETRS89 and NAD83 differ from it by about a
# metre, which is nothing against a DEM cell.
_GEOGRAPHIC_EPSG = {4326, 4258, 4269}

# TIFF field type → (struct code, size in bytes).
_TIFF_TYPES: dict[int, tuple[str, int]] = {
    1: ("B", 1),
    2: ("s", 1),
    3: ("H", 2),
    4: ("I", 4),
    5: ("II", 8),
    6: ("b", 1),
    7: ("B", 1),
    8: ("h", 2),
    9: ("i", 4),
    10: ("ii", 8),
    11: ("f", 4),
    12: ("d", 8),
    16: ("Q", 8),
    17: ("q", 8),
}

# UTM (transverse Mercator, Krüger series to n⁴ after Karney 2011: sub-millimetre).
_UTM_K0 = 0.9996
_UTM_FALSE_EASTING_M = 500_000.0
_UTM_FALSE_NORTHING_SOUTH_M = 10_000_000.0
_N = WGS84_F / (2.0 - WGS84_F)
_UTM_A = WGS84_A_M / (1.0 + _N) * (1.0 + _N**2 / 4.0 + _N**4 / 64.0)
_UTM_ALPHA = (
    _N / 2.0 - 2.0 * _N**2 / 3.0 + 5.0 * _N**3 / 16.0 + 41.0 * _N**4 / 180.0,
    13.0 * _N**2 / 48.0 - 3.0 * _N**3 / 5.0 + 557.0 * _N**4 / 1440.0,
    61.0 * _N**3 / 240.0 - 103.0 * _N**4 / 140.0,
    49561.0 * _N**4 / 161280.0,
)
_E = math.sqrt(WGS84_E2)


class DemError(ValueError):
    """A DEM file that cannot be used; the message names the file and what is wrong."""


def utm_forward(
    lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike, zone: int, south: bool
) -> tuple[FloatArray, FloatArray]:
    """(easting_m, northing_m) of WGS-84 points in a UTM zone."""
    if not 1 <= zone <= 60:
        raise ValueError(f"UTM zone must be 1..60, got {zone}")
    phi = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lam = np.radians(np.asarray(lon_deg, dtype=np.float64) - (6.0 * zone - 183.0))
    sin_phi = np.sin(phi)
    t = np.sinh(np.arctanh(sin_phi) - _E * np.arctanh(_E * sin_phi))
    xi_p = np.arctan2(t, np.cos(lam))
    eta_p = np.arctanh(np.sin(lam) / np.sqrt(1.0 + t * t))
    xi, eta = xi_p.copy(), eta_p.copy()
    for j, alpha in enumerate(_UTM_ALPHA, start=1):
        xi += alpha * np.sin(2 * j * xi_p) * np.cosh(2 * j * eta_p)
        eta += alpha * np.cos(2 * j * xi_p) * np.sinh(2 * j * eta_p)
    easting = _UTM_FALSE_EASTING_M + _UTM_K0 * _UTM_A * eta
    northing = _UTM_K0 * _UTM_A * xi + (_UTM_FALSE_NORTHING_SOUTH_M if south else 0.0)
    return easting, northing


@dataclass(frozen=True)
class GridGeometry:
    """Where node (row, col) of a height grid lies: coordinate = origin + index · step.

    geographic: row axis latitude, column axis longitude, in degrees (WGS-84).
    local: row axis north, column axis east, in metres on the tangent (ENU)
    plane at reference_lat/reference_lon. utm: row axis northing, column axis
    easting, in metres, in utm_zone (utm_south for the southern hemisphere).
    Steps are signed: a north-up grid has a negative row step.
    """

    crs: CrsKind
    origin_row: float
    origin_col: float
    step_row: float
    step_col: float
    reference_lat: float = 0.0
    reference_lon: float = 0.0
    utm_zone: int = 0
    utm_south: bool = False

    def __post_init__(self) -> None:
        if self.step_row == 0.0 or self.step_col == 0.0:
            raise ValueError("DEM grid steps must be non-zero")
        if self.crs == "utm" and not 1 <= self.utm_zone <= 60:
            raise ValueError(f"DEM utm zone must be 1..60, got {self.utm_zone}")

    def fractional_index(
        self, lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """(row, col) fractional grid indices of WGS-84 points."""
        lat = np.asarray(lat_deg, dtype=np.float64)
        lon = np.asarray(lon_deg, dtype=np.float64)
        if self.crs == "geographic":
            # Longitudes are taken on the branch nearest the grid origin so a grid
            # given in 0..360 or one next to the antimeridian still works.
            lon = self.origin_col + (lon - self.origin_col + 180.0) % 360.0 - 180.0
            row_coord, col_coord = lat, lon
        elif self.crs == "local":
            col_coord, row_coord, _ = geodetic_to_enu(
                lat, lon, 0.0, self.reference_lat, self.reference_lon, 0.0
            )
        else:
            col_coord, row_coord = utm_forward(lat, lon, self.utm_zone, self.utm_south)
        return (row_coord - self.origin_row) / self.step_row, (
            col_coord - self.origin_col
        ) / self.step_col

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"format": SIDECAR_FORMAT, "crs": self.crs}
        if self.crs == "geographic":
            doc["origin_deg"] = [self.origin_row, self.origin_col]
            doc["step_deg"] = [self.step_row, self.step_col]
        else:
            doc["origin_m"] = [self.origin_row, self.origin_col]
            doc["step_m"] = [self.step_row, self.step_col]
        if self.crs == "local":
            doc["reference_deg"] = [self.reference_lat, self.reference_lon]
        if self.crs == "utm":
            doc["zone"] = self.utm_zone
            doc["hemisphere"] = "S" if self.utm_south else "N"
        return doc


def _pair(doc: dict[str, Any], key: str, where: str) -> tuple[float, float]:
    value = doc.get(key)
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and math.isfinite(v) for v in value)
    ):
        raise DemError(f"{where}: {key!r} must be a list of two numbers, got {value!r}")
    return float(value[0]), float(value[1])


def _geometry_from_json(doc: Any, where: str) -> tuple[GridGeometry, float | None]:
    if not isinstance(doc, dict):
        raise DemError(f"{where}: sidecar must be a JSON object")
    if doc.get("format") != SIDECAR_FORMAT:
        raise DemError(f"{where}: 'format' must be {SIDECAR_FORMAT!r}, got {doc.get('format')!r}")
    crs = doc.get("crs")
    allowed = {
        "geographic": {"format", "crs", "origin_deg", "step_deg", "nodata"},
        "local": {"format", "crs", "origin_m", "step_m", "reference_deg", "nodata"},
        "utm": {"format", "crs", "origin_m", "step_m", "zone", "hemisphere", "nodata"},
    }
    if crs not in allowed:
        raise DemError(f"{where}: 'crs' must be one of {sorted(allowed)}, got {crs!r}")
    unknown = set(doc) - allowed[crs]
    if unknown:
        raise DemError(f"{where}: unknown keys {sorted(unknown)} for crs {crs!r}")
    nodata = doc.get("nodata")
    if nodata is not None and not isinstance(nodata, int | float):
        raise DemError(f"{where}: 'nodata' must be a number or null, got {nodata!r}")
    try:
        if crs == "geographic":
            origin = _pair(doc, "origin_deg", where)
            step = _pair(doc, "step_deg", where)
            geometry = GridGeometry("geographic", *origin, *step)
        elif crs == "local":
            origin = _pair(doc, "origin_m", where)
            step = _pair(doc, "step_m", where)
            ref = _pair(doc, "reference_deg", where)
            geometry = GridGeometry(
                "local", *origin, *step, reference_lat=ref[0], reference_lon=ref[1]
            )
        else:
            origin = _pair(doc, "origin_m", where)
            step = _pair(doc, "step_m", where)
            zone, hemisphere = doc.get("zone"), doc.get("hemisphere")
            if not isinstance(zone, int) or hemisphere not in ("N", "S"):
                raise DemError(
                    f"{where}: utm needs 'zone' (1..60) and 'hemisphere' ('N' or 'S'), "
                    f"got {zone!r}, {hemisphere!r}"
                )
            geometry = GridGeometry(
                "utm", *origin, *step, utm_zone=zone, utm_south=hemisphere == "S"
            )
    except DemError:
        raise
    except ValueError as exc:
        raise DemError(f"{where}: {exc}") from exc
    return geometry, None if nodata is None else float(nodata)


class Dem:
    """Heights in metres above MSL on a regular grid, with vectorised bilinear lookup."""

    def __init__(
        self,
        heights_m: npt.ArrayLike,
        geometry: GridGeometry,
        *,
        nodata: float | None = None,
        source: str = "<memory>",
    ) -> None:
        grid = np.array(heights_m, dtype=np.float64)
        if grid.ndim != 2 or grid.shape[0] < 2 or grid.shape[1] < 2:
            raise DemError(f"{source}: DEM must be a 2-D grid of at least 2×2, got {grid.shape}")
        if nodata is not None:
            grid[grid == nodata] = np.nan
        if not np.isfinite(grid).any():
            raise DemError(f"{source}: DEM holds no valid height")
        self.heights_m = grid
        self.geometry = geometry
        self.source = source
        self._flat = np.ascontiguousarray(grid).ravel()
        self._has_nodata = bool(np.isnan(grid).any())
        self._envelopes: dict[tuple[int, int], FloatArray] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return self.heights_m.shape[0], self.heights_m.shape[1]

    @property
    def cell_size_m(self) -> float:
        """Smallest node spacing in metres (at the grid's middle for geographic grids)."""
        g = self.geometry
        if g.crs != "geographic":
            return min(abs(g.step_row), abs(g.step_col))
        mid_lat = math.radians(g.origin_row + g.step_row * (self.shape[0] - 1) / 2.0)
        w = math.sqrt(1.0 - WGS84_E2 * math.sin(mid_lat) ** 2)
        meridian_m = WGS84_A_M * (1.0 - WGS84_E2) / w**3
        prime_vertical_m = WGS84_A_M / w
        return min(
            math.radians(abs(g.step_row)) * meridian_m,
            math.radians(abs(g.step_col)) * prime_vertical_m * math.cos(mid_lat),
        )

    def height_or_nan(self, lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike) -> FloatArray:
        """Bilinear heights at WGS-84 points; NaN outside the grid or next to a no-data node."""
        row, col = self.geometry.fractional_index(lat_deg, lon_deg)
        rows, cols = self.shape
        # Points on the grid's edge come out a few ulps outside after the coordinate
        # arithmetic; they are on the grid.
        eps = 1e-9
        inside = (row >= -eps) & (row <= rows - 1 + eps) & (col >= -eps) & (col <= cols - 1 + eps)
        r = np.clip(np.where(inside, row, 0.0), 0.0, rows - 1)
        c = np.clip(np.where(inside, col, 0.0), 0.0, cols - 1)
        r0 = np.minimum(r.astype(np.intp), rows - 2)  # r >= 0, so truncation is floor
        c0 = np.minimum(c.astype(np.intp), cols - 2)
        fr, fc = r - r0, c - c0
        # Flat gathers: this lookup is the inner loop of the geolocation ray march.
        idx = r0 * cols + c0
        z00 = self._flat.take(idx)
        z01 = self._flat.take(idx + 1)
        z10 = self._flat.take(idx + cols)
        z11 = self._flat.take(idx + cols + 1)
        if self._has_nodata:
            # A no-data (NaN) node must spoil only the points that actually weigh it.
            value = np.zeros(np.shape(r))
            for z, w in (
                (z00, (1.0 - fr) * (1.0 - fc)),
                (z01, (1.0 - fr) * fc),
                (z10, fr * (1.0 - fc)),
                (z11, fr * fc),
            ):
                value = value + np.where(w > 0.0, w * z, 0.0)
        else:
            top = z00 + (z01 - z00) * fc
            bottom = z10 + (z11 - z10) * fc
            value = top + (bottom - top) * fr
        return np.where(inside, value, np.nan)

    def _cells_per_metre(self) -> tuple[float, float]:
        """Grid cells per metre along rows and columns (the larger where it varies)."""
        g = self.geometry
        if g.crs != "geographic":
            return 1.0 / abs(g.step_row), 1.0 / abs(g.step_col)
        rows = self.shape[0]
        lats = (g.origin_row, g.origin_row + g.step_row * (rows - 1))
        # Columns are narrowest at the grid's most poleward latitude.
        cos_min = max(min(math.cos(math.radians(lat)) for lat in lats), 1e-6)
        metres_per_deg = math.radians(1.0) * WGS84_A_M * (1.0 - WGS84_E2)
        return 1.0 / (abs(g.step_row) * metres_per_deg), 1.0 / (
            abs(g.step_col) * math.radians(1.0) * WGS84_A_M * cos_min
        )

    def envelope_or_nan(
        self, lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike, radius_m: float
    ) -> FloatArray:
        """An upper bound of the interpolated surface anywhere within radius_m of each point.

        The ray march uses it to skip long stretches where the ray clears every
        hill. It is the nearest node of a max-filtered grid whose window covers
        the radius plus the bilinear support; NaN outside the grid.
        """
        per_row_m, per_col_m = self._cells_per_metre()
        # Nearest node ±0.5 cell, bilinear support ±1 cell: 2 cells beyond the radius.
        half = (math.ceil(radius_m * per_row_m) + 2, math.ceil(radius_m * per_col_m) + 2)
        if half not in self._envelopes:
            filled = np.where(np.isnan(self.heights_m), -np.inf, self.heights_m)
            kernel = np.ones((2 * half[0] + 1, 2 * half[1] + 1), np.uint8)
            dilated = cv2.dilate(filled, kernel, borderType=cv2.BORDER_REPLICATE)
            self._envelopes[half] = np.asarray(dilated, dtype=np.float64)
        envelope = self._envelopes[half]
        row, col = self.geometry.fractional_index(lat_deg, lon_deg)
        rows, cols = self.shape
        r = np.rint(row)
        c = np.rint(col)
        inside = (r >= 0) & (r <= rows - 1) & (c >= 0) & (c <= cols - 1)
        idx = np.where(inside, r, 0).astype(np.intp) * cols + np.where(inside, c, 0).astype(np.intp)
        return np.where(inside, envelope.ravel().take(idx), np.nan)

    def height_m(self, lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike) -> FloatArray:
        """Bilinear heights at WGS-84 points; raises naming the first point off the grid."""
        value = self.height_or_nan(lat_deg, lon_deg)
        bad = np.isnan(value)
        if bad.any():
            lat_b, lon_b = np.broadcast_arrays(np.asarray(lat_deg), np.asarray(lon_deg))
            i = np.flatnonzero(bad.ravel())[0]
            raise DemError(
                f"{self.source}: no DEM height at lat {float(lat_b.ravel()[i]):.6f}, "
                f"lon {float(lon_b.ravel()[i]):.6f} (outside the grid or no-data)"
            )
        return value

    def save(self, path: str | Path) -> None:
        """Write the grid as <path>.npy (float64, no-data as NaN) and its <path>.json sidecar."""
        npy = Path(path).with_suffix(".npy")
        np.save(npy, self.heights_m)
        doc = self.geometry.to_json()
        doc["nodata"] = None
        npy.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path, *, crs: str | None = None) -> Dem:
        """Load a .npy grid with its .json sidecar, or a GeoTIFF (.tif/.tiff).

        A TIFF without GeoTIFF tags is georeferenced by its world file (.tfw,
        .tifw or .wld beside it); a world file does not say its CRS, so crs must
        then be given: 'geographic' or 'utm:<zone><N|S>' (e.g. 'utm:33N').
        """
        p = Path(path)
        if not p.is_file():
            raise DemError(f"{p}: DEM file not found")
        suffix = p.suffix.lower()
        if suffix == ".npy":
            return cls._load_npy(p)
        if suffix in (".tif", ".tiff"):
            return cls._load_tiff(p, crs)
        raise DemError(f"{p}: unknown DEM format {suffix!r}; use .npy + .json or GeoTIFF")

    @classmethod
    def _load_npy(cls, p: Path) -> Dem:
        sidecar = p.with_suffix(".json")
        if not sidecar.is_file():
            raise DemError(f"{p}: missing sidecar {sidecar.name} giving crs, origin and step")
        try:
            doc = json.loads(sidecar.read_text())
        except json.JSONDecodeError as exc:
            raise DemError(f"{sidecar}: not valid JSON ({exc})") from exc
        geometry, nodata = _geometry_from_json(doc, str(sidecar))
        try:
            grid = np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise DemError(f"{p}: not a plain numeric .npy array ({exc})") from exc
        if not np.issubdtype(grid.dtype, np.number):
            raise DemError(f"{p}: heights must be numeric, got dtype {grid.dtype}")
        return cls(grid, geometry, nodata=nodata, source=str(p))

    @classmethod
    def _load_tiff(cls, p: Path, crs: str | None) -> Dem:
        tags = read_tiff_tags(p)
        pixels = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise DemError(f"{p}: the TIFF's pixels cannot be decoded")
        if pixels.ndim != 2:
            raise DemError(f"{p}: a DEM must have one band, got shape {pixels.shape}")
        nodata: float | None = None
        raw_nodata = tags.get(_TAG_GDAL_NODATA)
        if isinstance(raw_nodata, str) and raw_nodata.strip().lower() not in ("", "nan"):
            try:
                nodata = float(raw_nodata.strip())
            except ValueError as exc:
                raise DemError(f"{p}: GDAL_NODATA {raw_nodata!r} is not a number") from exc
        if _TAG_GEO_KEY_DIRECTORY in tags:
            geometry = _geotiff_geometry(tags, p)
        else:
            geometry = _world_file_geometry(p, crs)
        return cls(pixels, geometry, nodata=nodata, source=str(p))


def read_tiff_tags(path: Path) -> dict[int, Any]:
    """Tags of a TIFF's first image (classic or BigTIFF): numbers as tuples, ASCII as str."""
    data = path.read_bytes()
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        raise DemError(f"{path}: not a TIFF file")
    bo = "<" if data[:2] == b"II" else ">"
    magic = struct.unpack_from(bo + "H", data, 2)[0]
    if magic == 42:
        ifd = struct.unpack_from(bo + "I", data, 4)[0]
        count_fmt, entry_size, inline, offset_fmt = "H", 12, 4, "I"
    elif magic == 43:
        ifd = struct.unpack_from(bo + "Q", data, 8)[0]
        count_fmt, entry_size, inline, offset_fmt = "Q", 20, 8, "Q"
    else:
        raise DemError(f"{path}: not a TIFF file (magic {magic})")
    try:
        n_entries = struct.unpack_from(bo + count_fmt, data, ifd)[0]
        pos = ifd + struct.calcsize(count_fmt)
        tags: dict[int, Any] = {}
        for _ in range(n_entries):
            tag, ftype = struct.unpack_from(bo + "HH", data, pos)
            count = struct.unpack_from(bo + offset_fmt, data, pos + 4)[0]
            value_pos = pos + 4 + struct.calcsize(offset_fmt)
            pos += entry_size
            if ftype not in _TIFF_TYPES:
                continue  # unknown field types are skipped, as the TIFF spec asks readers to
            code, size = _TIFF_TYPES[ftype]
            nbytes = size * count
            if nbytes > inline:
                value_pos = struct.unpack_from(bo + offset_fmt, data, value_pos)[0]
            if value_pos + nbytes > len(data):
                raise DemError(f"{path}: TIFF tag {tag} points past the end of the file")
            if ftype == 2:
                tags[tag] = data[value_pos : value_pos + nbytes].split(b"\0")[0].decode("latin-1")
            elif len(code) == 2:
                raw = struct.unpack_from(bo + code[0] * (2 * count), data, value_pos)
                tags[tag] = tuple(raw[i] / raw[i + 1] for i in range(0, len(raw), 2))
            else:
                tags[tag] = struct.unpack_from(bo + code * count, data, value_pos)
    except struct.error as exc:
        raise DemError(f"{path}: truncated TIFF directory ({exc})") from exc
    return tags


def _geo_keys(tags: dict[int, Any]) -> dict[int, int]:
    directory = tags[_TAG_GEO_KEY_DIRECTORY]
    keys: dict[int, int] = {}
    n_keys = directory[3] if len(directory) >= 4 else 0
    for i in range(n_keys):
        key_id, location, _count, value = directory[4 + 4 * i : 8 + 4 * i]
        if location == 0:  # short values are stored inline; others are not needed here
            keys[key_id] = value
    return keys


def _geotiff_geometry(tags: dict[int, Any], p: Path) -> GridGeometry:
    keys = _geo_keys(tags)
    model = keys.get(_KEY_MODEL_TYPE)
    if model == _MODEL_TYPE_GEOGRAPHIC:
        epsg = keys.get(_KEY_GEOGRAPHIC_TYPE, 4326)
        if epsg not in _GEOGRAPHIC_EPSG:
            raise DemError(
                f"{p}: geographic CRS EPSG:{epsg} is not supported; "
                "reproject the DEM to EPSG:4326 or UTM (WGS-84 / ETRS89)"
            )
        zone, south = 0, False
    elif model == _MODEL_TYPE_PROJECTED:
        epsg = keys.get(_KEY_PROJECTED_CS_TYPE, 0)
        if 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760:
            zone, south = epsg % 100, epsg >= 32701
        elif 25828 <= epsg <= 25838:
            zone, south = epsg - 25800, False
        else:
            raise DemError(
                f"{p}: projected CRS EPSG:{epsg} is not supported; "
                "reproject the DEM to EPSG:4326 or a WGS-84/ETRS89 UTM zone"
            )
    else:
        raise DemError(f"{p}: GeoTIFF model type {model!r} is neither geographic nor projected")

    if _TAG_MODEL_TRANSFORMATION in tags:
        m = tags[_TAG_MODEL_TRANSFORMATION]
        if len(m) != 16 or m[1] != 0.0 or m[4] != 0.0:
            raise DemError(f"{p}: rotated or sheared GeoTIFF transformations are not supported")
        scale_x, scale_y, x0, y0 = m[0], -m[5], m[3], m[7]
    elif _TAG_MODEL_TIEPOINT in tags and _TAG_MODEL_PIXEL_SCALE in tags:
        tie = tags[_TAG_MODEL_TIEPOINT]
        scale = tags[_TAG_MODEL_PIXEL_SCALE]
        if len(tie) < 6 or len(scale) < 2:
            raise DemError(f"{p}: malformed ModelTiepoint or ModelPixelScale tag")
        i, j, x, y = tie[0], tie[1], tie[3], tie[4]
        scale_x, scale_y = scale[0], scale[1]
        x0, y0 = x - i * scale_x, y + j * scale_y
    else:
        raise DemError(f"{p}: GeoTIFF has neither ModelTransformation nor tiepoint + pixel scale")
    # Raster space puts pixel (0, 0)'s corner at (0, 0) for PixelIsArea, its centre
    # for PixelIsPoint; the grid's nodes are pixel centres.
    half = 0.0 if keys.get(_KEY_RASTER_TYPE) == _RASTER_PIXEL_IS_POINT else 0.5
    origin_x = x0 + half * scale_x
    origin_y = y0 - half * scale_y
    if model == _MODEL_TYPE_GEOGRAPHIC:
        return GridGeometry("geographic", origin_y, origin_x, -scale_y, scale_x)
    return GridGeometry(
        "utm", origin_y, origin_x, -scale_y, scale_x, utm_zone=zone, utm_south=south
    )


def _parse_crs_option(crs: str | None, p: Path) -> tuple[CrsKind, int, bool]:
    if crs == "geographic":
        return "geographic", 0, False
    if crs is not None and crs.lower().startswith("utm:"):
        spec = crs[4:].strip().upper()
        if (
            len(spec) >= 2
            and spec[-1] in "NS"
            and spec[:-1].isdigit()
            and 1 <= int(spec[:-1]) <= 60
        ):
            return "utm", int(spec[:-1]), spec[-1] == "S"
    raise DemError(
        f"{p}: a world file does not say its CRS; give crs 'geographic' or 'utm:<zone><N|S>' "
        f"(e.g. 'utm:33N'), got {crs!r}"
    )


def _world_file_geometry(p: Path, crs: str | None) -> GridGeometry:
    candidates = [p.with_suffix(s) for s in (".tfw", ".tifw", ".wld", ".TFW")]
    world = next((c for c in candidates if c.is_file()), None)
    if world is None:
        raise DemError(
            f"{p}: TIFF has no GeoTIFF tags and no world file ({p.with_suffix('.tfw').name}) "
            "beside it"
        )
    kind, zone, south = _parse_crs_option(crs, p)
    lines = [ln.strip() for ln in world.read_text().splitlines() if ln.strip()]
    try:
        a, d, b, e, c, f = (float(x) for x in lines)
    except ValueError as exc:
        raise DemError(f"{world}: a world file holds exactly six numbers ({exc})") from exc
    if b != 0.0 or d != 0.0:
        raise DemError(f"{world}: rotated world files are not supported")
    # A world file gives the centre of the top-left pixel: exactly a grid node.
    if kind == "geographic":
        return GridGeometry("geographic", f, c, e, a)
    return GridGeometry("utm", f, c, e, a, utm_zone=zone, utm_south=south)
