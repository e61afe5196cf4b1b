"""`towerwatch simulate tower`: one process that is a tower, on the real protocols."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from edge.cli_support import EXIT_USAGE, config_options, fail, load_or_exit
from edge.logs import setup_logging


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
    """Serve a simulated tower where the config's devices point (frame stream, ONVIF head)."""
    cfg = load_or_exit(config, sets)
    setup_logging(log_level or cfg.logging.level, cfg.logging.format)
    from drivers.base import DriverError
    from edge.secrets import FileSecretStore
    from simulators.scenario import ScenarioError, load_scenario
    from simulators.tower import SimulatedTower, TowerSpec

    thermal, ptz = cfg.thermal, cfg.ptz
    if getattr(thermal, "type", None) != "frame_stream":
        fail(
            f"{config}: thermal.type: the simulated tower serves 'frame_stream', not {thermal.type!r}",
            EXIT_USAGE,
        )  # type: ignore[attr-defined]
    if getattr(ptz, "type", None) != "onvif":
        fail(
            f"{config}: ptz.type: the simulated tower serves 'onvif', not {ptz.type!r}", EXIT_USAGE
        )  # type: ignore[attr-defined]
    try:
        scenario = load_scenario(scenario_path)
        password = FileSecretStore(cfg.secrets_directory()).read(ptz.password_secret)  # type: ignore[attr-defined]
    except ScenarioError as exc:
        fail(str(exc), EXIT_USAGE)
    except DriverError as exc:
        fail(str(exc), EXIT_USAGE)
    cam = cfg.camera
    spec = TowerSpec(
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
        frame_host=thermal.host,  # type: ignore[attr-defined]
        frame_port=thermal.port,  # type: ignore[attr-defined]
        onvif_host=ptz.host,  # type: ignore[attr-defined]
        onvif_port=ptz.port,  # type: ignore[attr-defined]
        onvif_username=ptz.username,  # type: ignore[attr-defined]
        onvif_password=password,
        wide_hfov_deg=cam.hfov_deg,
        zoom_hfov_deg=cam.zoom_hfov_deg,
    )
    sim = SimulatedTower(spec, scenario, speed=speed, fps=fps, seed=seed)
    stop = threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    try:
        sim.start()
    except OSError as exc:
        fail(f"simulated tower cannot listen: {exc}")
    if endpoints_file:
        sim.write_endpoints(Path(endpoints_file))
    click.echo(f"simulated tower {spec.tower_id}: frames on {spec.frame_host}:{sim.frames.port}, "
               f"ONVIF at {sim.onvif.url}, scenario {scenario.name!r}, speed {speed:g}x", err=True)  # fmt: skip
    started = sim.clock.now()
    try:
        while not stop.wait(0.2):
            if duration_s is not None and sim.clock.now() - started >= duration_s:
                break
    finally:
        sim.stop()
