"""`towerwatch calibrate known-source`: add, list, remove and undo on a copy of a config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from edge.cli import cli
from edge.config import load_config
from edge.config_edit import backups_of, with_list_item, without_list_item
from edge.geodesy import distance_bearing

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "tower.yaml"
    shutil.copy(ROOT / "config" / "tower.example.yaml", path)
    return path


def _cli(*args: str) -> object:
    return CliRunner().invoke(cli, ["calibrate", *args])


def test_add_list_remove_and_undo_restore_the_exact_text(example: Path) -> None:
    original = example.read_text()
    cfg = load_config(example)
    added = _cli(
        "known-source",
        "add",
        "Gas flare 7",
        "--kind",
        "flare",
        "--bearing",
        "45",
        "--range",
        "3000",
        "--height-m",
        "20",
        "--radius-m",
        "50",
        "--config",
        str(example),
        "--yes",
    )
    assert added.exit_code == 0, added.output
    after_add = example.read_text()
    # one line more, every other line (and comment) as it was
    assert sorted(set(after_add.splitlines()) - set(original.splitlines())) == [
        "  - {name: Gas flare 7, kind: flare, lat: 37.8315097, lon: 119.0021969, "
        "height_m: 20.0, radius_m: 50.0}"
    ]
    assert set(original.splitlines()) <= set(after_add.splitlines())
    written = load_config(example).known_sources
    assert len(written) == len(cfg.known_sources) + 1
    flare = written[-1]
    distance_m, bearing_deg = distance_bearing(cfg.tower.lat, cfg.tower.lon, flare.lat, flare.lon)
    assert distance_m == pytest.approx(3000.0, abs=0.1)
    assert bearing_deg == pytest.approx(45.0, abs=1e-4)

    listed = _cli("known-source", "list", "--config", str(example), "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)["known_sources"]
    assert [r["name"] for r in rows][-1] == "Gas flare 7"
    assert rows[-1]["range_m"] == pytest.approx(3000.0, abs=0.1)

    removed = _cli("known-source", "remove", "Pumping unit 112", "--config", str(example), "--yes")
    assert removed.exit_code == 0, removed.output
    names = [s.name for s in load_config(example).known_sources]
    assert "Pumping unit 112" not in names and "Gas flare 7" in names
    assert len(backups_of(example)) == 2

    assert _cli("undo", "--config", str(example), "--yes").exit_code == 0
    assert example.read_text() == after_add
    assert _cli("undo", "--config", str(example), "--yes").exit_code == 0
    assert example.read_text() == original
    assert backups_of(example) == []


def test_a_config_without_known_sources_gets_the_section(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    shutil.copy(ROOT / "config" / "simulated.yaml", path)
    original = path.read_text()
    result = _cli(
        "known-source",
        "add",
        "Chimney",
        "--kind",
        "chimney",
        "--lat",
        "46.91",
        "--lon",
        "20.12",
        "--config",
        str(path),
        "--yes",
    )
    assert result.exit_code == 0, result.output
    assert path.read_text().startswith(original)
    (source,) = load_config(path).known_sources
    assert (source.name, source.kind, source.lat, source.lon) == (
        "Chimney",
        "chimney",
        46.91,
        20.12,
    )
    removed = _cli("known-source", "remove", "Chimney", "--config", str(path), "--yes")
    assert removed.exit_code == 0, removed.output
    assert load_config(path).known_sources == ()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["add", "Flare stack GS-3", "--kind", "flare", "--lat", "37.8", "--lon", "119"],
            "already there",
        ),
        (["add", "x", "--kind", "flare", "--lat", "95", "--lon", "119"], "--lat"),
        (
            ["add", "x", "--kind", "flare", "--lat", "37.8", "--lon", "119", "--radius-m", "0"],
            "--radius-m",
        ),
        (["add", "x", "--kind", "flare", "--bearing", "361", "--range", "100"], "--bearing"),
        (["add", "x", "--kind", "flare", "--bearing", "10"], "--range go together"),
        (
            ["add", "x", "--kind", "flare", "--bearing", "10", "--range", "10", "--lat", "1"],
            "either",
        ),
        (["add", "x", "--kind", "volcano", "--lat", "1", "--lon", "1"], "volcano"),
        (["remove", "Nope"], "no entry named 'Nope'"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(example: Path, args: list[str], message: str) -> None:
    before = example.read_text()
    result = _cli("known-source", *args, "--config", str(example), "--yes")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    if "volcano" not in message:  # click's own choice error has its usage lines
        assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert example.read_text() == before
    assert backups_of(example) == []


def test_set_overrides_are_refused(example: Path) -> None:
    result = _cli(
        "known-source",
        "add",
        "x",
        "--kind",
        "flare",
        "--lat",
        "1",
        "--lon",
        "1",
        "--config",
        str(example),
        "--set",
        "weather.air_temp_c=5",
        "--yes",
    )
    assert result.exit_code == 2
    assert "--set" in result.stderr


ITEM = {"name": "B: two", "kind": "flare", "lat": 1.5, "lon": 2.0}


@pytest.mark.parametrize(
    "text",
    [
        "a: 1  # keep\nsources: []  # none yet\nb: 2\n",
        "a: 1  # keep\nsources: [{name: A, lat: 1, lon: 1}]\nb: 2\n",
        "a: 1  # keep\nsources:\n- name: A   # first\n  lat: 1\n  lon: 1\nb: 2\n",
        "a: 1  # keep\nsources:\n    - {name: A, lat: 1, lon: 1}\n    # trailing comment\nb: 2\n",
        "a: 1  # keep\nsources:\nb: 2\n",
        "a: 1  # keep\nb: 2",
    ],
)
def test_list_edits_keep_the_rest_of_the_text(text: str) -> None:
    before = yaml.safe_load(text)
    added = with_list_item(text, "t.yaml", "sources", ITEM)
    after = yaml.safe_load(added)
    assert after["sources"][-1] == ITEM
    assert after["sources"][:-1] == (before.get("sources") or [])
    assert {k: v for k, v in after.items() if k != "sources"} == {
        k: v for k, v in before.items() if k != "sources"
    }
    assert "# keep" in added
    removed = without_list_item(added, "t.yaml", "sources", "B: two")
    assert yaml.safe_load(removed).get("sources") in (before.get("sources") or [], [])
    assert "# keep" in removed
    with pytest.raises(KeyError):
        without_list_item(added, "t.yaml", "sources", "missing")


def test_removing_from_a_flow_list_keeps_its_commas() -> None:
    text = "s: [{name: A}, {name: B}, {name: C}]\n"
    assert without_list_item(text, "t", "s", "B") == "s: [{name: A}, {name: C}]\n"
    assert without_list_item(text, "t", "s", "A") == "s: [{name: B}, {name: C}]\n"
    assert without_list_item(text, "t", "s", "C") == "s: [{name: A}, {name: B}]\n"
    assert without_list_item("s: [{name: A}]\n", "t", "s", "A") == "s: []\n"


def test_a_list_that_is_not_a_list_is_refused() -> None:
    with pytest.raises(ValueError, match="t.yaml:1: s is 'x', not a list"):
        with_list_item("s: x\n", "t.yaml", "s", ITEM)


def test_mask_add_list_remove_undo_and_the_zone_reaches_detection_and_the_map(
    example: Path, tmp_path: Path
) -> None:
    from edge.detection import DetectionContext

    original = example.read_text()
    added = _cli(
        "mask",
        "add",
        "Brick kiln",
        "--bearing",
        "200",
        "--range",
        "2500",
        "--radius-m",
        "150",
        "--reason",
        "kiln exhaust",
        "--config",
        str(example),
        "--yes",
    )
    assert added.exit_code == 0, added.output
    assert "exclusion_zones: [{name: Brick kiln" in example.read_text()  # the flow list
    cfg = load_config(example)
    (zone,) = cfg.exclusion_zones
    assert (zone.radius_m, zone.reason) == (150.0, "kiln exhaust")
    distance_m, bearing_deg = distance_bearing(cfg.tower.lat, cfg.tower.lon, zone.lat, zone.lon)
    assert distance_m == pytest.approx(2500.0, abs=0.1) and bearing_deg == pytest.approx(200.0)
    (angular,) = DetectionContext.from_config(cfg).exclusion_zones
    assert angular.name == "Brick kiln" and angular.pan_deg == pytest.approx(200.0)

    second = _cli(
        "mask",
        "add",
        "Firing range",
        "--lat",
        "37.79",
        "--lon",
        "118.99",
        "--radius-m",
        "400",
        "--config",
        str(example),
        "--yes",
    )
    assert second.exit_code == 0, second.output
    listed = _cli("mask", "list", "--config", str(example), "--json")
    assert [r["name"] for r in json.loads(listed.stdout)["exclusion_zones"]] == [
        "Brick kiln",
        "Firing range",
    ]
    coverage = CliRunner().invoke(
        cli, ["coverage", "--config", str(example), "--out", str(tmp_path / "map"), "--json"]
    )
    assert coverage.exit_code == 0, coverage.output
    doc = json.loads((tmp_path / "map" / "coverage.geojson").read_text())
    zones = [f for f in doc["features"] if f["properties"]["kind"] == "exclusion_zone"]
    assert [z["properties"]["name"] for z in zones] == ["Brick kiln", "Firing range"]
    for lon, lat in zones[0]["geometry"]["coordinates"][0]:
        assert distance_bearing(zone.lat, zone.lon, lat, lon)[0] == pytest.approx(150.0, rel=0.01)

    duplicate = _cli(
        "mask",
        "add",
        "Brick kiln",
        "--lat",
        "37.8",
        "--lon",
        "119",
        "--radius-m",
        "10",
        "--config",
        str(example),
        "--yes",
    )
    assert duplicate.exit_code == 2 and "already there" in duplicate.stderr
    too_big = _cli(
        "mask",
        "add",
        "huge",
        "--lat",
        "37.8",
        "--lon",
        "119",
        "--radius-m",
        "50000",
        "--config",
        str(example),
        "--yes",
    )
    assert too_big.exit_code == 2 and "--radius-m" in too_big.stderr

    removed = _cli("mask", "remove", "Brick kiln", "--config", str(example), "--yes")
    assert removed.exit_code == 0, removed.output
    assert [z.name for z in load_config(example).exclusion_zones] == ["Firing range"]
    for _ in range(3):
        assert _cli("undo", "--config", str(example), "--yes").exit_code == 0
    assert example.read_text() == original
