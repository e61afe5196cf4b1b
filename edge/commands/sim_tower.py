"""`towerwatch simulate tower`: one process that is a tower, on the real protocols."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from drivers.base import SecretStore
from edge.cli_support import EXIT_USAGE, config_options, fail, load_or_exit
from edge.config import TowerConfig
from edge.logs import setup_logging

if TYPE_CHECKING:
    from simulators.tower import TowerSpec


class SpecError(ValueError):
    """The config asks for a device the simulated tower cannot serve."""


def tower_spec(cfg: TowerConfig, config_label: str, secrets: SecretStore) -> TowerSpec:
    """What the simulated tower serves, read from the daemon's own config.

    The frame stream serves ``thermal`` (and ``visible``); the head is served over the
    ``ptz.type`` the config names (onvif or pelco_d); ``lidar`` (serial), ``gnss`` (nmea)
    and ``relay`` (modbus_rtu), when present, on ptys at their ``port`` paths.
    """
    from simulators.tower import GnssSpec, LidarSpec, OnvifSpec, PelcoDSpec, RelaySpec, TowerSpec

    thermal: Any = cfg.thermal
    ptz: Any = cfg.ptz
    if thermal.type != "frame_stream":
        raise SpecError(
            f"{config_label}: thermal.type: the simulated tower serves 'frame_stream', "
            f"not {thermal.type!r}"
        )
    onvif = pelco_d = None
    if ptz.type == "onvif":
        onvif = OnvifSpec(ptz.host, ptz.port, ptz.username, secrets.read(ptz.password_secret))
    elif ptz.type == "pelco_d":
        pelco_d = PelcoDSpec(ptz.port, ptz.address)
    else:
        raise SpecError(
            f"{config_label}: ptz.type: the simulated tower serves 'onvif' or 'pelco_d', "
            f"not {ptz.type!r}"
        )
    served = {"lidar": "serial", "gnss": "nmea", "relay": "modbus_rtu"}
    for section, kind in served.items():
        device: Any = getattr(cfg, section)
        if device is not None and device.type != kind:
            raise SpecError(
                f"{config_label}: {section}.type: the simulated tower serves {kind!r}, "
                f"not {device.type!r}"
            )
    lidar: Any = cfg.lidar
    gnss: Any = cfg.gnss
    relay: Any = cfg.relay
    cam = cfg.camera
    return TowerSpec(
        tower_id=cfg.tower.id,
        lat=cfg.tower.lat,
        lon=cfg.tower.lon,
        ground_elevation_m=cfg.tower.ground_elevation_m,
        mast_height_m=cfg.tower.mast_height_m,
        camera={
            "width_px": cam.width_px,
            "height_px": cam.height_px,
            "pixel_pitch_um": cam.pixel_pitch_um,
            "focal_length_mm": cam.focal_length_mm,
            "zoom_focal_length_mm": cam.zoom_focal_length_mm,
            "f_number": cam.f_number,
            "netd_mk": cam.netd_mk,
            "lens_efficiency": cam.lens_efficiency,
        },
        frame_host=thermal.host,
        frame_port=thermal.port,
        wide_hfov_deg=cam.hfov_deg,
        zoom_hfov_deg=cam.zoom_hfov_deg,
        onvif=onvif,
        pelco_d=pelco_d,
        lidar=LidarSpec(lidar.port) if lidar is not None else None,
        gnss=GnssSpec(gnss.port) if gnss is not None else None,
        relay=RelaySpec(relay.port, relay.unit, relay.coil) if relay is not None else None,
    )


@click.command("tower")
@config_options
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(dir_okay=False, exists=True),
    default="benchmarks/scenarios/mission-2m-10km.yaml",
    show_default=True,
    help="What happens in the world (fires, traffic, sun, weather).",
)
@click.option("--speed", type=click.FloatRange(0.1, 100.0), default=1.0, show_default=True,
              help="Tower clock speed relative to wall time.")  # fmt: skip
@click.option("--fps", type=click.FloatRange(0.5, 60.0), default=9.0, show_default=True,
              help="Camera frame rate in tower time.")  # fmt: skip
@click.option("--seed", type=int, default=None, help="Override the scenario's random seed.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0.0, min_open=True),
              default=None, help="Stop after this many seconds of tower time.")  # fmt: skip
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default=None, help="Override logging.level from the config.")  # fmt: skip
@click.option("--endpoints-file", type=click.Path(dir_okay=False), default=None,
              help="Write where each simulated device listens (JSON) to this file.")  # fmt: skip
def tower(
    config: str,
    sets: tuple[str, ...],
    scenario_path: str,
    speed: float,
    fps: float,
    seed: int | None,
    duration_s: float | None,
    log_level: str | None,
    endpoints_file: str | None,
) -> None:
    """Serve a simulated tower where the config's devices point (frames, head, lidar, GNSS, relay)."""
    cfg = load_or_exit(config, sets)
    setup_logging(log_level or cfg.logging.level, cfg.logging.format)
    from drivers.base import DriverError
    from edge.secrets import FileSecretStore
    from simulators.scenario import ScenarioError, load_scenario
    from simulators.tower import DevicePathError, SimulatedTower

    try:
        scenario = load_scenario(scenario_path)
        spec = tower_spec(cfg, config, FileSecretStore.from_config(cfg))
        sim = SimulatedTower(spec, scenario, speed=speed, fps=fps, seed=seed)
    except (ScenarioError, SpecError, DriverError, DevicePathError) as exc:
        fail(str(exc), EXIT_USAGE)
    stop = threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    try:
        sim.start()
    except OSError as exc:
        fail(f"simulated tower cannot listen: {exc}")
    try:
        if endpoints_file:
            sim.write_endpoints(Path(endpoints_file))
        click.echo(f"simulated tower {spec.tower_id}: scenario {scenario.name!r}, speed {speed:g}x",
                   err=True)  # fmt: skip
        for name, where in sim.endpoints().items():
            if isinstance(where, dict):
                click.echo(f"  {name}: {where['port']} -> {where['tty']}", err=True)
            elif name in ("frame_stream", "onvif"):
                click.echo(f"  {name}: {where}", err=True)
        started = sim.clock.now()
        while not stop.wait(0.2):
            if duration_s is not None and sim.clock.now() - started >= duration_s:
                break
    finally:
        sim.stop()
