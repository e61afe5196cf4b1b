"""The NMEA GNSS driver against the simulated receiver over a pty, including its failure paths."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from drivers.base import DriverState, Gnss, GnssFix
from drivers.gnss_nmea import Driver, Settings
from simulators.clock import SimClock
from simulators.gnss import GnssSimulator
from tests.serial_helpers import serial_settings, wait_until

LAT, LON, ALT_M = 46.5432, -8.1234, 312.4
# Ten simulated seconds per wall second: ten NMEA epochs per second keep tests short.
SPEED = 10.0


def settings_for(port: str, **overrides: object) -> Settings:
    values = {"type": "nmea", "silence_timeout_s": 1.0, "max_fix_age_s": 1.0}
    return serial_settings(Settings, port, values, overrides)


@pytest.fixture
def receiver() -> Iterator[GnssSimulator]:
    sim = GnssSimulator(SimClock(time.time(), speed=SPEED), LAT, LON, ALT_M)
    sim.start()
    yield sim
    sim.stop()


def test_reports_the_configured_position_from_a_real_fix(receiver: GnssSimulator) -> None:
    with Driver(settings_for(receiver.port_path)) as gnss:
        assert isinstance(gnss, Gnss)
        wait_until(gnss.latest_fix)
        fix = gnss.latest_fix()
        assert isinstance(fix, GnssFix)
        assert fix.lat == pytest.approx(LAT, abs=1e-6)
        assert fix.lon == pytest.approx(LON, abs=1e-6)
        assert fix.alt_m == pytest.approx(ALT_M)
        assert fix.fix_quality == 1 and fix.satellites == 10
        assert abs(fix.t - time.time()) < 5 * SPEED  # the receiver's own (simulated) UTC
        health = gnss.health()
        assert health.state is DriverState.OK
        assert health.counters["sentences"] >= 2 and health.counters["fixes"] >= 1


@pytest.mark.parametrize("talker", ["GP", "BD", "GB"])
def test_any_talker_works(talker: str) -> None:
    sim = GnssSimulator(SimClock(time.time(), speed=SPEED), LAT, LON, ALT_M, talker=talker)
    with sim, Driver(settings_for(sim.port_path)) as gnss:
        wait_until(gnss.latest_fix)


def test_no_position_until_the_receiver_has_a_fix() -> None:
    sim = GnssSimulator(SimClock(time.time(), speed=SPEED), LAT, LON, ALT_M, fix_after_s=15.0)
    with sim, Driver(settings_for(sim.port_path)) as gnss:
        wait_until(lambda: gnss.health().counters.get("sentences", 0) >= 6)
        assert gnss.latest_fix() is None  # sentences flow, but quality 0 / status V
        wait_until(gnss.latest_fix, timeout_s=5.0)
        fix = gnss.latest_fix()
        assert fix is not None and (fix.lat, fix.lon) != (0.0, 0.0)


def test_losing_the_fix_stops_reporting_a_position(receiver: GnssSimulator) -> None:
    with Driver(settings_for(receiver.port_path)) as gnss:
        wait_until(gnss.latest_fix)
        receiver.lose_fix()
        wait_until(lambda: gnss.latest_fix() is None, timeout_s=3.0)
        assert gnss.health().state is DriverState.OK  # the receiver still talks


def test_device_absent_at_start_then_appearing() -> None:
    sim = GnssSimulator(SimClock(time.time(), speed=SPEED), LAT, LON, ALT_M)
    assert not os.path.exists(sim.port_path)
    with Driver(settings_for(sim.port_path)) as gnss:
        wait_until(lambda: gnss.health().counters.get("open_failures", 0) >= 2)
        health = gnss.health()
        assert health.state is DriverState.CONNECTING
        assert health.last_error is not None and sim.port_path in health.last_error
        assert gnss.latest_fix() is None
        with sim:
            wait_until(gnss.latest_fix)
            assert gnss.health().state is DriverState.OK


def test_device_lost_and_back(receiver: GnssSimulator) -> None:
    with Driver(settings_for(receiver.port_path)) as gnss:
        wait_until(gnss.latest_fix)
        receiver.drop()
        wait_until(lambda: gnss.health().counters.get("disconnects", 0) >= 1)
        assert gnss.health().state is DriverState.CONNECTING
        time.sleep(0.3)  # a few failed reopen attempts while unplugged
        receiver.restore()
        wait_until(lambda: gnss.health().counters.get("reconnects", 0) >= 1)
        fixes_before = gnss.health().counters["fixes"]
        wait_until(lambda: gnss.health().counters["fixes"] > fixes_before)
        assert gnss.health().state is DriverState.OK


def test_bad_checksums_garbage_and_truncated_lines_are_counted_and_skipped(
    receiver: GnssSimulator,
) -> None:
    with Driver(settings_for(receiver.port_path)) as gnss:
        wait_until(gnss.latest_fix)
        receiver.corrupt_next(3)
        receiver.inject_garbage(b"\x00\xfe\x13 line noise \x7f")
        wait_until(lambda: gnss.health().counters.get("crc_errors", 0) >= 3)
        receiver.truncate_next(1)
        wait_until(lambda: gnss.health().counters.get("malformed", 0) >= 1)
        health = gnss.health()
        assert health.counters["garbage_bytes"] >= 10
        fixes = health.counters["fixes"]
        wait_until(lambda: gnss.health().counters["fixes"] > fixes)
        fix = gnss.latest_fix()
        assert fix is not None and fix.lat == pytest.approx(LAT, abs=1e-6)


def test_silent_receiver_is_reported_and_its_old_fix_expires(receiver: GnssSimulator) -> None:
    with Driver(settings_for(receiver.port_path)) as gnss:
        wait_until(gnss.latest_fix)
        receiver.go_silent()
        wait_until(lambda: gnss.health().state is DriverState.FAILED, timeout_s=3.0)
        health = gnss.health()
        assert health.last_error is not None and "no NMEA sentence for 1.0 s" in health.last_error
        assert receiver.port_path in health.last_error
        assert gnss.latest_fix() is None
        receiver.speak()
        wait_until(lambda: gnss.health().state is DriverState.OK)
        wait_until(gnss.latest_fix)


def test_settings_refuse_a_non_standard_baud_rate() -> None:
    with pytest.raises(ValueError, match="not a baud rate"):
        settings_for("/dev/null", baudrate=1234)
    with pytest.raises(ValueError, match="extra"):
        settings_for("/dev/null", speed=1)
