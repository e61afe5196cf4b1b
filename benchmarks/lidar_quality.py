"""Lidar quality: does the cued fan find a fire's plume, and does the fix hold the fire?

Each trial places one reed fire over the flat reed of mission-2m-10km at a range and
in a wind (cross-, head- or tail-wind to the tower's line of sight), points the camera
at it with the calibrated head's error (σ 0.05° in pan and tilt), and runs the daemon's
own LidarProbe (the cued fan) and FireReporter.geolocate (drift error and the camera
consistency check) against the simulated lidar: the world's lidar equation (clear air,
the plume's backscatter and extinction, terrain) with Poisson shot noise per scan,
answered in process (no pty), so thousands of scans take seconds. A trial counts as
found when the fix uses the lidar's range, and as held when the fire's true ground
range lies inside the fix's stated 95 % range interval.

The no-smoke rows run the same fan with no fire: in fog (1 km visibility), in haze
(5 km) and with a building on the bearing (a hard target); a plume there is a false one.

The sweep rows run the daemon's LidarSweep (edge/lidar_sweep.py) once over a 6° sector
around the fire, with no camera cue, and FireReporter.smoke_geolocation on its fix: a
trial is found when a plume is reported (the sector holds one fire), and held when
the fire lies inside the fix's 95 % ellipse. Their no-smoke rows count any plume
reported in fog, haze, in front of a building or in clear air.

Run: python benchmarks/lidar_quality.py [--trials N] [--only fan|sweep]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

from drivers.base import DriverHealth, DriverState, LidarProfile
from edge.alarms import AlarmBook
from edge.config import TowerConfig, load_config
from edge.fire_reporter import FireReporter
from edge.geodesy import destination, distance_bearing
from edge.geolocation import Geolocation, bearing_elevation_to
from edge.lidar_probe import LidarProbe, ProbeResult
from edge.lidar_sweep import LidarSweep, SmokeFix, SweepSettings
from simulators.lidar_world import WorldLidarView
from simulators.scenario import Building, Fire, Place, Scenario, load_scenario
from simulators.world import SimWorld

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "benchmarks" / "scenarios" / "mission-2m-10km.yaml"
BEARING_DEG = 135.0
POINTING_SIGMA_DEG = 0.05
# Wind relative to the line of sight: the direction it blows *from*, as an offset from the
# fire's bearing. Head wind blows from beyond the fire toward the tower.
WINDS = {"cross": 90.0, "head": 0.0, "tail": 180.0}
RANGES_M = (2_000.0, 5_000.0, 10_000.0, 14_000.0, 15_000.0)
SMOKE_AFTER_S = 120.0  # the fire has burnt this long when the lidar looks


class InProcessLidar:
    """A SmokeLidar answering each scan at once from the world, with Poisson shot noise."""

    def __init__(self, view: WorldLidarView, t_unix: float, rng: np.random.Generator) -> None:
        self.view = view
        self.t_unix = t_unix
        self.rng = rng
        self.profiles: list[LidarProfile] = []

    def open(self) -> None: ...

    def close(self) -> None: ...

    def health(self) -> DriverHealth:
        return DriverHealth("lidar (in process)", DriverState.OK)

    def request_scan(self, azimuth_deg: float, elevation_deg: float, shots: int) -> None:
        first, bin_m, expected = self.view(azimuth_deg, elevation_deg, self.t_unix)
        counts = self.rng.poisson(np.clip(expected, 0.0, None) * shots) / shots
        self.profiles.append(LidarProfile(self.t_unix, azimuth_deg, elevation_deg, first, bin_m,
                                          counts.astype(np.float32)))  # fmt: skip

    def read_profile(self, timeout_s: float) -> LidarProfile | None:
        return self.profiles.pop(0) if self.profiles else None


@dataclass
class Row:
    name: str
    trials: int = 0
    found: int = 0
    held: int = 0
    errors_m: list[float] | None = None
    sigmas_m: list[float] | None = None
    scans: list[int] | None = None
    # the 95 % range interval of the camera alone (the wedge's length) and of the lidar fix
    wedges_m: list[float] | None = None
    intervals_m: list[float] | None = None

    def __post_init__(self) -> None:
        self.errors_m, self.sigmas_m, self.scans = [], [], []
        self.wedges_m, self.intervals_m = [], []


def _config(scenario: Scenario, tmp: Path) -> TowerConfig:
    t, w = scenario.tower, scenario.weather
    return load_config(ROOT / "config" / "simulated.yaml", [
        f"tower.lat={t.lat}", f"tower.lon={t.lon}",
        f"tower.ground_elevation_m={t.ground_elevation_m}",
        f"tower.mast_height_m={t.mast_height_m}",
        f"weather.wind_speed_m_s={w.wind_speed_m_s}",
        f"weather.visibility_km={w.visibility_km}",
        f"storage.state_dir={tmp}",
    ])  # fmt: skip


def _probe(cfg: TowerConfig, lidar: InProcessLidar) -> LidarProbe:
    c = cfg.confirmation
    return LidarProbe(
        lidar,
        shots=c.lidar_shots,
        drift_per_rise=cfg.weather.wind_speed_m_s / cfg.geolocation.plume_rise_m_s,
        azimuth_step_deg=c.lidar_azimuth_step_deg,
        max_scans=c.lidar_max_scans,
    )


def _look(cfg: TowerConfig, world: SimWorld, seed: int, elevation_deg: float) -> ProbeResult:
    """The fan as the daemon shoots it at a candidate seen with the head's pointing error."""
    rng = np.random.default_rng(seed)
    t = world.scenario.start_unix + SMOKE_AFTER_S
    lidar = InProcessLidar(WorldLidarView(world), t, rng)
    probe = _probe(cfg, lidar)
    probe.start(BEARING_DEG + rng.normal(0.0, POINTING_SIGMA_DEG),
                elevation_deg + rng.normal(0.0, POINTING_SIGMA_DEG))  # fmt: skip
    while not probe.done:
        if probe.poll() == 0 and not lidar.profiles:
            break  # nothing more will come
    return probe.result()


