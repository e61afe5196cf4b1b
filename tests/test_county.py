"""The simulated county: county scenarios, and two towers with their daemons against a real broker."""

from __future__ import annotations

import math
import socket
import subprocess
import time
from pathlib import Path

import pytest

from edge.config import load_config
from edge.geodesy import distance_bearing
from simulators.county import CountyScenario, load_county, parse_county
from simulators.scenario import ScenarioError, Tower
from tests.conftest import MosquittoBroker, MqttCollector
from tests.towers import ROOT, CountyRun, towerwatch

TWO_TOWERS = ROOT / "benchmarks" / "scenarios" / "county-2towers.yaml"
SIXTEEN_TOWERS = ROOT / "benchmarks" / "scenarios" / "county-16towers.yaml"
COUNTY_CONFIGS = sorted((ROOT / "config" / "county").glob("tw-*.yaml"))
# Panshan County, Panjin: the Liaohe estuary reed wetland the plan covers.
PANSHAN_LAT = (41.0, 41.3)
PANSHAN_LON = (121.8, 122.2)

MINIMAL = """\
name: tiny
start_utc: 2025-04-10T02:00:00Z
towers:
  - {id: tw-01, config: config/county/tw-01.yaml}
fires:
  - {id: f, at: %s}
"""


@pytest.mark.parametrize("path", COUNTY_CONFIGS, ids=lambda p: p.stem)
def test_every_county_tower_config_loads_and_lies_in_panshan(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.tower.id == path.stem
    assert PANSHAN_LAT[0] <= cfg.tower.lat <= PANSHAN_LAT[1]
    assert PANSHAN_LON[0] <= cfg.tower.lon <= PANSHAN_LON[1]
    assert 30.0 <= cfg.tower.mast_height_m <= 50.0  # telecom masts


def test_county_towers_have_distinct_ports_paths_and_state() -> None:
    configs = [load_config(p) for p in COUNTY_CONFIGS]
    assert len(configs) == 16
    places: list[object] = []
    for cfg in configs:
        places += [cfg.thermal.port, cfg.ptz.port, cfg.storage.state_dir]  # type: ignore[union-attr]
        places += [getattr(cfg, s).port for s in ("lidar", "gnss", "relay")]
    assert len(places) == len(set(places))


@pytest.mark.parametrize("path", [TWO_TOWERS, SIXTEEN_TOWERS], ids=lambda p: p.stem)
def test_shipped_county_scenarios_name_existing_tower_configs(path: Path) -> None:
    county = load_county(path)
    for tower in county.towers:
        assert load_config(ROOT / tower.config).tower.id == tower.id
    assert county.fires


def test_the_two_tower_county_matches_the_plan() -> None:
    county = load_county(TWO_TOWERS)
    a, b = (load_config(ROOT / t.config).tower for t in county.towers)
    fire = county.fires[0].at
    assert fire.lat is not None and fire.lon is not None
    baseline_m, _ = distance_bearing(a.lat, a.lon, b.lat, b.lon)
    assert 14_000 <= baseline_m <= 16_000
    for tower in (a, b):
        range_m, _ = distance_bearing(tower.lat, tower.lon, fire.lat, fire.lon)
        assert 9_500 <= range_m <= 10_500
    # the fire goes out early enough for a clear to follow within a demo run
    assert county.fires[0].stop_s is not None and county.fires[0].stop_s <= 600


def test_a_county_place_by_bearing_is_refused_with_its_line() -> None:
    with pytest.raises(ScenarioError) as err:
        parse_county(MINIMAL % "{bearing_deg: 40, range_m: 9000}", "c.yaml")
    assert "c.yaml:6: fires.0.at: a county place needs lat and lon" in str(err.value)


def test_duplicate_county_towers_are_refused() -> None:
    text = MINIMAL % "{lat: 41.15, lon: 122.0}"
    text = text.replace("fires:", "  - {id: tw-01, config: config/county/tw-01.yaml}\nfires:")
    with pytest.raises(ScenarioError, match="tower ids must be unique: tw-01"):
        parse_county(text, "c.yaml")


def test_each_tower_sees_the_same_fire_from_its_own_place() -> None:
    county: CountyScenario = parse_county(MINIMAL % "{lat: 41.15, lon: 122.0}")
    here = Tower(id="tw-01", lat=41.1, lon=121.95, ground_elevation_m=3, mast_height_m=45)
    scenario = county.tower_scenario(0, here)
    assert scenario.tower == here and scenario.seed == county.seed
    assert scenario.fires[0].at.lat == 41.15 and scenario.name == "tiny/tw-01"


def _cross_track_limit_m(alarm: dict, bearing_deg: float) -> float:
    """Half-width of the alarm's 95 % ellipse across its bearing (its stated bearing uncertainty)."""
    ellipse = alarm["uncertainty"]
    phi = math.radians(bearing_deg + 90.0 - ellipse["orientation_deg"])
    return math.hypot(
        ellipse["semi_major_m"] * math.cos(phi), ellipse["semi_minor_m"] * math.sin(phi)
    )


def _bearing_and_range_hold_the_truth(alarm: dict, fire_lat: float, fire_lon: float) -> None:
    tower = alarm["tower"]
    range_m, bearing_deg = distance_bearing(tower["lat"], tower["lon"], fire_lat, fire_lon)
    off_deg = (alarm["bearing_deg"] - bearing_deg + 180.0) % 360.0 - 180.0
    cross_m = abs(math.sin(math.radians(off_deg))) * range_m
    assert alarm["range_min_m"] <= range_m <= alarm["range_max_m"], (tower["id"], range_m, alarm)
    if alarm["bearing_only"]:
        # one tower over flat reed: its wedge (bearing ± 1.96 σ over the range interval)
        # holds the fire, and it states no point
        assert alarm["position"] is None and alarm["uncertainty"] is None, alarm
        assert abs(off_deg) <= 1.96 * alarm["bearing_sigma_deg"], (tower["id"], off_deg, alarm)
        return
    assert alarm["uncertainty"] is not None, f"{tower['id']}: no stated uncertainty: {alarm}"
    limit_m = _cross_track_limit_m(alarm, alarm["bearing_deg"])
    assert cross_m <= limit_m, (tower["id"], off_deg, cross_m, limit_m)


def _inside_ellipse(lat: float, lon: float, fire: dict, true_lat: float, true_lon: float) -> bool:
    ellipse = fire["properties"]["uncertainty"]
    distance, direction = distance_bearing(lat, lon, true_lat, true_lon)
    theta = math.radians(direction - ellipse["orientation_deg"])
    along, across = distance * math.cos(theta), distance * math.sin(theta)
    return (along / ellipse["semi_major_m"]) ** 2 + (across / ellipse["semi_minor_m"]) ** 2 <= 1.0


def _triangulated_fires(run: CountyRun, timeout_s: float) -> list[dict]:
    """`/api/fires` once the hub has triangulated a fire (or what it shows at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        fires = run.get_json("/api/fires")["features"]
        done = any(f["properties"]["range_source"] == "triangulated" for f in fires)
        if done or time.monotonic() > deadline:
            return fires
        time.sleep(0.5)


def test_two_county_towers_confirm_the_same_fire_and_the_hub_triangulates_it(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    """`simulate county`, one `towerwatch run` per tower config and `towerwatch hub`, as
    separate processes on one broker."""
    county = load_county(TWO_TOWERS)
    fire = county.fires[0].at
    assert fire.lat is not None and fire.lon is not None
    run = CountyRun(tmp_path, TWO_TOWERS, mqtt_broker.port)
    towers = [t.id for t in county.towers]
    with MqttCollector(mqtt_broker.host, mqtt_broker.port) as hub:
        try:
            run.start_county()
            run.start_hub()
            run.start_daemons()
            for tower_id in towers:
                topic = f"towerwatch/{tower_id}/alarm"
                try:
                    hub.wait_for(
                        lambda m, t=topic: m.topic == t and m.json()["state"] == "confirmed", 300
                    )
                except AssertionError as exc:
                    raise AssertionError(f"{tower_id}: no confirmed alarm\n{run.logs()}") from exc
            fires = _triangulated_fires(run, timeout_s=60)
        finally:
            run.stop()
        confirmed = {
            t: next(
                m.json()
                for m in hub.messages(f"towerwatch/{t}/alarm")
                if m.json()["state"] == "confirmed"
            )
            for t in towers
        }
    for tower_id, alarm in confirmed.items():
        assert alarm["tower"]["id"] == tower_id
        _bearing_and_range_hold_the_truth(alarm, fire.lat, fire.lon)

    assert len(fires) == 1, fires
    (fused,) = fires
    assert fused["properties"]["range_source"] == "triangulated", fused
    assert sorted(fused["properties"]["towers"]) == sorted(towers)
    lon, lat = fused["geometry"]["coordinates"]
    miss_m, _ = distance_bearing(lat, lon, fire.lat, fire.lon)
    assert miss_m <= 50.0, (miss_m, fused["properties"]["uncertainty"])
    assert _inside_ellipse(lat, lon, fused, fire.lat, fire.lon), (miss_m, fused)


def test_simulate_county_places_each_tower_where_asked(tmp_path: Path) -> None:
    """Free ports, ptys under --run-dir, per-tower --set passed on to that tower's daemon."""
    run = CountyRun(
        tmp_path, TWO_TOWERS, mqtt_port=1, county_args=("--set", "tw-02:patrol.dwell_s=3")
    )
    try:
        run.start_county()
        ports = set()
        for tower_id, where in run.endpoints.items():
            sets = dict(s.split("=", 1) for s in where["daemon_sets"])
            assert sets["lidar.port"] == str(tmp_path / "run" / tower_id / "lidar")
            assert Path(sets["lidar.port"]).is_symlink()
            assert sets["storage.state_dir"] == str(tmp_path / "run" / tower_id / "state")
            for key in ("thermal.port", "ptz.port"):
                with socket.create_connection(("127.0.0.1", int(sets[key])), timeout=5):
                    ports.add(int(sets[key]))
            assert ("patrol.dwell_s" in sets) == (tower_id == "tw-02")
        assert len(ports) == 4
    finally:
        run.stop()
    assert not run.endpoints_file.exists()  # no stale file pointing at dead ports


def test_a_set_for_an_unknown_tower_is_named(tmp_path: Path) -> None:
    done = subprocess.run(
        towerwatch("simulate", "county", "--scenario", str(TWO_TOWERS),
                   "--set", "tw-09:patrol.dwell_s=3"),
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--set tw-09:patrol.dwell_s=3: no tower 'tw-09'" in done.stderr
    assert "Traceback" not in done.stderr
