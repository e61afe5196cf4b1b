"""`towerwatch coverage`: the tower's coverage map as GeoJSON (for QGIS) and a PNG plan view.

Features: the tower, the patrol sector, the ground horizon of the mast, the detection
range of each mission fire in the config's weather (day and night criteria, capped at
the horizon), the known heat sources, the mapped roads and the exclusion zones. GeoJSON
follows RFC 7946: WGS84 [lon, lat], polygons closed and wound counter-clockwise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from edge.cli_support import (
    EXIT_FAILURE,
    config_options,
    echo_json,
    fail,
    json_option,
    load_or_exit,
)
from edge.config import TowerConfig
from edge.coverage import horizon_m, mission_ranges
from edge.geodesy import destination, geodetic_to_enu

# Vertices of a drawn circle or arc: one every so many degrees of bearing (0.3 % chord
# sag at 2°, well inside the 1 % a map reader can see).
ARC_STEP_DEG = 2.0
# Decimal places of a coordinate: 1e-7° is about 1 cm, finer than any survey here.
COORD_DECIMALS = 7
PNG_SIZE_PX = 900
PNG_MARGIN_PX = 40

Lonlat = list[float]


@dataclass(frozen=True)
class Ring:
    """A detection-range ring of one mission fire under one criterion."""

    size_m: float
    criterion: str  # "day" or "night"
    required_range_m: float
    detectable_range_m: float
    range_m: float  # detectable range capped at the horizon


def _lonlat(lat: float, lon: float) -> Lonlat:
    return [round(lon, COORD_DECIMALS), round(lat, COORD_DECIMALS)]


def arc(lat: float, lon: float, radius_m: float, start_deg: float, span_deg: float) -> list[Lonlat]:
    """Points at ``radius_m`` from (lat, lon), bearings from start clockwise over span."""
    steps = max(2, math.ceil(span_deg / ARC_STEP_DEG))
    return [
        _lonlat(*destination(lat, lon, (start_deg + span_deg * i / steps) % 360.0, radius_m))
        for i in range(steps + 1)
    ]


def circle_ring(lat: float, lon: float, radius_m: float) -> list[Lonlat]:
    """A closed counter-clockwise ring (RFC 7946 exterior) of the circle."""
    points = arc(lat, lon, radius_m, 0.0, 360.0)[:-1]
    points.reverse()  # bearings grow clockwise; the exterior ring turns the other way
    return [*points, points[0]]


def sector_ring(
    lat: float, lon: float, radius_m: float, start_deg: float, span_deg: float
) -> list[Lonlat]:
    """The patrol sector as a closed counter-clockwise ring (a full circle for 360°)."""
    if span_deg >= 360.0:
        return circle_ring(lat, lon, radius_m)
    centre = _lonlat(lat, lon)
    points = arc(lat, lon, radius_m, start_deg, span_deg)
    points.reverse()
    return [centre, *points, centre]


def detection_rings(cfg: TowerConfig, horizon: float) -> list[Ring]:
    rings = []
    for criterion, is_day in (("day", True), ("night", False)):
        for r in mission_ranges(cfg.camera, cfg.weather, cfg.coverage, is_day=is_day):
            rings.append(
                Ring(
                    r.size_m,
                    criterion,
                    r.required_range_m,
                    r.detectable_range_m,
                    min(r.detectable_range_m, horizon),
                )
            )
    return rings


def _feature(kind: str, name: str, geometry: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"kind": kind, "name": name, **props},
    }


def _polygon(ring: list[Lonlat]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [ring]}


def coverage_features(cfg: TowerConfig) -> list[dict[str, Any]]:
    """Every feature of the coverage map, in drawing order (areas first, points last)."""
    t = cfg.tower
    lat, lon = t.lat, t.lon
    horizon = horizon_m(t.mast_height_m, cfg.geolocation.refraction_k)
    # Without a finite horizon (k ≥ 1) the sector is drawn to the farthest ground hit.
    reach = horizon if math.isfinite(horizon) else cfg.geolocation.max_range_m
    rings = detection_rings(cfg, horizon)
    patrol = cfg.patrol
    features = [
        _feature(
            "patrol_sector",
            f"patrol {patrol.azimuth_start_deg:g}°+{patrol.azimuth_span_deg:g}°",
            _polygon(
                sector_ring(lat, lon, reach, patrol.azimuth_start_deg, patrol.azimuth_span_deg)
            ),
            azimuth_start_deg=patrol.azimuth_start_deg,
            azimuth_span_deg=patrol.azimuth_span_deg,
            radius_m=reach,
        )
    ]
    if math.isfinite(horizon):
        features.append(
            _feature(
                "horizon",
                f"ground horizon {horizon / 1000:.1f} km",
                _polygon(circle_ring(lat, lon, horizon)),
                radius_m=horizon,
                mast_height_m=t.mast_height_m,
                ground_elevation_m=t.ground_elevation_m,
                refraction_k=cfg.geolocation.refraction_k,
            )
        )
    for ring in rings:
        features.append(
            _feature(
                "detection_range",
                f"{ring.size_m:g} m fire, {ring.criterion}",
                _polygon(circle_ring(lat, lon, ring.range_m)),
                criterion=ring.criterion,
                fire_size_m=ring.size_m,
                radius_m=ring.range_m,
                detectable_range_m=ring.detectable_range_m,
                required_range_m=ring.required_range_m,
                horizon_limited=ring.detectable_range_m > horizon,
                met=ring.range_m >= ring.required_range_m,
                air_temp_c=cfg.weather.air_temp_c,
                relative_humidity_pct=cfg.weather.relative_humidity_pct,
                visibility_km=cfg.weather.visibility_km,
            )
        )
    for zone in cfg.exclusion_zones:
        features.append(
            _feature(
                "exclusion_zone",
                zone.name,
                _polygon(circle_ring(zone.lat, zone.lon, zone.radius_m)),
                radius_m=zone.radius_m,
                reason=zone.reason,
            )
        )
    for road in cfg.roads:
        features.append(
            _feature(
                "road",
                road.name,
                {"type": "LineString", "coordinates": [_lonlat(p.lat, p.lon) for p in road.points]},
                width_m=road.width_m,
            )
        )
    for source in cfg.known_sources:
        features.append(
            _feature(
                "known_source",
                source.name,
                {"type": "Point", "coordinates": _lonlat(source.lat, source.lon)},
                source_kind=source.kind,
                height_m=source.height_m,
                radius_m=source.radius_m,
            )
        )
    features.append(
        _feature(
            "tower",
            t.name or t.id,
            {"type": "Point", "coordinates": _lonlat(lat, lon)},
            tower_id=t.id,
            ground_elevation_m=t.ground_elevation_m,
            mast_height_m=t.mast_height_m,
        )
    )
    return features


# --------------------------------------------------------------------------- the PNG

# BGR colours of the plan view, by feature kind.
COLOURS: dict[str, tuple[int, int, int]] = {
    "patrol_sector": (230, 216, 173),
    "horizon": (90, 90, 90),
    "detection_range": (0, 140, 255),
    "exclusion_zone": (180, 0, 180),
    "road": (40, 40, 40),
    "known_source": (0, 0, 220),
    "tower": (160, 60, 0),
}
LEGEND = {
    "patrol_sector": "patrol sector",
    "horizon": "ground horizon",
    "detection_range": "mission fire range (solid day, thin night)",
    "exclusion_zone": "exclusion zone",
    "road": "mapped road",
    "known_source": "known heat source",
    "tower": "tower",
}


def _nice_length_m(at_most_m: float) -> float:
    """The largest 1, 2 or 5 × 10^n metres not above ``at_most_m``."""
    exponent = 10 ** math.floor(math.log10(at_most_m))
    return max(m * exponent for m in (1, 2, 5) if m * exponent <= at_most_m)


def render_png(cfg: TowerConfig, features: Sequence[dict[str, Any]]) -> np.ndarray:
    """A north-up plan view (BGR) of the features around the tower, scale bar and legend."""
    import cv2  # lazy: `towerwatch --help` never pays for OpenCV

    t = cfg.tower
    extent_m = 1.0
    for f in features:
        extent_m = max(extent_m, float(f["properties"].get("radius_m", 0.0)))
    size = PNG_SIZE_PX
    scale = (size / 2 - PNG_MARGIN_PX) / (extent_m * 1.05)  # px per metre

    def to_px(coords: Sequence[Lonlat]) -> np.ndarray:
        lons = np.array([c[0] for c in coords])
        lats = np.array([c[1] for c in coords])
        e, n, _ = geodetic_to_enu(lats, lons, 0.0, t.lat, t.lon, 0.0)
        return (
            np.column_stack([size / 2 + e * scale, size / 2 - n * scale]).round().astype(np.int32)
        )

    image = np.full((size, size, 3), 255, np.uint8)
    for f in features:
        kind = f["properties"]["kind"]
        geometry = f["geometry"]
        colour = COLOURS[kind]
        if geometry["type"] == "Polygon":
            points = to_px(geometry["coordinates"][0])
            if kind == "patrol_sector":
                cv2.fillPoly(image, [points], colour)
            else:
                thin = kind == "detection_range" and f["properties"]["criterion"] == "night"
                cv2.polylines(image, [points], True, colour, 1 if thin else 2, cv2.LINE_AA)
        elif geometry["type"] == "LineString":
            cv2.polylines(image, [to_px(geometry["coordinates"])], False, colour, 2, cv2.LINE_AA)
        else:
            ((x, y),) = to_px([geometry["coordinates"]])
            if kind == "tower":
                cv2.drawMarker(image, (int(x), int(y)), colour, cv2.MARKER_TRIANGLE_UP, 16, 2)
            else:
                cv2.circle(image, (int(x), int(y)), 4, colour, -1, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    # north arrow
    cv2.arrowedLine(image, (size - 30, 70), (size - 30, 25), (0, 0, 0), 2, tipLength=0.3)
    cv2.putText(image, "N", (size - 37, 90), font, 0.6, (0, 0, 0), 2, cv2.LINE_AA)
    # scale bar: a round length of about a quarter of the view
    bar_m = _nice_length_m(extent_m / 2)
    bar_px = int(round(bar_m * scale))
    x0, y0 = 20, size - 20
    cv2.line(image, (x0, y0), (x0 + bar_px, y0), (0, 0, 0), 3)
    for x in (x0, x0 + bar_px):
        cv2.line(image, (x, y0 - 6), (x, y0 + 2), (0, 0, 0), 2)
    label = f"{bar_m / 1000:g} km" if bar_m >= 1000 else f"{bar_m:g} m"
    cv2.putText(image, label, (x0, y0 - 10), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    # legend: only the kinds drawn
    kinds = list(dict.fromkeys(f["properties"]["kind"] for f in features))
    cv2.putText(image, f"{t.name or t.id} coverage", (15, 25), font, 0.6, (0, 0, 0), 2, cv2.LINE_AA)
    for i, kind in enumerate(kinds):
        y = 50 + 20 * i
        cv2.rectangle(image, (15, y - 10), (30, y + 2), COLOURS[kind], -1)
        cv2.putText(image, LEGEND[kind], (38, y), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return image


# --------------------------------------------------------------------------- the command


def summary(cfg: TowerConfig, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
    horizon = next((f for f in features if f["properties"]["kind"] == "horizon"), None)
    rings = [f["properties"] for f in features if f["properties"]["kind"] == "detection_range"]
    count = {
        kind: sum(1 for f in features if f["properties"]["kind"] == kind)
        for kind in ("known_source", "road", "exclusion_zone")
    }
    return {
        "tower": {"id": cfg.tower.id, "lat": cfg.tower.lat, "lon": cfg.tower.lon},
        "horizon_m": None if horizon is None else horizon["properties"]["radius_m"],
        "patrol": {
            "azimuth_start_deg": cfg.patrol.azimuth_start_deg,
            "azimuth_span_deg": cfg.patrol.azimuth_span_deg,
        },
        "rings": [
            {
                k: r[k]
                for k in (
                    "fire_size_m",
                    "criterion",
                    "radius_m",
                    "detectable_range_m",
                    "required_range_m",
                    "horizon_limited",
                    "met",
                )
            }
            for r in rings
        ],
        "known_sources": count["known_source"],
        "roads": count["road"],
        "exclusion_zones": count["exclusion_zone"],
    }


@click.command("coverage")
@config_options
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write coverage.geojson and coverage.png into (created if missing).",
)
@json_option
def command(config: str, sets: tuple[str, ...], out_dir: Path, as_json: bool) -> None:
    """Coverage map of the tower: coverage.geojson (opens in QGIS) and coverage.png."""
    import cv2

    cfg = load_or_exit(config, sets)
    features = coverage_features(cfg)
    geojson = {"type": "FeatureCollection", "features": features}
    image = render_png(cfg, features)
    geojson_path, png_path = out_dir / "coverage.geojson", out_dir / "coverage.png"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        geojson_path.write_text(json.dumps(geojson, ensure_ascii=False, indent=1), encoding="utf-8")
    except OSError as exc:
        fail(f"{out_dir}: cannot write: {exc.strerror or exc}", EXIT_FAILURE)
    if not cv2.imwrite(str(png_path), image):
        fail(f"{png_path}: cannot write the PNG", EXIT_FAILURE)
    report = summary(cfg, features)
    report["files"] = {"geojson": str(geojson_path), "png": str(png_path)}
    if as_json:
        echo_json(report)
        return
    horizon = report["horizon_m"]
    click.echo(
        f"tower {cfg.tower.id} at {cfg.tower.lat:.5f}, {cfg.tower.lon:.5f}; ground horizon "
        + ("none (k ≥ 1)" if horizon is None else f"{horizon / 1000:.1f} km")
        + f"; patrol {cfg.patrol.azimuth_start_deg:g}° + {cfg.patrol.azimuth_span_deg:g}°"
    )
    for r in report["rings"]:
        capped = " (horizon)" if r["horizon_limited"] else ""
        verdict = "ok" if r["met"] else "SHORT"
        click.echo(
            f"  {r['fire_size_m']:g} m fire, {r['criterion']:<5}: {r['radius_m'] / 1000:6.1f} km"
            f"{capped}, required {r['required_range_m'] / 1000:g} km: {verdict}"
        )
    click.echo(
        f"  {report['known_sources']} known sources, {report['roads']} roads, "
        f"{report['exclusion_zones']} exclusion zones"
    )
    click.echo(f"wrote {geojson_path} and {png_path}")