def _fire_trials(base: Scenario, range_m: float, wind: str, size_m: float, trials: int,
                 tmp: Path) -> Iterator[tuple[int, Scenario, SimWorld, TowerConfig, FireReporter]]:  # fmt: skip
    """One fire on the bearing at range_m in the given wind, a world and reporter per trial."""
    weather = base.weather.model_copy(update={"wind_from_deg": (BEARING_DEG + WINDS[wind]) % 360})
    fire = Fire(id="fire", at=Place(bearing_deg=BEARING_DEG, range_m=range_m), size_m=size_m,
                start_s=0.0)  # fmt: skip
    for trial in range(trials):
        scenario = base.model_copy(update={"fires": [fire], "weather": weather, "seed": trial})
        cfg = _config(scenario, tmp)
        reporter = FireReporter(cfg, AlarmBook(tmp / "alarms.json", cfg.tower.id, cfg.alarm),
                                sink=None, relay=None)  # type: ignore[arg-type]  # fmt: skip
        yield trial, scenario, SimWorld(scenario, trial), cfg, reporter


def _no_smoke_scenarios(base: Scenario, trials: int, *, visibility_km: float | None = None,
                        building_m: float | None = None) -> Iterator[tuple[int, Scenario]]:  # fmt: skip
    """No fire; optionally fog or haze, or a building on the bearing; one per trial."""
    weather = base.weather
    if visibility_km is not None:
        weather = weather.model_copy(update={"visibility_km": visibility_km})
    world_spec = base.world
    if building_m is not None:
        house = Building(at=Place(bearing_deg=BEARING_DEG, range_m=building_m), width_m=20.0,
                         height_m=8.0)  # fmt: skip
        world_spec = world_spec.model_copy(update={"buildings": [house]})
    for trial in range(trials):
        yield trial, base.model_copy(update={"fires": [], "weather": weather, "world": world_spec,
                                             "seed": trial})  # fmt: skip


def fire_row(base: Scenario, range_m: float, wind: str, size_m: float, trials: int,
             tmp: Path) -> Row:  # fmt: skip
    row = Row(f"{size_m:g} m fire {range_m / 1000:>4.0f} km {wind:<5} wind")
    for trial, scenario, world, cfg, reporter in _fire_trials(base, range_m, wind, size_m,
                                                              trials, tmp):  # fmt: skip
        lat, lon = destination(scenario.tower.lat, scenario.tower.lon, BEARING_DEG, range_m)
        ground_m = cfg.tower.ground_elevation_m + cfg.geolocation.canopy_height_m
        _, elevation = bearing_elevation_to(reporter.site, lat, lon, ground_m,
                                            cfg.geolocation.refraction_k)  # fmt: skip
        result = _look(cfg, world, 1000 + trial, elevation)
        geo = reporter.geolocate(BEARING_DEG, elevation, result)
        camera = reporter.geolocate(BEARING_DEG, elevation, None)
        row.trials += 1
        assert row.scans is not None and row.errors_m is not None and row.sigmas_m is not None
        assert row.wedges_m is not None and row.intervals_m is not None
        row.scans.append(int(result.evidence["scans_answered"]))
        row.wedges_m.append(camera.range_max_m - camera.range_min_m)
        if geo.range_source != "lidar" or geo.range_m is None:
            continue
        row.found += 1
        row.errors_m.append(geo.range_m - range_m)
        row.sigmas_m.append(geo.range_sigma_m)
        row.intervals_m.append(geo.range_max_m - geo.range_min_m)
        row.held += int(geo.range_min_m <= range_m <= geo.range_max_m)
    return row


