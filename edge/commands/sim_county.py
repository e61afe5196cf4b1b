"""`towerwatch simulate county`: one world, several simulated towers, each where its config points."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from edge.cli_support import EXIT_USAGE, fail
from edge.config import ConfigError, TowerConfig, load_config
from edge.logs import setup_logging

if TYPE_CHECKING:
    from simulators.county import CountyScenario
    from simulators.tower import SimulatedTower, TowerSpec

SERIAL_SECTIONS = ("lidar", "gnss", "relay")


@dataclasses.dataclass
class TowerPlan:
    """One tower of the county: its config, the overrides the simulator and its daemon share."""

    tower_id: str
    config_path: str
    sets: list[str]
    cfg: TowerConfig


def split_tower_sets(assignments: tuple[str, ...], tower_ids: list[str]) -> dict[str, list[str]]:
    """``TOWER:KEY=VALUE`` → {tower: [KEY=VALUE]}; ``*:KEY=VALUE`` applies to every tower."""
    out: dict[str, list[str]] = {t: [] for t in tower_ids}
    for assignment in assignments:
        tower, sep, rest = assignment.partition(":")
        if not sep or "=" not in rest:
            fail(f"--set {assignment}: expected TOWER:KEY=VALUE, e.g. --set tw-01:patrol.dwell_s=3",
                 EXIT_USAGE)  # fmt: skip
        if tower == "*":
            for sets in out.values():
                sets.append(rest)
        elif tower in out:
            out[tower].append(rest)
        else:
            fail(f"--set {assignment}: no tower {tower!r} in the scenario "
                 f"(towers: {', '.join(tower_ids)})", EXIT_USAGE)  # fmt: skip
    return out


def _placement_sets(cfg: TowerConfig, run_dir: Path | None, port: int | None) -> list[str]:
    """Overrides that move a tower's devices: TCP ports from ``port`` and ptys into ``run_dir``."""
    sets: list[str] = []
    visible: Any = cfg.visible
    ptz: Any = cfg.ptz
    if port is not None:
        sets.append(f"thermal.port={port}")
        if visible is not None and visible.type == "frame_stream":
            sets.append(f"visible.port={port}")
        if ptz.type == "onvif":
            sets.append(f"ptz.port={port + 1}")
    if run_dir is not None:
        where = run_dir / cfg.tower.id
        if ptz.type == "pelco_d":
            sets.append(f"ptz.port={where / 'ptz'}")
        for section in SERIAL_SECTIONS:
            if getattr(cfg, section) is not None:
                sets.append(f"{section}.port={where / section}")
        sets.append(f"storage.state_dir={where / 'state'}")
    return sets


def plan_towers(
    county: CountyScenario,
    scenario_path: str,
    tower_sets: dict[str, list[str]],
    run_dir: Path | None,
    port_base: int | None,
) -> list[TowerPlan]:
    """Each tower's config loaded with the county's placement and the user's overrides."""
    plans = []
    for k, tower in enumerate(county.towers):
        own = tower_sets.get(tower.id, [])
        try:
            cfg = load_config(tower.config, own)
            port = None if port_base is None else port_base + 2 * k
            sets = [*_placement_sets(cfg, run_dir, port), *own]
            cfg = load_config(tower.config, sets)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            fail(f"{scenario_path}: towers[{k}] ({tower.id}): config {tower.config} has problems",
                 EXIT_USAGE)  # fmt: skip
        if cfg.tower.id != tower.id:
            fail(f"{scenario_path}: towers[{k}]: id {tower.id!r} but {tower.config} says "
                 f"tower.id {cfg.tower.id!r}", EXIT_USAGE)  # fmt: skip
        plans.append(TowerPlan(tower.id, tower.config, sets, cfg))
    return plans


def daemon_sets(plan: TowerPlan, sim: SimulatedTower) -> list[str]:
    """What `towerwatch run --config <config>` needs to reach this simulated tower's devices."""
    ptz: Any = plan.cfg.ptz
    visible: Any = plan.cfg.visible
    actual = [f"thermal.port={sim.frames.port}"]
    if visible is not None and visible.type == "frame_stream":
        actual.append(f"visible.port={sim.frames.port}")
    if sim.onvif is not None and ptz.type == "onvif":
        actual.append(f"ptz.port={sim.onvif.port}")
    moved = {s.split("=", 1)[0] for s in actual}
    return [s for s in plan.sets if s.split("=", 1)[0] not in moved] + actual


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@click.command("county")
@click.option("--scenario", "scenario_path", required=True,
              type=click.Path(dir_okay=False, exists=True),
              help="County scenario: its towers (id + config) and what happens in the world.")  # fmt: skip
@click.option("--speed", type=click.FloatRange(0.1, 100.0), default=1.0, show_default=True,
              help="Tower clock speed relative to wall time (one clock for every tower).")  # fmt: skip
@click.option("--fps", type=click.FloatRange(0.5, 60.0), default=9.0, show_default=True,
              help="Camera frame rate in tower time.")  # fmt: skip
