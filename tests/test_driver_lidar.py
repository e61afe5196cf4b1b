"""The serial smoke-lidar driver against the simulated lidar over a pty, and the simulated physics."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np
import pytest

from drivers import codec_lidar as cl
from drivers.base import DeviceUnavailable, DriverError, DriverState, LidarProfile, SmokeLidar
from drivers.lidar_serial import Driver, Settings
from simulators.clock import SimClock
from simulators.lidar import HardTarget, LidarAtmosphere, LidarSimulator, SmokePlume
from tests.serial_helpers import serial_settings, wait_until

PRF_HZ = 20000.0  # fast shots keep each scan to milliseconds of wall time


def settings_for(port: str, **overrides: object) -> Settings:
    values = {
        "type": "serial",
        "status_interval_s": 0.1,
        "silence_timeout_s": 0.5,
        "scan_timeout_s": 0.5,
    }
    return serial_settings(Settings, port, values, overrides)


def make_sim(**kwargs: object) -> LidarSimulator:
    return LidarSimulator(SimClock(time.time()), prf_hz=PRF_HZ, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def lidar_sim() -> Iterator[LidarSimulator]:
    sim = make_sim()
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def lidar(lidar_sim: LidarSimulator) -> Iterator[Driver]:
    with Driver(settings_for(lidar_sim.port_path)) as driver:
        assert driver.wait_connected(2.0)
        yield driver


def scan(lidar: Driver, azimuth_deg: float, elevation_deg: float, shots: int) -> LidarProfile:
    lidar.request_scan(azimuth_deg, elevation_deg, shots)
    profile = lidar.read_profile(timeout_s=3.0)
    assert profile is not None, lidar.health()
    return profile


def test_scan_returns_a_profile_for_the_requested_direction(lidar: Driver) -> None:
    assert isinstance(lidar, SmokeLidar)
    profile = scan(lidar, 370.0, 0.5, 200)
    assert profile.azimuth_deg == pytest.approx(10.0)
    assert profile.elevation_deg == pytest.approx(0.5)
    assert (profile.first_bin_m, profile.bin_m) == (7.5, 7.5)
    assert profile.bins.dtype == np.float32 and profile.bins.size == 2000
    assert abs(profile.t - time.time()) < 2.0
    counters = lidar.health().counters
    assert counters["profiles"] == 1 and counters["acks"] == 1
    assert lidar.health().state is DriverState.OK


def test_clean_air_range_corrected_signal_falls_with_slope_minus_two_alpha() -> None:
    atmosphere = LidarAtmosphere(extinction_per_m=1.5e-4)
    first, step, expected = atmosphere(0.0, 0.0, 0.0)
    r = first + step * np.arange(expected.size)
    s = np.log(r**2 * (expected - atmosphere.background_counts))
    window = (r > 1000) & (r < 8000)
    slope = np.polyfit(r[window], s[window], 1)[0]
    assert slope == pytest.approx(-2 * 1.5e-4, rel=0.02)
    assert 300 < expected[int((1000 - first) / step)] < 3000  # counts per shot at 1 km


def test_smoke_plume_is_a_peak_then_a_step_down_only_in_its_direction() -> None:
    plume = SmokePlume(azimuth_deg=45.0, range_m=4000.0, width_m=60.0, depth_m=60.0)
    atmosphere = LidarAtmosphere(plumes=[plume])
    clean = LidarAtmosphere()
    first, step, smoky = atmosphere(45.0, 0.0, 0.0)
    _, _, reference = clean(45.0, 0.0, 0.0)
    i_plume = int((4000.0 - first) / step)
    assert smoky[i_plume] > 3 * reference[i_plume]
    beyond = int((4300.0 - first) / step)
    assert smoky[beyond] < reference[beyond]  # the plume's extinction shadows what lies behind
    _, _, aside = atmosphere(50.0, 0.0, 0.0)
    np.testing.assert_allclose(aside, reference, rtol=1e-6)
    _, _, before_fire = LidarAtmosphere(plumes=[SmokePlume(45.0, 4000.0, start_t=100.0)])(
        45.0, 0.0, 50.0
    )
    np.testing.assert_allclose(before_fire, reference, rtol=1e-6)


def test_hard_target_is_a_spike_with_only_background_beyond() -> None:
    atmosphere = LidarAtmosphere(hard_targets=[HardTarget(azimuth_deg=90.0, range_m=3000.0)])
    first, step, counts = atmosphere(90.2, 0.0, 0.0)
    i = int((3000.0 - first) / step)
    assert counts[i] > 100 * counts[i - 5]
    assert np.all(counts[i + 1 :] == np.float32(atmosphere.background_counts))
    _, _, over = atmosphere(90.2, 5.0, 0.0)  # aimed above the ridge
    assert over[i + 10] > atmosphere.background_counts


def test_more_shots_give_a_less_noisy_profile(lidar: Driver) -> None:
    far = slice(1200, 1800)  # 9–13.5 km: few counts, shot noise dominates
    noisy = scan(lidar, 0.0, 0.0, 10).bins[far]
    clean = scan(lidar, 0.0, 0.0, 2000).bins[far]
    assert np.std(np.diff(clean)) < 0.3 * np.std(np.diff(noisy))


def test_injected_profile_function_and_u16_encoding() -> None:
    def ramp(azimuth_deg: float, elevation_deg: float, t: float) -> tuple[float, float, np.ndarray]:
        return 15.0, 3.75, np.full(100, azimuth_deg, dtype=np.float32)

    sim = make_sim(profile_fn=ramp, encoding=cl.ENCODING_U16)
    with sim, Driver(settings_for(sim.port_path)) as lidar:
        assert lidar.wait_connected(2.0)
        profile = scan(lidar, 200.0, 0.0, 50)
        assert (profile.first_bin_m, profile.bin_m, profile.bins.size) == (15.0, 3.75, 100)
        assert abs(float(np.mean(profile.bins)) - 200.0) < 5.0


def test_lidar_absent_at_start_then_appearing() -> None:
    sim = make_sim()
    assert not os.path.exists(sim.port_path)
    with Driver(settings_for(sim.port_path)) as lidar:
        with pytest.raises(DeviceUnavailable, match="not connected"):
            lidar.request_scan(0.0, 0.0, 10)
        wait_until(lambda: lidar.health().counters.get("open_failures", 0) >= 2)
        assert lidar.read_profile(0.05) is None
        with sim:
            assert lidar.wait_connected(3.0)
            scan(lidar, 0.0, 0.0, 10)


def test_lidar_lost_and_back(lidar: Driver, lidar_sim: LidarSimulator) -> None:
    scan(lidar, 0.0, 0.0, 10)
    lidar_sim.drop()
    wait_until(lambda: lidar.health().counters.get("disconnects", 0) >= 1)
    with pytest.raises(DeviceUnavailable):
        lidar.request_scan(0.0, 0.0, 10)
    lidar_sim.restore()
    wait_until(lambda: lidar.health().counters.get("reconnects", 0) >= 1)
    scan(lidar, 0.0, 0.0, 10)
    assert lidar.health().state is DriverState.OK


def test_corrupted_profile_is_counted_and_the_scan_times_out(
    lidar: Driver, lidar_sim: LidarSimulator
) -> None:
    lidar_sim.corrupt_next_profiles(1)
    lidar.request_scan(0.0, 0.0, 10)
    assert lidar.read_profile(0.3) is None
    wait_until(lambda: lidar.health().counters.get("timeouts", 0) >= 1, timeout_s=2.0)
    health = lidar.health()
    assert health.counters["crc_errors"] >= 1
    assert health.counters["acks"] >= 1
    assert health.last_error is not None and "no profile for scan" in health.last_error
    scan(lidar, 0.0, 0.0, 10)  # and the stream is back in step


def test_truncated_frames_and_garbage_are_counted_and_skipped(
    lidar: Driver, lidar_sim: LidarSimulator
) -> None:
    lidar_sim.inject_garbage(b"\x00\x01\xaa\x13 noise \x55")
    lidar_sim.corrupt_next(1)
    lidar_sim.truncate_next(3)
    wait_until(lambda: lidar.health().counters.get("crc_errors", 0) >= 1, timeout_s=2.0)
    for _ in range(3):
        lidar.request_scan(0.0, 0.0, 10)
        if lidar.read_profile(0.5) is not None:
            break
    else:
        raise AssertionError("no profile after the truncated frames")
    assert lidar.health().counters["garbage_bytes"] >= 8


def test_silent_lidar_is_reported_failed_then_recovers(
    lidar: Driver, lidar_sim: LidarSimulator
) -> None:
    lidar_sim.go_silent()
    wait_until(lambda: lidar.health().state is DriverState.FAILED, timeout_s=2.0)
    health = lidar.health()
    assert health.last_error == f"lidar (lidar.port={lidar_sim.port_path}): no frame for 0.5 s"
    lidar_sim.speak()
    wait_until(lambda: lidar.health().state is DriverState.OK, timeout_s=2.0)


def test_laser_fault_is_reported_and_scans_are_refused(
    lidar: Driver, lidar_sim: LidarSimulator
) -> None:
    lidar_sim.laser_fault(7)
    wait_until(lambda: lidar.health().state is DriverState.FAILED, timeout_s=2.0)
    assert "fault 7" in (lidar.health().last_error or "")
    lidar.request_scan(0.0, 0.0, 10)
    wait_until(lambda: lidar.health().counters.get("device_errors", 0) >= 1)
    assert "refused command" in (lidar.health().last_error or "")
    lidar_sim.laser_fault(0)
    wait_until(lambda: lidar.health().state is DriverState.OK, timeout_s=2.0)
    scan(lidar, 0.0, 0.0, 10)


def test_profile_queue_is_bounded_and_drops_the_oldest(lidar_sim: LidarSimulator) -> None:
    with Driver(settings_for(lidar_sim.port_path, profile_queue_size=2)) as lidar:
        assert lidar.wait_connected(2.0)
        for azimuth in (1.0, 2.0, 3.0, 4.0):
            lidar.request_scan(azimuth, 0.0, 5)
        wait_until(lambda: lidar.health().counters.get("dropped_profiles", 0) >= 2)
        kept = [lidar.read_profile(0.5) for _ in range(2)]
        assert [p.azimuth_deg for p in kept if p is not None] == [3.0, 4.0]


def test_invalid_scan_requests_are_usage_errors(lidar: Driver) -> None:
    with pytest.raises(DriverError, match="elevation"):
        lidar.request_scan(0.0, 120.0, 10)
    with pytest.raises(DriverError, match="shots"):
        lidar.request_scan(0.0, 0.0, 0)
    with pytest.raises(ValueError, match="silence_timeout_s"):
        settings_for("/dev/null", status_interval_s=2.0, silence_timeout_s=1.0)