def no_smoke_row(base: Scenario, name: str, trials: int, tmp: Path,
                 **case: float) -> Row:  # fmt: skip
    row = Row(name)
    for trial, scenario in _no_smoke_scenarios(base, trials, **case):
        world = SimWorld(scenario, trial)
        cfg = _config(scenario, tmp)
        result = _look(cfg, world, 2000 + trial, -0.25)
        row.trials += 1
        assert row.scans is not None
        row.scans.append(int(result.evidence["scans_answered"]))
        row.found += int(result.range_m is not None)
    return row


SWEEP_HALF_SPAN_DEG = 3.0
SWEEP_RANGES_M = (2_000.0, 5_000.0, 10_000.0, 15_000.0)


def _sweep_once(cfg: TowerConfig, world: SimWorld, seed: int) -> tuple[list[SmokeFix], int]:
    """One cycle of the daemon's sweep over the sector around the bearing; fixes, scans."""
    rng = np.random.default_rng(seed)
    t = world.scenario.start_unix + SMOKE_AFTER_S
    lidar = InProcessLidar(WorldLidarView(world), t, rng)
    c = cfg.lidar_sweep
    sweep = LidarSweep(lidar, SweepSettings(BEARING_DEG - SWEEP_HALF_SPAN_DEG,
                                            2 * SWEEP_HALF_SPAN_DEG, c.elevations_deg,
                                            c.azimuth_step_deg, c.shots, c.quiet_after_fix_s))  # fmt: skip
    fixes = []
    now = 0.0
    while sweep.counters["cycles"] < 1 or sweep.chasing:
        fix = sweep.poll(now, paused=False)
        if fix is not None:
            fixes.append(fix)
        now += 0.01
    return fixes, sweep.counters["scans"]


def _inside_ellipse(geo: Geolocation, lat: float, lon: float) -> bool:
    if geo.lat is None or geo.lon is None or geo.uncertainty is None:
        return False
    distance, direction = distance_bearing(geo.lat, geo.lon, lat, lon)
    e = geo.uncertainty
    theta = np.radians(direction - e.orientation_deg)
    along, across = distance * np.cos(theta), distance * np.sin(theta)
    return bool((along / e.semi_major_m) ** 2 + (across / e.semi_minor_m) ** 2 <= 1.0)


def sweep_row(base: Scenario, range_m: float, wind: str, size_m: float, trials: int,
              tmp: Path) -> Row:  # fmt: skip
    row = Row(f"{size_m:g} m fire {range_m / 1000:>4.0f} km {wind:<5} wind")
    for trial, scenario, world, cfg, reporter in _fire_trials(base, range_m, wind, size_m,
                                                              trials, tmp):  # fmt: skip
        fixes, scans = _sweep_once(cfg, world, 3000 + trial)
        row.trials += 1
        assert row.scans is not None and row.errors_m is not None and row.sigmas_m is not None
        assert row.intervals_m is not None
        row.scans.append(scans)
        if not fixes:
            continue
        fix = max(fixes, key=lambda f: f.peak_z)  # the sector holds one fire
        geo, _ = reporter.smoke_geolocation(fix)
        assert geo.range_m is not None
        row.found += 1
        lat, lon = destination(scenario.tower.lat, scenario.tower.lon, BEARING_DEG, range_m)
        distance, _ = distance_bearing(geo.lat, geo.lon, lat, lon)  # type: ignore[arg-type]
        row.errors_m.append(float(distance))
        row.sigmas_m.append(geo.range_sigma_m)
        assert geo.uncertainty is not None
        row.intervals_m.append(geo.uncertainty.semi_major_m)
        row.held += int(_inside_ellipse(geo, lat, lon))
    return row


def sweep_no_smoke_row(base: Scenario, name: str, trials: int, tmp: Path,
                       **case: float) -> Row:  # fmt: skip
    row = Row(name)
    for trial, scenario in _no_smoke_scenarios(base, trials, **case):
        fixes, scans = _sweep_once(_config(scenario, tmp), SimWorld(scenario, trial), 4000 + trial)
        row.trials += 1
        assert row.scans is not None
        row.scans.append(scans)
        row.found += int(bool(fixes))
    return row


NO_SMOKE_CASES: tuple[tuple[str, dict[str, float]], ...] = (
    ("fog, 1 km visibility", {"visibility_km": 1.0}),
    ("haze, 5 km visibility", {"visibility_km": 5.0}),
    ("building at 3 km on the bearing", {"building_m": 3000.0}),
    ("clear air", {}),
)


