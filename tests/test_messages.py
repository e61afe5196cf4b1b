"""Message schemas and the topic table: what the hub may rely on, and what is refused."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edge import messages
from edge.messages import (
    COMMAND_MODELS,
    AlarmMessage,
    CommandError,
    GotoCommand,
    RecheckCommand,
    StatusMessage,
    Uncertainty,
    build_alarm,
    command_reply,
    iso_z,
    offline_status,
    parse_command,
    parse_iso_z,
)
from edge.topics import TOPIC_TABLE, CommandVerb, Direction, TowerTopics

T0_S = 1_719_835_200.0  # 2024-07-01T12:00:00Z


def located(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(
        alarm_id="t1-0001",
        seq=1,
        state="confirmed",
        first_seen_s=T0_S,
        confirmed_at_s=T0_S + 42.5,
        sent_at_s=T0_S + 43.0,
        tower_id="t1",
        tower_lat=52.1,
        tower_lon=13.2,
        bearing_deg=41.5,
        bearing_sigma_deg=0.06,
        elevation_deg=-0.8,
        range_source="terrain",
        position=(52.17, 13.31),
        uncertainty=Uncertainty(semi_major_m=420.0, semi_minor_m=35.0, orientation_deg=41.5),
        range_m=9800.0,
        range_min_m=9300.0,
        range_max_m=10400.0,
        thermal={"peak_k": 412.3, "zoom_ratio": 3.9},
        confidence=0.93,
        a_eq_m2=4.1,
        growth_m2_per_min=0.6,
    )
    values.update(overrides)
    return values


# --- times --------------------------------------------------------------------------


def test_iso_z_format() -> None:
    assert iso_z(T0_S) == "2024-07-01T12:00:00.000Z"
    assert iso_z(T0_S + 0.25) == "2024-07-01T12:00:00.250Z"
    assert parse_iso_z("2024-07-01T12:00:00Z") == T0_S


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_iso_round_trip_to_the_millisecond(t_s: float) -> None:
    assert abs(parse_iso_z(iso_z(t_s)) - t_s) < 0.001 + 1e-6


@pytest.mark.parametrize(
    "text",
    ["2024-07-01T12:00:00", "2024-07-01T12:00:00+00:00", "2024-07-01 12:00:00Z", "yesterday"],
)
def test_times_without_z_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_iso_z(text)


# --- alarm --------------------------------------------------------------------------


def test_alarm_json_has_the_contract_fields() -> None:
    data = json.loads(build_alarm(**located()).to_json())
    assert data["schema"] == "towerwatch.alarm/1"
    assert (data["alarm_id"], data["seq"], data["state"]) == ("t1-0001", 1, "confirmed")
    assert data["first_seen"] == "2024-07-01T12:00:00.000Z"
    assert data["confirmed_at"] == "2024-07-01T12:00:42.500Z"
    assert data["tower"] == {"id": "t1", "lat": 52.1, "lon": 13.2}
    assert data["position"] == {"lat": 52.17, "lon": 13.31}
    assert data["uncertainty"] == {
        "semi_major_m": 420.0,
        "semi_minor_m": 35.0,
        "orientation_deg": 41.5,
        "level": 0.95,
    }
    assert data["range_source"] == "terrain"
    assert data["bearing_sigma_deg"] == 0.06
    assert data["bearing_only"] is False
    assert data["evidence"] == {
        "thermal": {"peak_k": 412.3, "zoom_ratio": 3.9},
        "visible": None,
        "lidar": None,
    }
    assert data["size"] == {"a_eq_m2": 4.1, "growth_m2_per_min": 0.6}


def test_every_alarm_carries_a_summary_a_person_can_read_aloud() -> None:
    located_alarm = build_alarm(**located())
    assert located_alarm.summary == (
        "t1: fire confirmed at bearing 41.50°, 9.8 km (terrain), 4 m² growing, confidence 0.93"
    )
    bearing = build_alarm(
        **located(
            position=None,
            uncertainty=None,
            range_m=None,
            range_min_m=7000.0,
            range_max_m=30000.0,
            range_source="none",
            bearing_only=True,
            bearing_deg=-236.55,
            growth_m2_per_min=0.0,
        )
    )
    assert bearing.summary == (
        "t1: fire confirmed at bearing 123.45°, 7.0–30.0 km (bearing only), 4 m² steady,"
        " confidence 0.93"
    )
    assert json.loads(bearing.to_json())["summary"] == bearing.summary


def test_an_alarm_from_an_older_tower_without_summary_still_parses() -> None:
    data = json.loads(build_alarm(**located()).to_json())
    del data["summary"]
    assert AlarmMessage.from_json(json.dumps(data)).summary == ""


def test_alarm_measurements_are_sent_to_their_real_precision() -> None:
    message = build_alarm(
        **located(
            position=(52.171234567891, 13.312345678912),
            bearing_deg=41.512345678,
            bearing_sigma_deg=0.0612345,
            range_m=9800.123456,
            range_min_m=9300.06,
            range_max_m=10400.98,
            thermal={"peak_k": 412.3456789, "zoom_ratio": 3.9123456},
            a_eq_m2=4.123456,
        )
    )
    data = json.loads(message.to_json())
    assert data == message.to_dict()
    assert data["position"] == {"lat": 52.1712346, "lon": 13.3123457}
    assert data["bearing_deg"] == 41.51 and data["bearing_sigma_deg"] == 0.0612
    assert (data["range_min_m"], data["range_m"], data["range_max_m"]) == (9300.1, 9800.1, 10401.0)
    assert data["evidence"]["thermal"] == {"peak_k": 412.3, "zoom_ratio": 3.9123456}
    assert data["size"]["a_eq_m2"] == 4.12
    assert data["confidence"] == 0.93  # a probability is not a measurement: sent as it is
    assert AlarmMessage.from_json(message.to_json()).bearing_deg == 41.51


def test_alarm_round_trips_through_json() -> None:
    message = build_alarm(**located())
    assert AlarmMessage.from_json(message.to_json()) == message


def test_angles_are_normalised() -> None:
    message = build_alarm(**located(bearing_deg=-10.0))
    assert message.bearing_deg == pytest.approx(350.0)
    with pytest.raises(ValidationError, match="orientation_deg"):
        Uncertainty(semi_major_m=420.0, semi_minor_m=35.0, orientation_deg=190.0)


def test_bearing_only_alarm_states_a_range_interval_without_a_point() -> None:
    message = build_alarm(
        **located(
            position=None,
            uncertainty=None,
            range_m=None,
            range_min_m=3000.0,
            range_max_m=18000.0,
            range_source="none",
            bearing_only=True,
        )
    )
    data = json.loads(message.to_json())
    assert data["position"] is None and data["uncertainty"] is None
    assert (data["range_min_m"], data["range_max_m"]) == (3000.0, 18000.0)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"position": None}, "position"),
        ({"range_source": "none"}, "range_source"),
        ({"range_m": 20000.0}, "range_m"),
        ({"range_min_m": 11000.0}, "range_min_m"),
        ({"seq": 0}, "seq"),
        ({"state": "maybe"}, "state"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": math.nan}, "confidence"),
        ({"bearing_sigma_deg": 0.0}, "bearing_sigma_deg"),
        ({"bearing_sigma_deg": math.inf}, "bearing_sigma_deg"),
        ({"alarm_id": "t1/0001"}, "alarm_id"),
        ({"position": (91.0, 13.0)}, "lat"),
        ({"confirmed_at_s": T0_S - 1}, "confirmed_at"),
    ],
)
def test_inconsistent_alarms_are_refused(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        build_alarm(**located(**overrides))


def test_unknown_keys_in_a_received_alarm_are_refused() -> None:
    data = json.loads(build_alarm(**located()).to_json())
    data["colour"] = "red"
    with pytest.raises(ValidationError, match="colour"):
        AlarmMessage.from_json(json.dumps(data))


def test_messages_are_frozen() -> None:
    message = build_alarm(**located())
    with pytest.raises(ValidationError):
        message.seq = 2  # type: ignore[misc]


# --- status -------------------------------------------------------------------------


def test_status_payload_leaves_out_what_is_unknown() -> None:
    status = StatusMessage.model_validate(
        {
            "tower_id": "t1",
            "state": "degraded",
            "reasons": ["lidar (lidar.port=/dev/towerwatch-lidar): no frame for 5.0 s"],
            "heartbeat_at": "2024-07-01T12:00:00.000Z",
            "sensors": {"lidar": {"state": "failed", "detail": "no frame for 5.0 s"}},
            "outbox_depth": 3,
            "detection_range_m": 14200.0,
            "counters": {"frames": 1200, "dismissed": 4},
        }
    )
    data = status.to_dict()
    assert data["schema"] == "towerwatch.status/1"
    assert data["sensors"] == {"lidar": {"state": "failed", "detail": "no frame for 5.0 s"}}
    assert "position" not in data and "uptime_s" not in data
    assert json.loads(status.to_json()) == data


def test_status_refuses_unknown_states_and_keys() -> None:
    with pytest.raises(ValidationError, match="state"):
        StatusMessage.model_validate({"tower_id": "t1", "state": "sleeping"})
    with pytest.raises(ValidationError, match="battery"):
        StatusMessage.model_validate({"tower_id": "t1", "state": "online", "battery": 1})


def test_offline_status_is_the_last_will() -> None:
    assert json.loads(offline_status("t1", "connection lost").to_json()) == {
        "schema": "towerwatch.status/1",
        "tower_id": "t1",
        "state": "offline",
        "reasons": ["connection lost"],
        "sensors": {},
        "counters": {},
    }


# --- commands -----------------------------------------------------------------------


def test_every_command_verb_has_a_schema() -> None:
    assert set(COMMAND_MODELS) == set(CommandVerb)


def test_valid_commands_parse_to_typed_objects() -> None:
    recheck = parse_command("recheck", b'{"bearing_deg": 212.5, "elevation_deg": -1}')
    assert isinstance(recheck, RecheckCommand) and recheck.bearing_deg == 212.5
    point = parse_command("recheck", b'{"lat": 52.2, "lon": 13.4, "request_id": "r7"}')
    assert isinstance(point, RecheckCommand) and (point.lat, point.lon, point.request_id) == (
        52.2,
        13.4,
        "r7",
    )
    goto = parse_command("goto", b'{"pan_deg": 90, "tilt_deg": -2.5, "hfov_deg": 6}')
    assert isinstance(goto, GotoCommand) and goto.hold_s == 60.0
    assert isinstance(parse_command("test-alarm", b""), messages.TestAlarmCommand)


@pytest.mark.parametrize(
    ("verb", "payload", "reason"),
    [
        ("recheck", b"{}", "either bearing_deg or lat"),
        ("recheck", b'{"lat": 52.0}', "lat and lon go together"),
        ("recheck", b'{"lat": 52.0, "lon": 13.0, "elevation_deg": 1}', "elevation_deg only"),
        ("recheck", b'{"bearing_deg": "north"}', "bearing_deg"),
        ("goto", b'{"pan_deg": 90}', "tilt_deg"),
        ("goto", b'{"pan_deg": 90, "tilt_deg": 0, "hold_s": 0}', "hold_s"),
        ("goto", b'{"pan_deg": NaN, "tilt_deg": 0}', "pan_deg"),
        ("relay-reset", b'{"now": true}', "now"),
        ("relay-reset", b"\xff\xfe", "not JSON"),
        ("test-alarm", b"42", "JSON object"),
        ("reboot", b"{}", "unknown command 'reboot'"),
    ],
)
def test_malformed_commands_are_refused_with_a_reason(
    verb: str, payload: bytes, reason: str
) -> None:
    with pytest.raises(CommandError, match=reason):
        parse_command(verb, payload)


def test_reply_carries_verb_request_and_result() -> None:
    reply = command_reply(
        "goto", ok=True, replied_at_s=T0_S, request_id="r1", result={"queued": True}
    )
    assert reply == {
        "schema": "towerwatch.reply/1",
        "verb": "goto",
        "ok": True,
        "replied_at": "2024-07-01T12:00:00.000Z",
        "request_id": "r1",
        "queued": True,
    }
    # A handler cannot overwrite the reply's own fields.
    assert (
        command_reply("goto", ok=False, replied_at_s=T0_S, error="x", result={"ok": True})["ok"]
        is False
    )


# --- topics -------------------------------------------------------------------------


def test_topic_table() -> None:
    topics = TowerTopics("towerwatch", "t1")
    assert topics.status == "towerwatch/t1/status"
    assert topics.alarm == "towerwatch/t1/alarm"
    assert topics.snapshot("t1-0001") == "towerwatch/t1/alarm/t1-0001/snapshot"
    assert topics.alarm_state("t1-0001") == "towerwatch/t1/alarm/t1-0001/state"
    assert topics.command("goto") == "towerwatch/t1/cmd/goto"
    assert topics.command_reply("goto") == "towerwatch/t1/cmd/goto/reply"
    assert topics.command_filter == "towerwatch/t1/cmd/+"
    assert {(s.pattern, s.qos, s.retain) for s in TOPIC_TABLE} == {
        ("status", 1, True),
        ("alarm", 1, False),
        ("alarm/{alarm_id}/snapshot", 1, False),
        ("alarm/{alarm_id}/state", 1, True),
        ("cmd/{verb}", 1, False),
        ("cmd/{verb}/reply", 1, False),
    }
    assert [s.pattern for s in TOPIC_TABLE if s.direction is Direction.SUBSCRIBE] == ["cmd/{verb}"]


def test_command_verbs_are_read_from_this_towers_topics_only() -> None:
    topics = TowerTopics("county/north", "t1")
    assert topics.command_verb("county/north/t1/cmd/recheck") == "recheck"
    assert topics.command_verb("county/north/t1/cmd/self-destruct") == "self-destruct"
    assert topics.command_verb("county/north/t1/cmd/recheck/reply") is None
    assert topics.command_verb("county/north/t2/cmd/recheck") is None
    assert topics.command_verb("county/north/t1/alarm") is None


@pytest.mark.parametrize(
    ("prefix", "tower_id", "key"),
    [
        ("towerwatch", "t+1", "tower.id"),
        ("a/#", "t1", "topic_prefix"),
        ("", "t1", "topic_prefix"),
        ("towerwatch", "", "tower.id"),
    ],
)
def test_wildcards_and_empty_levels_are_refused(prefix: str, tower_id: str, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        TowerTopics(prefix, tower_id)
