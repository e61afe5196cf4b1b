"""Alarm lifecycle: confirm, merge, update with a rate limit, revisit, clear, persist."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from edge.alarms import (
    AlarmBook,
    FireObservation,
    growth_m2_per_min,
    spread_bearing_deg,
)
from edge.config import AlarmSettings
from edge.geodesy import destination
from edge.geolocation import Geolocation
from edge.messages import AlarmMessage, Uncertainty

TOWER_LAT, TOWER_LON = 47.0, 19.0
MAST_M = 40.0  # the camera's height over the flat ground the fires burn on
TOWER = {"id": "tw-07", "lat": TOWER_LAT, "lon": TOWER_LON}
T0 = 1_720_000_000.0  # 2024-07-03T09:46:40Z
ID_RE = re.compile(r"^tw-07-\d{8}T\d{6}Z-[0-9a-f]{4}$")


def fire_at(
    bearing_deg: float,
    range_m: float,
    t: float,
    *,
    a_eq_m2: float = 4.0,
    bearing_only: bool = False,
) -> FireObservation:
    lat, lon = destination(TOWER_LAT, TOWER_LON, bearing_deg, range_m)
    return FireObservation(
        t=t,
        bearing_deg=bearing_deg,
        bearing_sigma_deg=0.06,
        elevation_deg=-math.degrees(math.atan(MAST_M / range_m)),
        lat=None if bearing_only else lat,
        lon=None if bearing_only else lon,
        range_m=None if bearing_only else range_m,
        range_min_m=range_m * 0.6 if bearing_only else range_m - 40.0,
        range_max_m=range_m * 1.6 if bearing_only else range_m + 40.0,
        range_source="earth",
        bearing_only=bearing_only,
        uncertainty=None if bearing_only else ellipse(40.0, 9.0, bearing_deg % 180.0),
        a_eq_m2=a_eq_m2,
        peak_k=35.0,
        evidence={"thermal": {"persistence": 0.97}, "lidar": {"range_m": range_m}},
        confidence=0.9,
    )


def ellipse(semi_major_m: float, semi_minor_m: float, orientation_deg: float) -> Uncertainty:
    return Uncertainty(
        semi_major_m=semi_major_m, semi_minor_m=semi_minor_m, orientation_deg=orientation_deg
    )


def book_at(path: Path, **overrides: float) -> AlarmBook:
    settings = {
        "clear_after_s": 600.0,
        "update_min_interval_s": 30.0,
        "merge_radius_m": 500.0,
        "merge_bearing_deg": 1.0,
        "revisit_interval_s": 120.0,
    }
    settings.update(overrides)
    return AlarmBook(path, "tw-07", AlarmSettings(**settings))  # type: ignore[arg-type]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state" / "alarms.json"


def test_a_confirmed_fire_opens_one_alarm_with_a_stable_id(state: Path) -> None:
    book = book_at(state)
    event = book.observe_confirmed(fire_at(45.0, 10_000.0, T0 - 12.0), T0)

    assert event is not None
    assert event.state == "confirmed" and event.seq == 1
    assert ID_RE.match(event.alarm_id)
    assert event.alarm_id.startswith("tw-07-20240703T094640Z-")
    assert (event.first_seen, event.confirmed_at, event.t) == (T0 - 12.0, T0, T0)
    [alarm] = book.open_alarms()
    assert alarm.alarm_id == event.alarm_id and alarm.state == "confirmed"


def test_the_payload_is_a_valid_alarm_message(state: Path) -> None:
    event = book_at(state).observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert event is not None

    payload = event.to_message(TOWER).to_dict()
    message = AlarmMessage.model_validate(payload)

    assert payload["schema"] == "towerwatch.alarm/1"
    assert message.alarm_id == event.alarm_id and message.seq == 1
    assert message.state == "confirmed"
    assert message.position is not None and message.uncertainty is not None
    assert message.uncertainty.semi_major_m == 40.0
    assert message.range_m == 10_000.0 and message.range_source == "earth"
    assert message.first_seen == "2024-07-03T09:46:40.000Z"
    assert message.evidence.thermal == {"peak_k": 35.0, "persistence": 0.97}
    assert message.evidence.lidar == {"range_m": 10_000.0}
    assert message.size is not None and message.size.a_eq_m2 == 4.0
    assert message.confidence == 0.9


def test_seen_again_unchanged_sends_nothing(state: Path) -> None:
    book = book_at(state)
    first = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert first is not None

    for k in range(1, 6):
        t = T0 + 60.0 * k
        assert book.observe_seen(first.alarm_id, fire_at(45.0, 10_010.0, t), t) is None
    assert book.due_updates(T0 + 1000.0) == []


def test_a_change_inside_the_rate_limit_waits_for_it(state: Path) -> None:
    book = book_at(state, update_min_interval_s=30.0)
    first = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert first is not None

    held = book.observe_confirmed(fire_at(45.0, 10_000.0, T0 + 10.0, a_eq_m2=9.0), T0 + 10.0)
    assert held is None
    newer = fire_at(45.0, 10_000.0, T0 + 20.0, a_eq_m2=12.0)
    assert book.observe_seen(first.alarm_id, newer, T0 + 20.0) is None
    assert book.open_alarms()[0].update_pending
    assert book.due_updates(T0 + 29.9) == []

    [update] = book.due_updates(T0 + 30.0)
    assert (update.alarm_id, update.seq, update.state) == (first.alarm_id, 2, "updated")
    assert update.observation.a_eq_m2 == 12.0  # the newest observation, not the held one
    assert update.t == T0 + 30.0
    assert book.due_updates(T0 + 100.0) == []


def test_a_change_after_the_rate_limit_goes_out_at_once(state: Path) -> None:
    book = book_at(state, update_min_interval_s=30.0)
    first = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert first is not None

    moved = fire_at(45.0, 10_200.0, T0 + 40.0)  # 200 m further out
    update = book.observe_seen(first.alarm_id, moved, T0 + 40.0)

    assert update is not None and update.seq == 2 and update.state == "updated"
    assert update.observation.range_m == 10_200.0


def test_a_held_change_that_reverted_sends_nothing(state: Path) -> None:
    book = book_at(state)
    first = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert first is not None
    assert book.observe_seen(first.alarm_id, fire_at(45.0, 10_300.0, T0 + 5.0), T0 + 5.0) is None
    assert book.observe_seen(first.alarm_id, fire_at(45.0, 10_000.0, T0 + 6.0), T0 + 6.0) is None

    assert book.due_updates(T0 + 60.0) == []
    assert not book.open_alarms()[0].update_pending


def test_a_second_fire_far_away_is_a_second_alarm(state: Path) -> None:
    book = book_at(state, merge_radius_m=500.0)
    one = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    near = book.observe_confirmed(fire_at(45.5, 10_000.0, T0 + 1.0), T0 + 1.0)  # 87 m away
    two = book.observe_confirmed(fire_at(49.0, 10_000.0, T0 + 2.0), T0 + 2.0)  # 611 m away

    assert one is not None and two is not None
    assert near is None or near.alarm_id == one.alarm_id
    assert two.state == "confirmed" and two.seq == 1
    assert two.alarm_id != one.alarm_id
    assert [a.alarm_id for a in book.open_alarms()] == [one.alarm_id, two.alarm_id]


def test_a_fire_between_two_alarms_updates_the_nearest(state: Path) -> None:
    book = book_at(state, merge_radius_m=500.0, update_min_interval_s=1.0)
    one = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    two = book.observe_confirmed(fire_at(49.0, 10_000.0, T0), T0)  # 698 m apart
    assert one is not None and two is not None

    # 524 m from the first, 175 m from the second; 300 m further out, so it is news.
    update = book.observe_confirmed(fire_at(48.0, 10_300.0, T0 + 10.0), T0 + 10.0)

    assert update is not None and update.alarm_id == two.alarm_id


def test_bearing_only_fires_merge_by_bearing(state: Path) -> None:
    book = book_at(state, merge_bearing_deg=1.0, merge_radius_m=500.0)
    first = book.observe_confirmed(fire_at(90.0, 12_000.0, T0, bearing_only=True), T0)
    assert first is not None and first.observation.bearing_only

    # Ranges 4 km apart, but a bearing-only fix has no point to measure from.
    same = book.observe_confirmed(fire_at(90.6, 16_000.0, T0 + 5.0), T0 + 5.0)
    other = book.observe_confirmed(fire_at(92.0, 12_000.0, T0 + 6.0, bearing_only=True), T0 + 6.0)

    assert same is None or same.alarm_id == first.alarm_id
    assert other is not None and other.state == "confirmed" and other.alarm_id != first.alarm_id
    assert len(book.open_alarms()) == 2


def test_two_bearing_only_fires_on_one_bearing_at_different_ranges_are_two_alarms(
    state: Path,
) -> None:
    book = book_at(state, merge_bearing_deg=1.0, merge_elevation_deg=0.1)
    far = book.observe_confirmed(fire_at(90.0, 10_000.0, T0, bearing_only=True), T0)
    # 5 km in front of it on the same bearing: 0.23° lower from a 40 m mast
    near = book.observe_confirmed(fire_at(90.0, 5_000.0, T0 + 5.0, bearing_only=True), T0 + 5.0)
    # 1 km beyond the first: 0.02° higher, on its line of sight as far as one tower can tell
    behind = book.observe_confirmed(fire_at(90.0, 11_000.0, T0 + 6.0, bearing_only=True), T0 + 6.0)

    assert far is not None and near is not None and near.state == "confirmed"
    assert near.alarm_id != far.alarm_id
    assert behind is None or behind.alarm_id == far.alarm_id
    assert len(book.open_alarms()) == 2


def test_a_bearing_only_alarm_gaining_a_range_is_updated(state: Path) -> None:
    book = book_at(state)
    first = book.observe_confirmed(fire_at(90.0, 12_000.0, T0, bearing_only=True), T0)
    assert first is not None

    located = book.observe_confirmed(fire_at(90.1, 12_000.0, T0 + 60.0), T0 + 60.0)

    assert located is not None and located.alarm_id == first.alarm_id
    payload = located.to_message(TOWER)
    assert not payload.bearing_only and payload.position is not None
    first_payload = first.to_message(TOWER)
    assert first_payload.bearing_only and first_payload.position is None


def test_not_seen_for_clear_after_s_clears_once(state: Path) -> None:
    book = book_at(state, clear_after_s=600.0)
    first = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert first is not None

    book.observe_absent(first.alarm_id, T0 + 120.0)
    assert book.due_clears(T0 + 599.0) == []
    [cleared] = book.due_clears(T0 + 600.0)

    assert (cleared.alarm_id, cleared.seq, cleared.state) == (first.alarm_id, 2, "cleared")
    assert cleared.to_message(TOWER).state == "cleared"
    assert book.open_alarms() == []
    assert book.due_clears(T0 + 5000.0) == []


def test_seeing_the_fire_again_restarts_the_clear_timer(state: Path) -> None:
    book = book_at(state, clear_after_s=600.0)
    first = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert first is not None

    book.observe_absent(first.alarm_id, T0 + 120.0)
    book.observe_seen(first.alarm_id, fire_at(45.0, 10_000.0, T0 + 240.0), T0 + 240.0)
    assert book.due_clears(T0 + 700.0) == []
    book.observe_absent(first.alarm_id, T0 + 360.0)
    assert book.due_clears(T0 + 839.0) == []
    assert len(book.due_clears(T0 + 840.0)) == 1


def test_a_tower_that_never_looked_again_does_not_clear(state: Path) -> None:
    book = book_at(state, clear_after_s=600.0)
    assert book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0) is not None

    assert book.due_clears(T0 + 10_000.0) == []
    assert len(book.open_alarms()) == 1


def test_open_alarms_are_due_for_a_revisit_each_interval(state: Path) -> None:
    book = book_at(state, revisit_interval_s=120.0)
    one = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    two = book.observe_confirmed(fire_at(200.0, 8_000.0, T0 + 30.0), T0 + 30.0)
    assert one is not None and two is not None

    assert book.due_revisits(T0 + 119.0) == []
    assert [a.alarm_id for a in book.due_revisits(T0 + 200.0)] == [one.alarm_id, two.alarm_id]
    book.observe_absent(one.alarm_id, T0 + 200.0)
    [due] = book.due_revisits(T0 + 200.0)
    assert due.alarm_id == two.alarm_id and due.next_revisit_at == T0 + 150.0
    assert due.observation.bearing_deg == 200.0  # where the patrol should look


def test_revisits_of_a_cleared_alarm_are_handled(state: Path) -> None:
    book = book_at(state, clear_after_s=600.0)
    first = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert first is not None
    book.observe_absent(first.alarm_id, T0 + 100.0)
    book.due_clears(T0 + 700.0)

    book.observe_absent(first.alarm_id, T0 + 710.0)
    again = book.observe_seen(first.alarm_id, fire_at(45.0, 10_000.0, T0 + 720.0), T0 + 720.0)

    assert again is not None and again.state == "confirmed" and again.seq == 1
    assert again.alarm_id != first.alarm_id


def test_growth_and_spread_come_from_the_track(state: Path) -> None:
    book = book_at(state, update_min_interval_s=30.0, update_growth_m2_per_min=1.0)
    first = book.observe_confirmed(fire_at(45.0, 10_000.0, T0, a_eq_m2=4.0), T0)
    assert first is not None
    events = []
    # The fire grows by 3 m² per minute and its centroid creeps 15 m per minute east.
    base_lat, base_lon = first.observation.lat, first.observation.lon
    assert base_lat is not None and base_lon is not None
    for k in range(1, 6):
        t = T0 + 60.0 * k
        lat, lon = destination(base_lat, base_lon, 90.0, 15.0 * k)
        seen = FireObservation(
            **{
                **fire_at(45.0, 10_000.0, t, a_eq_m2=4.0 + 3.0 * k).__dict__,
                "lat": lat,
                "lon": lon,
            }
        )
        event = book.observe_seen(first.alarm_id, seen, t)
        if event is not None:
            events.append(event)

    assert events, "a fire growing 3 m²/min must be updated"
    last = events[-1]
    assert last.growth_m2_per_min == pytest.approx(3.0, rel=1e-6)
    assert last.spread_bearing_deg == pytest.approx(90.0, abs=1.0)
    assert last.to_message(TOWER).size.growth_m2_per_min == (  # type: ignore[union-attr]
        pytest.approx(3.0)
    )
    assert all(b.t - a.t >= 30.0 for a, b in zip([first, *events], events, strict=False))


def test_growth_is_a_least_squares_slope_per_minute() -> None:
    track = [fire_at(10.0, 5_000.0, T0 + 10.0 * k, a_eq_m2=2.0 + 0.5 * k) for k in range(5)]
    assert growth_m2_per_min(track) == pytest.approx(3.0)
    assert growth_m2_per_min(track[:1]) == 0.0
    assert growth_m2_per_min([track[0], fire_at(10.0, 5_000.0, T0 + 0.5, a_eq_m2=9.0)]) == 0.0


def test_a_still_fire_has_no_spread_direction() -> None:
    track = [fire_at(10.0, 5_000.0 + (-1.0) ** k * 5.0, T0 + 60.0 * k) for k in range(6)]
    assert spread_bearing_deg(track, min_displacement_m=30.0, min_span_s=60.0) is None
    moving = [fire_at(10.0, 5_000.0 + 20.0 * k, T0 + 60.0 * k) for k in range(6)]
    assert spread_bearing_deg(moving, 30.0, 60.0) == pytest.approx(10.0, abs=0.5)
    # The same 100 m within seconds is a jump of the fix, not spread.
    jumpy = [fire_at(10.0, 5_000.0 + 20.0 * k, T0 + 1.0 * k) for k in range(6)]
    assert spread_bearing_deg(jumpy, 30.0, 60.0) is None


def test_state_survives_a_restart(state: Path) -> None:
    book = book_at(state)
    first = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert first is not None
    assert book.observe_seen(first.alarm_id, fire_at(45.0, 10_400.0, T0 + 5.0), T0 + 5.0) is None

    restarted = book_at(state)

    [alarm] = restarted.open_alarms()
    assert alarm.alarm_id == first.alarm_id and alarm.seq == 1 and alarm.update_pending
    [held] = restarted.due_updates(T0 + 30.0)
    assert (held.alarm_id, held.seq) == (first.alarm_id, 2)
    again = book_at(state)
    book_time = T0 + 100.0
    later = again.observe_seen(first.alarm_id, fire_at(45.0, 11_000.0, book_time), book_time)
    assert later is not None and (later.alarm_id, later.seq) == (first.alarm_id, 3)
    assert not list(state.parent.glob("*.tmp"))


def test_after_a_restart_the_last_events_can_be_queued_again(state: Path) -> None:
    book = book_at(state)
    one = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    two = book.observe_confirmed(fire_at(200.0, 8_000.0, T0 + 1.0), T0 + 1.0)
    assert one is not None and two is not None
    book.observe_absent(one.alarm_id, T0 + 100.0)
    [cleared] = book.due_clears(T0 + 700.0)

    resend = book_at(state).events_for_resend()

    assert [(e.alarm_id, e.seq, e.state) for e in resend] == [
        (two.alarm_id, 1, "confirmed"),
        (one.alarm_id, 2, "cleared"),
    ]
    assert resend[1] == cleared


def test_a_corrupt_state_file_is_kept_aside_and_the_book_starts_empty(state: Path) -> None:
    state.parent.mkdir(parents=True)
    state.write_text('{"format": "towerwatch.alarms/2", "open": [{"alarm_id": ')

    book = book_at(state)

    assert book.open_alarms() == []
    corrupt = state.with_name("alarms.json.corrupt")
    assert corrupt.read_text().startswith('{"format"')
    assert not state.exists()
    event = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert event is not None and event.seq == 1
    assert json.loads(state.read_text())["open"][0]["alarm_id"] == event.alarm_id
    assert book.load_problem is not None and "alarms.json.corrupt" in book.load_problem


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        '{"format": "something/else", "open": [], "closed": []}',
        '{"format": "towerwatch.alarms/2", "tower_id": "tw-07", "open": [{"seq": 1}], "closed": []}',
        '{"format": "towerwatch.alarms/2", "tower_id": "tw-07", "open": {}, "closed": []}',
        '{"format": "towerwatch.alarms/1", "tower_id": "tw-07", "open": [], "closed": []}',
        '{"format": "towerwatch.alarms/2", "tower_id": "tw-07", "open": [], "closed": ["\xff"]}',
    ],
)
def test_state_files_of_the_wrong_shape_count_as_corrupt(state: Path, content: str) -> None:
    state.parent.mkdir(parents=True)
    state.write_text(content)

    assert book_at(state).open_alarms() == []
    assert state.with_name("alarms.json.corrupt").read_text() == content


def test_a_state_file_with_a_bad_byte_is_kept_aside(state: Path) -> None:
    book = book_at(state)
    assert book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0) is not None
    data = bytearray(state.read_bytes())
    data[len(data) // 2] = 0xFF
    state.write_bytes(bytes(data))

    again = book_at(state)

    assert again.open_alarms() == [] and again.load_problem is not None
    assert state.with_name("alarms.json.corrupt").read_bytes() == bytes(data)


def test_the_book_round_trips_every_field(state: Path) -> None:
    book = book_at(state)
    first = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert first is not None
    book.observe_seen(first.alarm_id, fire_at(45.0, 10_000.0, T0 + 60.0, a_eq_m2=9.0), T0 + 60)
    again = book_at(state)
    assert again.load_problem is None
    assert again.open_alarms() == book.open_alarms()
    assert again.events_for_resend() == book.events_for_resend()


def test_a_missing_state_file_starts_empty(state: Path) -> None:
    book = book_at(state)
    assert book.open_alarms() == [] and book.events_for_resend() == []
    assert not state.exists()


def test_a_test_alarm_never_opens_a_real_one(state: Path) -> None:
    book = book_at(state)
    real = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert real is not None

    test = book.test_alarm(T0 + 5.0)

    assert test.state == "test" and test.seq == 1
    assert test.alarm_id.startswith("tw-07-test-") and test.alarm_id != real.alarm_id
    assert [a.alarm_id for a in book.open_alarms()] == [real.alarm_id]
    assert test.alarm_id not in state.read_text()
    message = test.to_message(TOWER)
    assert message.state == "test" and message.bearing_only and message.range_source == "none"


def test_observations_from_a_geolocation() -> None:
    located = Geolocation(
        lat=47.05, lon=19.1, height_m=100.0, bearing_deg=52.0, elevation_deg=-0.4,
        range_m=9_000.0, range_source="terrain", range_sigma_m=50.0, range_min_m=8_900.0,
        range_max_m=9_100.0, uncertainty=ellipse(80.0, 12.0, 52.0),
        bearing_only=False,
    )  # fmt: skip
    fire = FireObservation.from_geolocation(
        located, t=T0, bearing_sigma_deg=0.06, a_eq_m2=3.0, peak_k=20.0
    )
    assert fire.located and fire.uncertainty == ellipse(80.0, 12.0, 52.0)

    vague = Geolocation(
        lat=47.05, lon=19.1, height_m=100.0, bearing_deg=52.0, elevation_deg=-0.1,
        range_m=9_000.0, range_source="earth", range_sigma_m=3_000.0, range_min_m=4_000.0,
        range_max_m=20_000.0, uncertainty=ellipse(5_000.0, 12.0, 52.0),
        bearing_only=True,
    )  # fmt: skip
    fire = FireObservation.from_geolocation(
        vague, t=T0, bearing_sigma_deg=0.06, a_eq_m2=3.0, peak_k=20.0
    )
    # flat ground: the bearing wedge (bearing, its σ, the range interval) and no point:
    # the nominal one is a guess along the line of sight that no range source supports
    assert fire.bearing_only and not fire.located
    assert (fire.lat, fire.lon, fire.range_m, fire.uncertainty) == (None, None, None, None)
    assert (fire.range_min_m, fire.range_max_m) == (4_000.0, 20_000.0)
    assert fire.bearing_sigma_deg == 0.06

    beyond = Geolocation(
        lat=None, lon=None, height_m=None, bearing_deg=52.0, elevation_deg=0.05,
        range_m=None, range_source="earth", range_sigma_m=9_000.0, range_min_m=12_000.0,
        range_max_m=30_000.0, uncertainty=None,
        bearing_only=True,
    )  # fmt: skip
    fire = FireObservation.from_geolocation(
        beyond, t=T0, bearing_sigma_deg=0.06, a_eq_m2=3.0, peak_k=20.0
    )
    assert fire.bearing_only and fire.lat is None and fire.uncertainty is None


def test_inconsistent_observations_are_refused() -> None:
    with pytest.raises(ValueError, match="unless bearing_only"):
        FireObservation(**{**fire_at(45.0, 10_000.0, T0).__dict__, "lat": None, "lon": None})
    with pytest.raises(ValueError, match="unknown sensors"):
        FireObservation(**{**fire_at(45.0, 10_000.0, T0).__dict__, "evidence": {"radar": {}}})
    with pytest.raises(ValueError, match="confidence"):
        FireObservation(**{**fire_at(45.0, 10_000.0, T0).__dict__, "confidence": 1.5})


def test_a_write_cut_short_by_a_crash_leaves_the_previous_state(state: Path) -> None:
    book = book_at(state)
    first = book.observe_confirmed(fire_at(45.0, 10_000.0, T0), T0)
    assert first is not None
    # kill -9 during a save leaves a half-written temp file beside the intact state.
    state.with_name("alarms.json.tmp").write_text('{"format": "towerwatch.al')

    restarted = book_at(state)

    assert [a.alarm_id for a in restarted.open_alarms()] == [first.alarm_id]
    assert restarted.test_alarm(T0 + 1.0).state == "test"
    restarted.observe_absent(first.alarm_id, T0 + 60.0)
    assert not state.with_name("alarms.json.tmp").exists()
    assert book_at(state).open_alarms()[0].last_looked_at == T0 + 60.0
