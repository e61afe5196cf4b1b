"""The Pelco-D PTZ driver against the simulated head over a pty, including its failure paths."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from drivers.base import DeviceUnavailable, DriverError, DriverState, PtzHead
from drivers.ptz_pelco_d import Driver, Settings
from simulators.clock import SimClock
from simulators.head import SimulatedHead
from simulators.pelco_d_head import PelcoDHeadSimulator
from tests.serial_helpers import serial_settings, wait_until

# The head slews four times faster than real time so moves finish quickly.
SPEED = 4.0
CALIBRATION = {"pan_offset_deg": 30.0, "pan_sign": 1, "tilt_offset_deg": 0.5, "tilt_sign": 1}


def make_head() -> SimulatedHead:
    return SimulatedHead(SimClock(time.time(), speed=SPEED), hfov_min_deg=3.0, hfov_max_deg=25.0)


def settings_for(port: str, **overrides: object) -> Settings:
    values = {
        "type": "pelco_d",
        "address": 1,
        "reply_timeout_s": 0.1,
        "hfov_wide_deg": 25.0,
        "hfov_tele_deg": 3.0,
        "calibration": CALIBRATION,
    }
    return serial_settings(Settings, port, values, overrides)


@pytest.fixture
def head_sim() -> Iterator[PelcoDHeadSimulator]:
    sim = PelcoDHeadSimulator(make_head(), address=1)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def ptz(head_sim: PelcoDHeadSimulator) -> Iterator[Driver]:
    driver = Driver(settings_for(head_sim.port_path))
    with driver:
        assert driver.wait_connected(2.0)
        yield driver


def settle(ptz: Driver, timeout_s: float = 8.0) -> None:
    wait_until(lambda: not ptz.status().moving, timeout_s)


def test_absolute_move_reaches_the_true_bearing_through_the_calibration(
    ptz: Driver, head_sim: PelcoDHeadSimulator
) -> None:
    assert isinstance(ptz, PtzHead)
    ptz.absolute_move(100.0, -2.0, hfov_deg=10.0)
    assert ptz.status().moving
    settle(ptz)
    status = ptz.status()
    assert status.pan_deg == pytest.approx(100.0, abs=0.02)
    assert status.tilt_deg == pytest.approx(-2.0, abs=0.02)
    assert status.hfov_deg == pytest.approx(10.0, rel=0.01)
    raw = head_sim.head.state()
    assert raw.raw_pan_deg == pytest.approx(70.0, abs=0.01)  # 100° true − 30° offset
    assert raw.raw_tilt_deg == pytest.approx(-2.5, abs=0.01)  # negative tilt over the wire
    assert ptz.health().state is DriverState.OK


def test_idle_head_reports_not_moving(ptz: Driver) -> None:
    status = ptz.status()
    assert not status.moving
    assert status.pan_deg == pytest.approx(30.0, abs=0.01)
    assert abs(status.t - time.time()) < 5.0


def test_relative_move_adds_to_the_current_bearing(ptz: Driver) -> None:
    ptz.relative_move(-40.0, 1.0)  # from 30° true to 350°, across north
    settle(ptz)
    status = ptz.status()
    assert status.pan_deg == pytest.approx(350.0, abs=0.02)
    assert status.tilt_deg == pytest.approx(1.5, abs=0.02)


def test_continuous_move_stops_at_our_own_deadline(
    ptz: Driver, head_sim: PelcoDHeadSimulator
) -> None:
    ptz.continuous_move(0.5, 0.0, deadline_s=0.3)
    assert ptz.status().moving
    wait_until(lambda: ptz.health().counters.get("deadline_stops", 0) == 1, timeout_s=2.0)
    wait_until(lambda: not head_sim.head.state().moving, timeout_s=3.0)
    turned = (head_sim.head.state().raw_pan_deg - 0.0) % 360.0
    # Half of 40°/s for 0.3 s at 4× speed is about 24°, plus ramps; far from a runaway.
    assert 5.0 < turned < 60.0


def test_explicit_stop_ends_a_continuous_move(ptz: Driver, head_sim: PelcoDHeadSimulator) -> None:
    ptz.continuous_move(-1.0, 0.2, deadline_s=30.0)
    wait_until(lambda: head_sim.head.state().moving)
    ptz.stop()
    settle(ptz)
    assert ptz.health().counters.get("deadline_stops", 0) == 0


def test_presets_store_and_recall_a_pose(ptz: Driver, head_sim: PelcoDHeadSimulator) -> None:
    ptz.absolute_move(200.0, 3.0)
    settle(ptz)
    # Pelco-D cannot report the head's mechanical settle after it reaches the pose, and a
    # head silently ignores a preset store while settling: wait for the head itself.
    wait_until(lambda: not head_sim.head.state().moving)
    token = ptz.set_preset("reed bed")
    assert token == "1"
    wait_until(lambda: head_sim.head.presets().get("1") is not None)
    assert ptz.presets() == {"1": "reed bed"}
    ptz.absolute_move(10.0, 0.0)
    settle(ptz)
    ptz.goto_preset(token)
    # A preset recall has no target the driver knows: wait for the pose, not a moment.
    wait_until(lambda: ptz.status().pan_deg == pytest.approx(200.0, abs=0.05), 8.0)
    settle(ptz)
    assert ptz.status().pan_deg == pytest.approx(200.0, abs=0.05)
    with pytest.raises(DriverError, match="preset token"):
        ptz.goto_preset("abc")


def test_set_preset_skips_configured_and_reserved_numbers(head_sim: PelcoDHeadSimulator) -> None:
    configured = {str(n): f"p{n}" for n in range(1, 33)}
    with Driver(settings_for(head_sim.port_path, presets=configured)) as ptz:
        assert ptz.wait_connected(2.0)
        assert ptz.set_preset("next") == "35"  # 33 and 34 run head functions


def test_silent_head_times_out_with_a_clear_error_then_recovers(
    ptz: Driver, head_sim: PelcoDHeadSimulator
) -> None:
    head_sim.go_silent()
    with pytest.raises(
        DeviceUnavailable, match="no reply to query 51 from address 1 within 0.10 s"
    ):
        ptz.status()
    health = ptz.health()
    assert health.counters["timeouts"] >= 2  # the first try and one retry
    assert health.last_error is not None and head_sim.port_path in health.last_error
    head_sim.speak()
    assert not ptz.status().moving


def test_wrong_address_gets_no_answer(head_sim: PelcoDHeadSimulator) -> None:
    with Driver(settings_for(head_sim.port_path, address=2, query_retries=0)) as ptz:
        assert ptz.wait_connected(2.0)
        with pytest.raises(DeviceUnavailable, match="address 2"):
            ptz.status()


def test_corrupted_and_truncated_replies_are_counted_and_retried(
    ptz: Driver, head_sim: PelcoDHeadSimulator
) -> None:
    head_sim.corrupt_next(1)
    assert ptz.status().pan_deg == pytest.approx(30.0, abs=0.01)
    head_sim.truncate_next(1)
    assert ptz.status().pan_deg == pytest.approx(30.0, abs=0.01)
    counters = ptz.health().counters
    assert counters["crc_errors"] >= 1
    assert counters["timeouts"] >= 2


def test_garbage_on_the_line_is_counted_and_ignored(
    ptz: Driver, head_sim: PelcoDHeadSimulator
) -> None:
    head_sim.inject_garbage(b"\x00\x13\x37 noise \xfe")
    time.sleep(0.1)
    assert ptz.status().pan_deg == pytest.approx(30.0, abs=0.01)
    assert ptz.health().counters["garbage_bytes"] >= 9


def test_head_absent_at_start_then_appearing() -> None:
    sim = PelcoDHeadSimulator(make_head())
    assert not os.path.exists(sim.port_path)
    with Driver(settings_for(sim.port_path)) as ptz:
        with pytest.raises(DeviceUnavailable, match="not connected"):
            ptz.status()
        wait_until(lambda: ptz.health().counters.get("open_failures", 0) >= 2)
        assert ptz.health().state is DriverState.CONNECTING
        with sim:
            assert ptz.wait_connected(3.0)
            assert not ptz.status().moving


def test_head_lost_and_back(ptz: Driver, head_sim: PelcoDHeadSimulator) -> None:
    head_sim.drop()
    wait_until(lambda: ptz.health().counters.get("disconnects", 0) >= 1)
    with pytest.raises(DeviceUnavailable):
        ptz.absolute_move(90.0, 0.0)
    time.sleep(0.3)
    head_sim.restore()
    wait_until(lambda: ptz.health().counters.get("reconnects", 0) >= 1)
    ptz.absolute_move(90.0, 0.0)
    settle(ptz)
    assert ptz.status().pan_deg == pytest.approx(90.0, abs=0.02)


def test_continuous_deadline_passing_while_unplugged_sends_stop_on_reconnect(
    ptz: Driver, head_sim: PelcoDHeadSimulator
) -> None:
    ptz.continuous_move(0.3, 0.0, deadline_s=0.2)
    wait_until(lambda: head_sim.head.state().moving)
    head_sim.drop()
    time.sleep(0.4)
    assert head_sim.head.state().moving  # nobody could tell it to stop
    head_sim.restore()
    wait_until(lambda: ptz.health().counters.get("deadline_stops", 0) == 1, timeout_s=3.0)
    wait_until(lambda: not head_sim.head.state().moving, timeout_s=3.0)


def test_invalid_requests_are_usage_errors(ptz: Driver) -> None:
    with pytest.raises(DriverError, match="speeds"):
        ptz.continuous_move(1.5, 0.0, 1.0)
    with pytest.raises(DriverError, match="deadline"):
        ptz.continuous_move(0.5, 0.0, 0.0)
    with pytest.raises(DriverError, match="tilt"):
        ptz.absolute_move(10.0, 95.0)


def test_settings_refuse_an_inverted_zoom_range() -> None:
    with pytest.raises(ValueError, match="hfov_tele_deg"):
        settings_for("/dev/null", hfov_wide_deg=3.0, hfov_tele_deg=25.0)
