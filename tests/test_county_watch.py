"""`towerwatch simulate watch`: the lines a person reads, and when the fire's story is complete."""

from __future__ import annotations

import io
import json

from edge.commands.sim_watch import Watcher, alarm_line, fire_line

ALARM = {
    "schema": "towerwatch.alarm/1",
    "alarm_id": "tw-01-20250410T020055Z-8a00",
    "seq": 1,
    "state": "confirmed",
    "tower": {"id": "tw-01", "lat": 41.1, "lon": 121.95},
    "bearing_deg": 48.58812345,
    "range_m": 9735.4873,
    "range_min_m": 6812.0,
    "range_max_m": 30000.0,
    "range_source": "earth",
    "size": {"a_eq_m2": 2.61620918, "growth_m2_per_min": 0.6},
}
FIRE = {
    "schema": "towerwatch.fire/1",
    "fire_id": "f-3",
    "state": "active",
    "towers": ["tw-01", "tw-02"],
    "position": {"lat": 41.15952, "lon": 122.03936},
    "uncertainty": {"semi_major_m": 18.4, "semi_minor_m": 9.0, "orientation_deg": 10.0},
    "range_source": "triangulated",
    "size": {"a_eq_m2": 2.0, "growth_m2_per_min": 0.5},
    "alarms": [{"alarm_id": "tw-01-20250410T020055Z-8a00"}, {"alarm_id": "tw-02-x"}],
}


def test_an_alarm_reads_as_one_rounded_line() -> None:
    line = alarm_line(ALARM, 117_300)
    assert line == (
        "ALARM tw-01 · confirmed · bearing 48.59° · 9.7 km (6.8–30.0 km, earth) · "
        "2.6 m² growing · snapshot 117 kB · tw-01-20250410T020055Z-8a00"
    )
    assert "out" in alarm_line({**ALARM, "state": "cleared"}) and "growing" not in alarm_line(
        {**ALARM, "state": "cleared"}
    )


def test_a_hub_fire_reads_as_one_line() -> None:
    assert fire_line(FIRE, 120_000) == (
        "FIRE f-3 · confirmed by tw-01, tw-02 · 41.1595 N 122.0394 E ± 18 m · triangulated · "
        "2.0 m² growing · snapshot 120 kB"
    )
    wedge = {**FIRE, "position": None, "uncertainty": None, "range_source": "earth"}
    assert "bearing only" in fire_line(wedge)


def _feed(watcher: Watcher, topic: str, payload: dict | bytes) -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    watcher.handle(topic, data)


def test_the_story_completes_only_when_every_tower_cleared_and_the_hub_fire_cleared() -> None:
    out, raw = io.StringIO(), io.StringIO()
    watcher = Watcher("towerwatch", raw, out)
    _feed(
        watcher, "towerwatch/tw-01/alarm/tw-01-20250410T020055Z-8a00/snapshot", b"\xff\xd8" * 60_000
    )
    _feed(watcher, "towerwatch/tw-01/alarm", ALARM)
    _feed(watcher, "towerwatch/tw-01/alarm", ALARM)  # a repeat prints nothing new
    _feed(watcher, "towerwatch/hub/fire/f-3", FIRE)
    assert not watcher.story.towers_done(["tw-01"])
    _feed(watcher, "towerwatch/tw-01/alarm", {**ALARM, "seq": 3, "state": "cleared"})
    assert watcher.story.towers_done(["tw-01"]) and not watcher.story.towers_done(
        ["tw-01", "tw-02"]
    )
    assert not watcher.story.hub_done()
    _feed(watcher, "towerwatch/hub/fire/f-3", {**FIRE, "state": "cleared"})
    assert watcher.story.hub_done()
    lines = out.getvalue().splitlines()
    assert sum(line.split(" ", 1)[1].startswith("ALARM tw-01 · confirmed") for line in lines) == 1
    assert any("FIRE f-3 · confirmed by tw-01, tw-02" in line and "snapshot 120 kB" in line
               for line in lines)  # fmt: skip
    assert "<JPEG, 120000 bytes>" in raw.getvalue() and raw.getvalue().count("\n") == 6


def test_a_bearing_only_hub_fire_does_not_complete_the_county_story() -> None:
    watcher = Watcher("towerwatch", None, io.StringIO())
    wedge = {**FIRE, "range_source": "earth", "state": "cleared"}
    _feed(watcher, "towerwatch/hub/fire/f-4", wedge)
    assert not watcher.story.hub_done()
