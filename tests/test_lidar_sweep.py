"""The lidar's background sweep against the simulated lidar over a pty, through the serial driver."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from drivers.base import DriverError, DriverHealth, DriverState, LidarProfile
from drivers.lidar_serial import Driver
from edge.lidar_sweep import (
    SCAN_TIMEOUT_S,
    SWEEP_IN_FLIGHT,
    LidarSweep,
    SmokeFix,
    SweepSettings,
    sweep_directions,
)
from simulators.clock import SimClock
from simulators.lidar import HardTarget, LidarAtmosphere, LidarSimulator, SmokePlume
from tests.test_lidar_probe import PRF_HZ, open_lidar

SECTOR = SweepSettings(azimuth_start_deg=100.0, azimuth_span_deg=10.0, elevations_deg=(0.0, 0.3),
                       azimuth_step_deg=0.2, shots=250, quiet_after_fix_s=300.0)  # fmt: skip


@pytest.fixture
def lidar_in(request: pytest.FixtureRequest) -> Iterator[tuple[LidarSimulator, Driver]]:
    sim = LidarSimulator(SimClock(time.time()), request.param, prf_hz=PRF_HZ, seed=5)
    sim.start()
    driver = open_lidar(sim)
    yield sim, driver
    driver.close()
    sim.stop()


def sweep_cycles(sweep: LidarSweep, cycles: int, timeout_s: float = 30.0) -> list[SmokeFix]:
    """Poll as the daemon does until ``cycles`` full cycles are done; the fixes reported."""
    fixes = []
    deadline = time.monotonic() + timeout_s
    while sweep.counters["cycles"] < cycles or sweep.chasing:
        assert time.monotonic() < deadline, f"sweep stalled: {sweep.counters}"
        fix = sweep.poll(time.monotonic(), paused=False)
        if fix is not None:
            fixes.append(fix)
        time.sleep(0.002)
    return fixes


def test_a_cycle_shoots_each_row_from_edge_to_edge() -> None:
    directions = sweep_directions(SECTOR)
    assert len(directions) == 2 * 51
    assert directions[0] == (100.0, 0.0) and directions[50] == pytest.approx((110.0, 0.0))
    assert directions[51] == (100.0, 0.3)
    full = sweep_directions(SweepSettings(350.0, 360.0, (0.0,), 0.5, 100, 0.0))
    assert len(full) == 720 and full[20] == (0.0, 0.0)  # wraps north, no direction twice


PLUME = SmokePlume(104.0, 5000.0, width_m=60.0, min_elevation_deg=0.0)


@pytest.mark.parametrize("lidar_in", [LidarAtmosphere(plumes=[PLUME])], indirect=True)
def test_a_plume_is_reported_once_at_its_axis_and_range(
    lidar_in: tuple[LidarSimulator, Driver],
) -> None:
    _, driver = lidar_in
    sweep = LidarSweep(driver, SECTOR)
    fixes = sweep_cycles(sweep, 2)
    assert len(fixes) == 1, sweep.counters  # then quiet: not chased again on the next cycle
    (fix,) = fixes
    assert fix.azimuth_deg == pytest.approx(104.0, abs=0.2)
    assert fix.range_m == pytest.approx(5000.0, abs=30.0)
    assert fix.elevation_deg == 0.0  # the lowest row met it first
    # its body (the returns at least half the strongest) is about the plume's width
    assert fix.directions >= 2 and 30.0 <= fix.across_m <= 150.0
    assert fix.evidence["found_by"] == "sweep"
    assert sweep.counters["plumes"] == 1 and sweep.counters["layers"] == 0
    probe = fix.as_probe_result()
    assert probe.range_m == fix.range_m and probe.beam_elevation_deg == 0.0


@pytest.mark.parametrize(
    "lidar_in",
    [
        LidarAtmosphere(),
        # a haze layer over the whole sector: kilometres wide, a kilometre deep
        LidarAtmosphere(plumes=[SmokePlume(105.0, 5000.0, width_m=4000.0, depth_m=1000.0,
                                           backscatter_per_m_sr=3e-6, lidar_ratio_sr=20.0)]),
        # a building at 3 km across part of the sector, below the upper row
        LidarAtmosphere(hard_targets=[HardTarget(103.0, 3000.0, half_width_deg=1.0,
                                                 max_elevation_deg=0.1)]),
    ],
    ids=["clear-air", "haze-layer", "building"],
    indirect=True,
)  # fmt: skip
def test_clear_air_layers_and_hard_targets_are_not_smoke(
    lidar_in: tuple[LidarSimulator, Driver],
) -> None:
    _, driver = lidar_in
    sweep = LidarSweep(driver, SECTOR)
    assert sweep_cycles(sweep, 2) == []
    # two cycles asked, all but the last in flight answered
    assert sweep.counters["plumes"] == 0
    assert sweep.counters["scans"] >= 2 * len(sweep.directions) - SWEEP_IN_FLIGHT


@pytest.mark.parametrize("lidar_in", [LidarAtmosphere(plumes=[PLUME])], indirect=True)
def test_a_paused_sweep_neither_asks_nor_reads(lidar_in: tuple[LidarSimulator, Driver]) -> None:
    sim, driver = lidar_in
    sweep = LidarSweep(driver, SECTOR)
    sweep.poll(time.monotonic(), paused=False)
    deadline = time.monotonic() + 5.0
    while sim.scans_received < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for _ in range(20):
        assert sweep.poll(time.monotonic(), paused=True) is None
        time.sleep(0.01)
    assert sim.scans_received == 2 and sweep.counters["scans"] == 0
    # the profiles wait in the driver for whoever holds the lidar: the sweep reads them on resuming
    sweep.poll(time.monotonic(), paused=False)
    assert sweep.counters["scans"] == 2


class _SilentLidar:
    """Accepts every scan and never answers (its profiles went to a cued fan)."""

    def __init__(self, refuse: bool = False) -> None:
        self.asked: list[tuple[float, float]] = []
        self.refuse = refuse

    def open(self) -> None: ...

    def close(self) -> None: ...

    def health(self) -> DriverHealth:
        return DriverHealth("lidar (silent)", DriverState.OK)

    def request_scan(self, azimuth_deg: float, elevation_deg: float, shots: int) -> None:
        if self.refuse:
            raise DriverError("lidar: busy")
        self.asked.append((azimuth_deg, elevation_deg))

    def read_profile(self, timeout_s: float) -> LidarProfile | None:
        return None


def test_an_unanswered_scan_is_forgotten_and_the_sweep_goes_on() -> None:
    lidar = _SilentLidar()
    sweep = LidarSweep(lidar, SECTOR)
    sweep.poll(0.0, paused=False)
    assert lidar.asked == [(100.0, 0.0), (100.2, 0.0)]
    sweep.poll(SCAN_TIMEOUT_S - 1.0, paused=False)
    assert len(lidar.asked) == 2  # still waiting for both
    sweep.poll(SCAN_TIMEOUT_S + 1.0, paused=False)
    assert lidar.asked[2:] == [(pytest.approx(100.4), 0.0), (pytest.approx(100.6), 0.0)]


def test_a_refused_scan_is_counted_and_asked_again_next_poll() -> None:
    lidar = _SilentLidar(refuse=True)
    sweep = LidarSweep(lidar, SECTOR)
    sweep.poll(0.0, paused=False)
    assert sweep.counters["errors"] == 1 and lidar.asked == []
    lidar.refuse = False
    sweep.poll(0.5, paused=False)
    assert lidar.asked[0] == (100.0, 0.0)
