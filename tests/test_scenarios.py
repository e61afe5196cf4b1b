"""Scenario tests: a simulated tower and the daemon as separate processes, a real broker.

What the hub receives is the specification: one confirmed alarm per fire within a patrol
cycle plus the confirmation, the truth inside the stated uncertainty, updates as the fire
grows, a clear when it is out, a snapshot; no alarm from traffic, sunlit ground or a
known flare; nothing lost across a broker outage or a kill -9 of the daemon.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from paho.mqtt import publish

from edge.geodesy import destination, distance_bearing
from edge.messages import parse_iso_z
from simulators.scenario import load_scenario
from tests.conftest import MosquittoBroker, MqttCollector
from tests.towers import ROOT, SimTowerRun

TOWER = "sim-tower-01"
ALARM_TOPIC = f"towerwatch/{TOWER}/alarm"
STATUS_TOPIC = f"towerwatch/{TOWER}/status"
LIFECYCLE = ROOT / "tests" / "scenarios" / "fire-lifecycle.yaml"
ONE_BEARING = ROOT / "tests" / "scenarios" / "two-fires-one-bearing.yaml"
BROKER_OUTAGE_S = 20.0  # wall seconds: a minute of tower time at 3x

# A short sector around the fire and fast alarm timings keep a whole fire's life within
# a few minutes of tower time.
LIFECYCLE_SETTINGS = (
    "patrol.azimuth_start_deg=125",
    "patrol.azimuth_span_deg=20",
    "confirmation.dwell_s=5",
    "alarm.revisit_interval_s=15",
    "alarm.update_min_interval_s=5",
    "alarm.clear_after_s=20",
)


def _alarms(hub: MqttCollector) -> list[dict]:
    return [m.json() for m in hub.messages(ALARM_TOPIC)]


def _ignition_unix(scenario_path: Path) -> float:
    scenario = load_scenario(scenario_path)
    return scenario.start_unix + scenario.fires[0].start_s


def _unique_in_order(alarms: list[dict]) -> list[dict]:
    """The hub's de-duplication on (alarm_id, seq)."""
    seen: set[tuple[str, int]] = set()
    out = []
    for alarm in alarms:
        key = (alarm["alarm_id"], alarm["seq"])
        if key not in seen:
            seen.add(key)
            out.append(alarm)
    return out


def _truth_is_inside(alarm: dict, bearing_deg: float, range_m: float) -> None:
    assert 0.0 < alarm["bearing_sigma_deg"] < 0.5, alarm
    if alarm["bearing_only"]:
        assert abs((alarm["bearing_deg"] - bearing_deg + 180) % 360 - 180) < 0.2
        assert alarm["range_min_m"] <= range_m <= alarm["range_max_m"], alarm
        return
    _truth_is_inside_the_ellipse(alarm, bearing_deg, range_m)


def _truth_is_inside_the_ellipse(alarm: dict, bearing_deg: float, range_m: float) -> None:
    tower = alarm["tower"]
    true_lat, true_lon = destination(tower["lat"], tower["lon"], bearing_deg, range_m)
    distance, direction = distance_bearing(
        alarm["position"]["lat"], alarm["position"]["lon"], true_lat, true_lon
    )
    ellipse = alarm["uncertainty"]
    theta = math.radians(direction - ellipse["orientation_deg"])
    along, across = distance * math.cos(theta), distance * math.sin(theta)
    assert (along / ellipse["semi_major_m"]) ** 2 + (across / ellipse["semi_minor_m"]) ** 2 <= 1.0


