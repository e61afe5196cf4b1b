"""`towerwatch coverage`: GeoJSON geometry (lon/lat, rings at the computed ranges, sector) and PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.config import load_config
from edge.coverage import horizon_m, mission_ranges
from edge.geodesy import distance_bearing

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [ROOT / "config" / "simulated.yaml", ROOT / "config" / "tower.example.yaml"]


def _run(config: Path, out: Path) -> dict:
    result = CliRunner().invoke(
        cli, ["coverage", "--config", str(config), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_coverage_map_geometry_matches_the_config(config: Path, tmp_path: Path) -> None:
    report = _run(config, tmp_path)
    cfg = load_config(config)
    doc = json.loads((tmp_path / "coverage.geojson").read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection"
    features = doc["features"]
    by_kind: dict[str, list[dict]] = {}
    for f in features:
        assert {"kind", "name"} <= set(f["properties"])
        by_kind.setdefault(f["properties"]["kind"], []).append(f)

    # the tower point is [lon, lat]
    (tower,) = by_kind["tower"]
    assert tower["geometry"]["coordinates"] == pytest.approx([cfg.tower.lon, cfg.tower.lat])

    horizon = horizon_m(cfg.tower.mast_height_m, cfg.geolocation.refraction_k)
    expected = {}
    for criterion, is_day in (("day", True), ("night", False)):
        for r in mission_ranges(cfg.camera, cfg.weather, cfg.coverage, is_day=is_day):
            expected[(r.size_m, criterion)] = min(r.detectable_range_m, horizon)
    rings = by_kind["detection_range"] + by_kind["horizon"]
    assert len(by_kind["detection_range"]) == len(expected)
    for f in rings:
        props = f["properties"]
        want = (
            horizon
            if props["kind"] == "horizon"
            else expected[(props["fire_size_m"], props["criterion"])]
        )
        assert props["radius_m"] == pytest.approx(want, rel=1e-9)
        (ring,) = f["geometry"]["coordinates"]
        assert ring[0] == ring[-1]
        for lon, lat in ring:
            d, _ = distance_bearing(cfg.tower.lat, cfg.tower.lon, lat, lon)
            assert d == pytest.approx(want, rel=0.01)
        # RFC 7946: the exterior ring is counter-clockwise (positive shoelace area)
        area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False))
        assert area > 0

    (sector,) = by_kind["patrol_sector"]
    (ring,) = sector["geometry"]["coordinates"]
    bearings = []
    for lon, lat in ring:
        d, b = distance_bearing(cfg.tower.lat, cfg.tower.lon, lat, lon)
        if d > 1.0:
            bearings.append(b)
    start, span = cfg.patrol.azimuth_start_deg, cfg.patrol.azimuth_span_deg
    offsets = [(b - start) % 360.0 for b in bearings]
    if span < 360.0:
        assert all(o <= span + 0.01 or o >= 359.99 for o in offsets)
        assert min(min(o, 360.0 - o) for o in offsets) < 0.01  # reaches the start bearing
        assert any(abs(o - span) < 0.01 for o in offsets)  # ... and the end
    else:
        assert max(offsets) - min(offsets) > 350.0

    assert len(by_kind.get("known_source", [])) == len(cfg.known_sources)
    for f, src in zip(by_kind.get("known_source", []), cfg.known_sources, strict=True):
        assert f["geometry"]["coordinates"] == pytest.approx([src.lon, src.lat])
        assert f["properties"]["radius_m"] == src.radius_m
    for f, road in zip(by_kind.get("road", []), cfg.roads, strict=True):
        assert f["geometry"]["type"] == "LineString"
        assert f["geometry"]["coordinates"][0] == pytest.approx(
            [road.points[0].lon, road.points[0].lat]
        )

    image = cv2.imread(str(tmp_path / "coverage.png"))
    assert image is not None and image.shape[2] == 3
    assert report["files"]["png"] == str(tmp_path / "coverage.png")
    assert math.isclose(report["horizon_m"], horizon)


def test_coverage_summary_is_readable(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["coverage", "--config", str(CONFIGS[0]), "--out", str(tmp_path / "new")]
    )
    assert result.exit_code == 0, result.output
    assert "ground horizon 24.2 km" in result.output
    assert (tmp_path / "new" / "coverage.geojson").exists()


def test_missing_config_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["coverage", "--config", str(tmp_path / "x.yaml"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