def print_sweep_rows(base: Scenario, trials: int, tmp: Path) -> None:
    print(f"-- lidar sweep, {trials} trials per row, one cycle over {2 * SWEEP_HALF_SPAN_DEG:g}° "
          "around the fire, no camera cue")  # fmt: skip
    print(f"{'row':<28} {'found':>7} {'held':>7} {'median miss':>12} {'p95 miss':>9} "
          f"{'median σr':>10} {'ellipse a':>10} {'scans':>6}")  # fmt: skip
    for size_m in (2.0, 6.0):
        for range_m in SWEEP_RANGES_M:
            for wind in WINDS:
                r = sweep_row(base, range_m, wind, size_m, trials, tmp)
                assert r.errors_m is not None and r.sigmas_m is not None and r.scans is not None
                assert r.intervals_m is not None
                miss = f"{statistics.median(r.errors_m):.0f} m" if r.errors_m else "-"
                p95 = f"{float(np.percentile(r.errors_m, 95)):.0f} m" if r.errors_m else "-"
                sig = f"{statistics.median(r.sigmas_m):.0f} m" if r.sigmas_m else "-"
                axis = f"{statistics.median(r.intervals_m):.0f} m" if r.intervals_m else "-"
                held = f"{r.held}/{r.found}" if r.found else "-"
                print(f"{r.name:<28} {r.found:>3}/{r.trials:<3} {held:>7} {miss:>12} {p95:>9} "
                      f"{sig:>10} {axis:>10} {statistics.median(r.scans):>6.0f}")  # fmt: skip
    print("-- sweep, no smoke: a plume reported here is a false one")
    for name, kwargs in NO_SMOKE_CASES:
        r = sweep_no_smoke_row(base, name, trials, tmp, **kwargs)
        assert r.scans is not None
        print(f"{r.name:<34} false plumes {r.found}/{r.trials}  "
              f"scans {statistics.median(r.scans):.0f}")  # fmt: skip


def main() -> None:
    # the sweep logs each plume it reports; the table says it once per row
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per row")
    parser.add_argument("--only", choices=("fan", "sweep"), help="run one part only")
    args = parser.parse_args()
    base = load_scenario(BASE)
    tmp = ROOT / "var" / "lidar-quality"
    tmp.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.only != "fan":
        print_sweep_rows(base, args.trials, tmp)
    if args.only == "sweep":
        print(f"run time {time.perf_counter() - started:.1f} s")
        return
    print(f"-- cued lidar fan, {args.trials} trials per row (mission-2m-10km's reed, "
          f"{base.weather.wind_speed_m_s:g} m/s wind, {base.weather.visibility_km:g} km visibility)")  # fmt: skip
    print(f"{'row':<28} {'found':>7} {'held':>7} {'median err':>11} {'p95 |err|':>10} "
          f"{'median σ':>9} {'scans':>6} {'camera wedge':>13} {'wedge/fix':>10}")  # fmt: skip
    for size_m in (2.0, 6.0):
        for range_m in RANGES_M:
            for wind in WINDS:
                r = fire_row(base, range_m, wind, size_m, args.trials, tmp)
                assert r.errors_m is not None and r.sigmas_m is not None and r.scans is not None
                err = f"{statistics.median(r.errors_m):+.1f} m" if r.errors_m else "-"
                p95 = (f"{float(np.percentile(np.abs(r.errors_m), 95)):.1f} m"
                       if r.errors_m else "-")  # fmt: skip
                sig = f"{statistics.median(r.sigmas_m):.1f} m" if r.sigmas_m else "-"
                held = f"{r.held}/{r.found}" if r.found else "-"
                assert r.wedges_m is not None and r.intervals_m is not None
                wedge_m = statistics.median(r.wedges_m)
                ratio = (
                    f"{wedge_m / statistics.median(r.intervals_m):.0f}×" if r.intervals_m else "-"
                )
                print(f"{r.name:<28} {r.found:>3}/{r.trials:<3} {held:>7} {err:>11} {p95:>10} "
                      f"{sig:>9} {statistics.median(r.scans):>6.0f} {wedge_m / 1000:>10.1f} km "
                      f"{ratio:>10}")  # fmt: skip
    print("-- no smoke: a plume found here is a false one")
    for name, kwargs in NO_SMOKE_CASES:
        r = no_smoke_row(base, name, args.trials, tmp, **kwargs)
        assert r.scans is not None
        print(f"{r.name:<34} false plumes {r.found}/{r.trials}  "
              f"scans {statistics.median(r.scans):.0f}")  # fmt: skip
    print(f"run time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