@click.option("--seed", type=int, default=None, help="Override the scenario's random seed.")
@click.option("--port-base", type=click.IntRange(0, 65000), default=None,
              help="Tower k serves frames on P+2k and ONVIF on P+2k+1; 0: free ports chosen "
                   "by the system (read them from --endpoints-file).")  # fmt: skip
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Put each tower's pty links (and its daemon's state) under DIR/<tower id>/.")  # fmt: skip
@click.option("--set", "sets", multiple=True, metavar="TOWER:KEY=VALUE",
              help="Override a key of one tower's config (TOWER '*': every tower).")  # fmt: skip
@click.option("--duration", "duration_s", type=click.FloatRange(min=0.0, min_open=True),
              default=None, help="Stop after this many seconds of tower time.")  # fmt: skip
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)  # fmt: skip
@click.option("--endpoints-file", type=click.Path(dir_okay=False), default=None,
              help="Write every tower's devices and its daemon's --set overrides (JSON) here; removed on exit.")  # fmt: skip
def county(
    scenario_path: str,
    speed: float,
    fps: float,
    seed: int | None,
    port_base: int | None,
    run_dir: str | None,
    sets: tuple[str, ...],
    duration_s: float | None,
    log_level: str,
    endpoints_file: str | None,
) -> None:
    """Serve every tower of a county scenario, each where its own config points."""
    setup_logging(log_level, "auto")
    from drivers.base import DriverError
    from edge.commands.sim_tower import SpecError, tower_spec
    from edge.secrets import FileSecretStore
    from simulators.clock import SimClock
    from simulators.county import load_county
    from simulators.scenario import ScenarioError, Tower
    from simulators.tower import DevicePathError, SimulatedTower

    try:
        scn = load_county(scenario_path)
    except ScenarioError as exc:
        fail(str(exc), EXIT_USAGE)
    if seed is not None:
        scn = scn.model_copy(update={"seed": seed})
    tower_sets = split_tower_sets(sets, [t.id for t in scn.towers])
    root = Path(run_dir).resolve() if run_dir else None
    plans = plan_towers(scn, scenario_path, tower_sets, root, port_base or None)
    clock = SimClock(scn.start_unix, speed)
    sims: list[SimulatedTower] = []
    for k, plan in enumerate(plans):
        cfg = plan.cfg
        try:
            spec: TowerSpec = tower_spec(cfg, plan.config_path,
                                         FileSecretStore.from_config(cfg))  # fmt: skip
            if port_base == 0:
                spec = _on_free_ports(spec)
            t = cfg.tower
            where = Tower(id=t.id, lat=t.lat, lon=t.lon, ground_elevation_m=t.ground_elevation_m,
                          mast_height_m=t.mast_height_m)  # fmt: skip
            sims.append(SimulatedTower(spec, scn.tower_scenario(k, where), fps=fps, clock=clock))
        except (ScenarioError, SpecError, DriverError, DevicePathError, ValueError) as exc:
            fail(f"{scenario_path}: towers[{k}] ({plan.tower_id}): {exc}", EXIT_USAGE)
    stop = threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    started: list[SimulatedTower] = []
    try:
        for plan, sim in zip(plans, sims, strict=True):
            try:
                sim.start()
            except OSError as exc:
                fail(f"simulated tower {plan.tower_id} ({plan.config_path}) cannot listen: {exc}")
            started.append(sim)
        report = _endpoints(scn.name, scenario_path, speed, plans, sims)
        if endpoints_file:
            write_json_atomically(Path(endpoints_file), report)
        click.echo(f"simulated county {scn.name!r}: {len(sims)} towers, speed {speed:g}x",
                   err=True)  # fmt: skip
        for tower_id, where in report["towers"].items():
            click.echo(f"  {tower_id}: frames {where['frame_stream']}, "
                       f"head {where.get('onvif') or where.get('ptz')}", err=True)  # fmt: skip
        begun = clock.now()
        while not stop.wait(0.2):
            if duration_s is not None and clock.now() - begun >= duration_s:
                break
    finally:
        for sim in started:
            sim.stop()
        if endpoints_file:  # a stale file would point the next reader at dead ports
            Path(endpoints_file).unlink(missing_ok=True)


def _on_free_ports(spec: TowerSpec) -> TowerSpec:
    onvif = spec.onvif and dataclasses.replace(spec.onvif, port=0)
    return dataclasses.replace(spec, frame_port=0, onvif=onvif)


def _endpoints(
    name: str, scenario_path: str, speed: float, plans: list[TowerPlan], sims: list[SimulatedTower]
) -> dict[str, Any]:
    towers = {}
    for plan, sim in zip(plans, sims, strict=True):
        where = sim.endpoints()
        towers[plan.tower_id] = {
            "config": plan.config_path,
            "lat": sim.spec.lat,
            "lon": sim.spec.lon,
            "frame_stream": where["frame_stream"],
            **{k: where[k] for k in ("onvif", "ptz", *SERIAL_SECTIONS) if k in where},
            "daemon_sets": daemon_sets(plan, sim),
        }
    return {"scenario": name, "file": scenario_path, "speed": speed, "towers": towers}