def _visible_panel_has_a_picture(jpeg: bytes) -> bool:
    import cv2
    import numpy as np

    from edge.snapshot import NO_VISIBLE_GREY

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    height, width = image.shape[:2]
    right = image[height // 4 : height // 2, width - width // 4 :]  # inside the visible panel
    placeholder = np.abs(right.astype(np.int16) - NO_VISIBLE_GREY).max(axis=2) <= 8
    return float(placeholder.mean()) < 0.5


def test_a_fire_is_confirmed_located_followed_and_cleared(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    run = SimTowerRun(tmp_path, LIFECYCLE, mqtt_broker.port, extra=LIFECYCLE_SETTINGS)
    with MqttCollector(mqtt_broker.host, mqtt_broker.port) as hub:
        try:
            run.start_tower()
            run.start_daemon(duration_s=230)
            assert run.wait_daemon(timeout_s=420) == 0
        finally:
            run.stop()
        alarms = _unique_in_order(_alarms(hub))
        statuses = [m.json() for m in hub.messages(STATUS_TOPIC)]
        snapshots = hub.messages(f"towerwatch/{TOWER}/alarm/+/snapshot")

    states = [a["state"] for a in alarms]
    assert states.count("confirmed") == 1, states
    assert states[0] == "confirmed" and states[-1] == "cleared", states
    assert "updated" in states, states
    assert {a["alarm_id"] for a in alarms} == {alarms[0]["alarm_id"]}
    assert [a["seq"] for a in alarms] == list(range(1, len(alarms) + 1))
    assert all(a["schema"] == "towerwatch.alarm/1" for a in alarms)

    confirmed = alarms[0]
    cycle_s = max(s.get("patrol_cycle_s") or 0.0 for s in statuses)
    assert cycle_s > 0, "status never reported a patrol cycle"
    delay_s = parse_iso_z(confirmed["confirmed_at"]) - _ignition_unix(LIFECYCLE)
    # one patrol cycle + the confirmation (settle 1 s + dwell 5 s) + the slew to it
    assert 0 < delay_s <= cycle_s + 6.0 + 3.0, (delay_s, cycle_s)
    _truth_is_inside(confirmed, 135.0, 10_000.0)
    # the visible camera was read during the dwell and its flame cue is in the evidence
    visible = confirmed["evidence"]["visible"]
    assert visible is not None and visible["frames"] > 0 and "flame" in visible, visible

    sizes = [a["size"]["a_eq_m2"] for a in alarms if a["state"] in ("confirmed", "updated")]
    assert max(sizes) > 1.5 * sizes[0], sizes  # the front grew from 2 m to 6 m

    assert snapshots and snapshots[0].payload.startswith(b"\xff\xd8")
    assert confirmed["alarm_id"] in snapshots[0].topic
    # the visible camera, read on demand, was wanted from the confirmation's start: its
    # picture fills the right panel, not the grey "no visible camera" placeholder
    assert _visible_panel_has_a_picture(snapshots[0].payload)
    assert statuses[-1]["state"] == "offline"  # clean shutdown


def test_the_simulated_tower_alarms_within_a_minute(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    """`towerwatch run --config config/simulated.yaml --duration 60` against the tower."""
    mission = ROOT / "benchmarks" / "scenarios" / "mission-2m-10km.yaml"
    # near real time, so the camera delivers its full frame rate in tower time
    run = SimTowerRun(tmp_path, mission, mqtt_broker.port, speed=1.5)
    with MqttCollector(mqtt_broker.host, mqtt_broker.port) as hub:
        try:
            run.start_tower()
            run.start_daemon(duration_s=60)
            hub.wait_for(lambda m: m.topic == STATUS_TOPIC and m.json().get("version"), 60)
            command = f"towerwatch/{TOWER}/cmd"
            publish.single(f"{command}/test-alarm", '{"request_id": "t-1"}', qos=1,
                           hostname=mqtt_broker.host, port=mqtt_broker.port)  # fmt: skip
            publish.single(f"{command}/goto", '{"pan_deg": 400}', qos=1,
                           hostname=mqtt_broker.host, port=mqtt_broker.port)  # fmt: skip
            test_reply = hub.wait_one(f"{command}/test-alarm/reply", 30).json()
            goto_reply = hub.wait_one(f"{command}/goto/reply", 30).json()
            hub.wait_for(lambda m: m.topic == ALARM_TOPIC and m.json()["state"] == "confirmed", 60)
            for verb, body in (("relay-reset", "{}"), ("recheck", '{"bearing_deg": 135.0}')):
                publish.single(f"{command}/{verb}", body, qos=1,
                               hostname=mqtt_broker.host, port=mqtt_broker.port)  # fmt: skip
            replies = [hub.wait_one(f"{command}/{v}/reply", 30).json()
                       for v in ("relay-reset", "recheck")]  # fmt: skip
            assert run.wait_daemon(timeout_s=180) == 0
        finally:
            run.stop()
        alarms = [a for a in _alarms(hub) if a["state"] != "test"]
        tests = [a for a in _alarms(hub) if a["state"] == "test"]
        retained = [m for m in hub.messages(STATUS_TOPIC) if m.retain]
    assert test_reply["ok"] is True and test_reply["request_id"] == "t-1"
    assert len(tests) == 1 and tests[0]["alarm_id"] != (alarms[0]["alarm_id"] if alarms else "")
    assert goto_reply["ok"] is False and "pan_deg" in goto_reply["error"]
    assert all(reply["ok"] for reply in replies), replies
    events = [e.get("event") for e in run.daemon_events()]
    # the confirmed fire closed the relay, the hub's relay-reset opened it
    assert events.index("relay closed") < events.index("relay opened")
    executed = [e.get("command") for e in run.daemon_events() if e.get("event") == "command"]
    assert {"TestAlarmCommand", "RelayResetCommand", "RecheckCommand"} <= set(executed)
    assert alarms, "no alarm within a minute of tower time"
    alarm = alarms[0]
    assert alarm["schema"] == "towerwatch.alarm/1" and alarm["alarm_id"]
    assert set(alarm["tower"]) == {"id", "lat", "lon"}
    # one tower over flat land, 10 km out, in a crosswind: the camera alone gives a wedge
    # 7-30 km long; the lidar's fan met the plume the wind leaned off the bearing, and
    # its range, with the plume's drift in its error, locates the fire
    assert alarm["range_source"] == "lidar" and not alarm["bearing_only"], alarm
    lidar = alarm["evidence"]["lidar"]
    assert lidar["range_used"] is True and lidar["plume_azimuth_offset_deg"] is not None
    _truth_is_inside(alarm, 135.0, 10_000.0)
    assert retained or hub.messages(STATUS_TOPIC), "the status is published retained"


def test_smoke_rising_out_of_the_reed_is_found_and_located_by_the_lidar_alone(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    """hidden-by-reed: the canopy hides the flames; only the lidar's sweep sees smoke."""
    scenario = ROOT / "benchmarks" / "scenarios" / "hidden-by-reed.yaml"
    sector = ("azimuth_start_deg=235", "azimuth_span_deg=30")
    run = SimTowerRun(tmp_path, scenario, mqtt_broker.port, extra=(
        *(f"patrol.{s}" for s in sector), *(f"lidar_sweep.{s}" for s in sector),
        "lidar_sweep.enabled=true", "confirmation.dwell_s=5",
    ))  # fmt: skip
    with MqttCollector(mqtt_broker.host, mqtt_broker.port) as hub:
        try:
            run.start_tower()
            run.start_daemon(duration_s=240)
            hub.wait_for(lambda m: m.topic == ALARM_TOPIC and m.json()["state"] == "confirmed", 240)
        finally:
            run.stop()
        alarms = [a for a in _alarms(hub) if a["state"] == "confirmed"]
        statuses = [m.json() for m in hub.messages(STATUS_TOPIC)]
    assert len(alarms) == 1, alarms
    (alarm,) = alarms
    assert alarm["range_source"] == "lidar" and not alarm["bearing_only"], alarm
    lidar = alarm["evidence"]["lidar"]
    assert lidar["found_by"] == "sweep" and lidar["range_used"] is True
    assert alarm["evidence"]["thermal"]["outcome"] != "confirmed"  # the camera saw no flame
    # the fire is upwind of where the beam met the smoke: the drift widens the ellipse
    _truth_is_inside_the_ellipse(alarm, 250.0, 4000.0)
    assert alarm["uncertainty"]["semi_major_m"] <= 500.0, alarm  # a fix, not a wedge
    counters = statuses[-1]["counters"] if statuses else {}
    assert counters.get("smoke_alarms", 1) >= 1


def test_two_fires_on_one_bearing_at_different_ranges_raise_two_alarms(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    # 5 km and 10 km out on one line of sight: 0.23° apart in elevation from a 40 m mast
    scenario = load_scenario(ONE_BEARING)
    extra = ("patrol.azimuth_start_deg=125", "patrol.azimuth_span_deg=20",
             "confirmation.dwell_s=5")  # fmt: skip
    run = SimTowerRun(tmp_path, ONE_BEARING, mqtt_broker.port, extra=extra)
    with MqttCollector(mqtt_broker.host, mqtt_broker.port) as hub:
        try:
            run.start_tower()
            run.start_daemon(duration_s=150)
            assert run.wait_daemon(timeout_s=360) == 0
        finally:
            run.stop()
        confirmed = [a for a in _unique_in_order(_alarms(hub)) if a["state"] == "confirmed"]

    assert len(confirmed) == 2, confirmed
    assert len({a["alarm_id"] for a in confirmed}) == 2
    nearer, farther = sorted(confirmed, key=lambda a: a["elevation_deg"])
    truths = {f.id: f.at for f in scenario.fires}
    for alarm, truth in ((nearer, truths["near"]), (farther, truths["far"])):
        assert truth.bearing_deg is not None and truth.range_m is not None
        _truth_is_inside(alarm, truth.bearing_deg, truth.range_m)


def _commissioning_map(scenario_path: Path) -> list[str]:
    """The scenario's known heat sources and roads as the daemon's map (lat/lon)."""
    scenario = load_scenario(scenario_path)
    tower = scenario.tower

    def latlon(place) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        if place.lat is not None:
            return place.lat, place.lon
        return destination(tower.lat, tower.lon, place.bearing_deg, place.range_m)

    settings = []
    sources = []
    for source in scenario.known_sources:
        lat, lon = latlon(source.at)
        sources.append(
            f"{{name: {source.name}, kind: {source.kind}, lat: {lat:.7f}, lon: {lon:.7f}, "
            f"height_m: {source.height_m}, radius_m: {max(source.radius_m, 20.0)}}}"
        )
    if sources:
        settings.append("known_sources=[" + ", ".join(sources) + "]")
    roads = []
    for n, road in enumerate(scenario.world.roads):
        points = ", ".join("{{lat: {:.7f}, lon: {:.7f}}}".format(*latlon(p)) for p in road.points)
        roads.append(f"{{name: road-{n}, width_m: {road.width_m}, points: [{points}]}}")
    if roads:
        settings.append("roads=[" + ", ".join(roads) + "]")
    return settings


@pytest.mark.parametrize("name", ["traffic-noon", "sun-noon", "flare-stack"])
def test_nuisances_raise_no_alarm(name: str, mqtt_broker: MosquittoBroker, tmp_path: Path) -> None:
    path = ROOT / "benchmarks" / "scenarios" / f"{name}.yaml"
    scenario = load_scenario(path)
    if scenario.view is not None:
        pan, tilt = scenario.view.pan_deg, scenario.view.tilt_deg
    else:  # looking at its first known source
        first = scenario.known_sources[0].at
        assert first.bearing_deg is not None
        pan, tilt = first.bearing_deg, -0.3
    extra = [
        f"patrol.azimuth_start_deg={(pan - 10.0) % 360.0}",
        "patrol.azimuth_span_deg=20",
        f"patrol.tilt_deg={tilt}",
    ]
    extra += _commissioning_map(path)
    run = SimTowerRun(tmp_path, path, mqtt_broker.port, extra=extra)
    with MqttCollector(mqtt_broker.host, mqtt_broker.port) as hub:
        try:
            run.start_tower()
            run.start_daemon(duration_s=90)
            assert run.wait_daemon(timeout_s=240) == 0
        finally:
            run.stop()
        alarms = _alarms(hub)
        statuses = [m.json() for m in hub.messages(STATUS_TOPIC)]
    assert alarms == []
    frames = max(s.get("counters", {}).get("frames", 0) for s in statuses)
    assert frames > 50, "the daemon must really have looked"
    cycle = max(s.get("patrol_cycle_s") or 0.0 for s in statuses)
    assert cycle > 0, "at least one whole patrol of the sector"


def test_no_alarm_message_is_lost_across_kill_9_and_a_broker_outage(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    run = SimTowerRun(tmp_path, LIFECYCLE, mqtt_broker.port, extra=LIFECYCLE_SETTINGS)
    with MqttCollector(mqtt_broker.host, mqtt_broker.port) as hub:
        try:
            run.start_tower()
            run.start_daemon()
            # kill -9 right after the confirmation is committed
            hub.wait_for(ALARM_TOPIC, timeout_s=240)
            run.kill_daemon()
            run.start_daemon()
            # the broker goes away for a while during the fire's growth
            hub.wait_for(lambda m: m.topic == ALARM_TOPIC and m.json()["state"] == "updated",
                         timeout_s=180)  # fmt: skip
            mqtt_broker.stop()
            time.sleep(BROKER_OUTAGE_S)
            mqtt_broker.start()
            hub.wait_for(lambda m: m.topic == ALARM_TOPIC and m.json()["state"] == "cleared",
                         timeout_s=300)  # fmt: skip
        finally:
            run.stop()
        alarms = _alarms(hub)
    unique = _unique_in_order(alarms)
    ids = {a["alarm_id"] for a in unique}
    assert len(ids) == 1
    seqs = [a["seq"] for a in unique]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # none lost, in order
    assert unique[0]["state"] == "confirmed" and unique[-1]["state"] == "cleared"
