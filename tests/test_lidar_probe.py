"""The daemon's lidar probe against the simulated lidar over a pty, through the serial driver."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from drivers.base import DriverState
from drivers.lidar_serial import Driver, Settings
from edge.lidar_probe import LidarProbe, ProbeResult, fan_offsets
from simulators.clock import SimClock
from simulators.lidar import HardTarget, LidarAtmosphere, LidarSimulator, SmokePlume
from tests.serial_helpers import serial_settings

PRF_HZ = 50000.0  # fast shots: each scan takes milliseconds of wall time
BEARING = 120.0


def run_until_done(probe: LidarProbe, timeout_s: float = 5.0) -> ProbeResult:
    deadline = time.monotonic() + timeout_s
    while not probe.done and time.monotonic() < deadline:
        probe.poll()
        time.sleep(0.01)
    return probe.result()


def open_lidar(sim: LidarSimulator) -> Driver:
    values = {"type": "serial", "status_interval_s": 0.1, "silence_timeout_s": 0.5}
    settings = serial_settings(Settings, sim.port_path, values, {})
    driver = Driver(settings)
    driver.open()
    assert driver.wait_connected(2.0)
    return driver


@pytest.fixture
def world() -> Iterator[tuple[LidarSimulator, Driver]]:
    atmosphere = LidarAtmosphere(
        plumes=[SmokePlume(BEARING, 4000.0, width_m=60.0, min_elevation_deg=0.0)],
        hard_targets=[HardTarget(300.0, 3000.0, max_elevation_deg=0.3)],
    )
    sim = LidarSimulator(SimClock(time.time()), atmosphere, prf_hz=PRF_HZ, seed=3)
    sim.start()
    driver = open_lidar(sim)
    yield sim, driver
    driver.close()
    sim.stop()


def test_a_plume_on_the_bearing_gives_its_range(world: tuple[LidarSimulator, Driver]) -> None:
    sim, driver = world
    probe = LidarProbe(driver, shots=500)
    started = time.monotonic()
    probe.start(BEARING + 360.0, -0.2)
    assert time.monotonic() - started < 0.5  # requesting does not wait for the scans
    result = run_until_done(probe)
    assert result.done and sim.scans_received == 3
    assert result.range_m == pytest.approx(4000.0, abs=7.5)
    ev = result.evidence
    assert ev["scans_asked"] == 3 and ev["scans_answered"] == 3 and ev["errors"] == []
    assert ev["bearing_deg"] == pytest.approx(BEARING)
    assert [e["elevation_deg"] for e in ev["elevations"]] == [-0.1, 0.3, 0.8]
    below, above, high = ev["elevations"]
    assert below["plume"] is None  # the plume starts at 0° elevation
    assert above["plume"]["kind"] == "plume" and above["plume"]["z"] > 5.0
    assert 15.0 <= above["plume"]["width_m"] <= 500.0
    assert ev["plume_range_m"] == pytest.approx(result.range_m, abs=0.1)


def test_clear_air_gives_no_range(world: tuple[LidarSimulator, Driver]) -> None:
    _, driver = world
    probe = LidarProbe(driver, shots=500)
    probe.start(30.0, 0.0)
    result = run_until_done(probe)
    assert result.done and result.range_m is None
    assert all(e["answered"] and e["strongest"] is None for e in result.evidence["elevations"])


def test_a_ridge_is_a_hard_target_not_smoke(world: tuple[LidarSimulator, Driver]) -> None:
    _, driver = world
    probe = LidarProbe(driver, shots=300, elevations_deg=(0.1, 1.0))
    probe.start(300.0, 0.0)
    result = run_until_done(probe)
    assert result.range_m is None
    low, high = result.evidence["elevations"]
    assert low["blocked_at_m"] == pytest.approx(3000.0, abs=7.5)
    assert low["strongest"]["kind"] == "hard_target" and low["strongest"]["blocks_beam"]
    assert high["blocked_at_m"] is None  # the beam passes over the ridge


def test_stale_profiles_of_other_directions_are_ignored(
    world: tuple[LidarSimulator, Driver],
) -> None:
    _, driver = world
    driver.request_scan(BEARING + 5.0, 0.3, 200)  # someone else's scan, still in flight
    time.sleep(0.2)
    probe = LidarProbe(driver, shots=500)
    probe.start(30.0, 0.0)
    result = run_until_done(probe)
    assert result.done and result.evidence["unmatched_profiles"] == 1
    assert result.range_m is None


def test_an_unplugged_lidar_is_recorded_not_raised(world: tuple[LidarSimulator, Driver]) -> None:
    sim, driver = world
    sim.drop()
    # until the driver has seen the port go (its silence alarm may come first, while
    # the port still looks open)
    deadline = time.monotonic() + 3.0
    while driver.health().state is not DriverState.CONNECTING and time.monotonic() < deadline:
        time.sleep(0.02)
    assert driver.health().state is DriverState.CONNECTING
    probe = LidarProbe(driver, shots=100)
    probe.start(BEARING, 0.0)
    started = time.monotonic()
    assert probe.poll() == 0
    assert time.monotonic() - started < 0.1
    result = probe.result()
    assert result.done and result.range_m is None
    assert result.evidence["scans_asked"] == 0
    assert len(result.evidence["errors"]) == 3
    assert all("lidar.port" in e for e in result.evidence["errors"])


def test_a_laser_fault_leaves_the_look_unanswered(world: tuple[LidarSimulator, Driver]) -> None:
    sim, driver = world
    sim.laser_fault(7)
    probe = LidarProbe(driver, shots=100)
    probe.start(BEARING, 0.0)
    time.sleep(0.3)
    probe.poll()
    result = probe.result()
    assert not result.done and result.range_m is None
    assert result.evidence["scans_asked"] == 3 and result.evidence["scans_answered"] == 0
    # the refused scan, or the fault status the lidar reports next, is the last error
    last_error = driver.health().last_error or ""
    assert "refused" in last_error or "fault 7" in last_error, last_error


def test_bad_probe_settings_are_refused(world: tuple[LidarSimulator, Driver]) -> None:
    _, driver = world
    with pytest.raises(ValueError):
        LidarProbe(driver, shots=0)
    with pytest.raises(ValueError):
        LidarProbe(driver, elevations_deg=())


def test_the_fan_leans_as_far_as_the_wind_can_carry_smoke_at_each_height() -> None:
    # wind 3 m/s, smoke rising 1.5 m/s: a beam δ above the fire meets smoke that leaned
    # atan(2·tan δ) off the bearing: 0.2° at δ = 0.1°, 1.0° at δ = 0.5°
    fan = fan_offsets((0.5, 0.1), drift_per_rise=2.0, azimuth_step_deg=0.2, max_scans=100)
    low = [d_az for d_az, d_el in fan if d_el == 0.1]
    high = [d_az for d_az, d_el in fan if d_el == 0.5]
    assert low == pytest.approx([0.0, -0.2, 0.2])  # the lowest row first, outward
    assert sorted(high) == pytest.approx([0.2 * k for k in range(-5, 6)])
    assert fan[: len(low)] == [(d, 0.1) for d in low]
    # the dwell bounds the fan: the highest rows go first
    assert fan_offsets((0.1, 0.5), 2.0, 0.2, max_scans=5) == fan[:5]
    # no wind: the bearing only, one shot per elevation
    assert fan_offsets((0.1, 0.5), 0.0, 0.2, 24) == [(0.0, 0.1), (0.0, 0.5)]


def test_a_fan_finds_a_plume_the_wind_leaned_off_the_bearing() -> None:
    atmosphere = LidarAtmosphere(
        plumes=[SmokePlume(BEARING - 0.8, 8000.0, width_m=40.0, min_elevation_deg=0.0)]
    )
    sim = LidarSimulator(SimClock(time.time()), atmosphere, prf_hz=PRF_HZ, seed=4)
    sim.start()
    driver = open_lidar(sim)
    try:
        on_bearing = LidarProbe(driver, shots=500, elevations_deg=(0.5,))
        on_bearing.start(BEARING, -0.2)
        assert run_until_done(on_bearing).range_m is None  # the plume is 0.8° aside

        fan = LidarProbe(driver, shots=500, elevations_deg=(0.5,), drift_per_rise=2.0)
        fan.start(BEARING, -0.2)
        result = run_until_done(fan, timeout_s=30.0)
    finally:
        driver.close()
        sim.stop()
    # asked a few at a time (the lidar queues few), outward from the bearing: −0.8° is the
    # 8th of the row, and the fan stops there
    assert result.done and result.evidence["scans_answered"] <= 8 + 3
    assert result.evidence["scans_in_fan"] == 11
    assert result.range_m == pytest.approx(8000.0, abs=15.0)
    # the first beam through the plume's edge, on its side of the bearing, ends the fan
    assert -0.8 - 1e-9 <= result.evidence["plume_azimuth_offset_deg"] <= -0.2 + 1e-9
    assert (
        result.beam_azimuth_deg is not None and BEARING - 0.81 < result.beam_azimuth_deg < BEARING
    )
    assert result.beam_elevation_deg == pytest.approx(0.3)
