"""`towerwatch ptz where|goto|jog|release`: move and read the head, through the daemon if it runs.

With a daemon running, the head is borrowed from the patrol through the control socket
(``head.pause``, with an expiry so a forgotten session cannot keep the tower blind) and
moved by the daemon's own driver; ``release`` gives it back at once. Without a daemon
the head's driver is opened here. Angles are true azimuth and elevation in degrees;
``--raw`` shows the head's own angles through the configured calibration.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from drivers.ptz_calibration import PtzCalibration
from edge.cli_support import (
    EXIT_FAILURE,
    EXIT_USAGE,
    config_options,
    echo_json,
    fail,
    json_option,
    load_or_exit,
    tool_logging,
)
from edge.commands.status import call_or_exit, client_for, runtime_dir_option
from edge.config import TowerConfig
from edge.control import ControlClient, ControlError, DaemonNotRunning

OWNER = "towerwatch-ptz"
# How long a manual session keeps the head from the patrol unless released or renewed.
LEASE_S = 600.0
# A head that has not reported its position this long after a move is reported as moving.
SETTLE_TIMEOUT_S = 30.0


class HeadAccess:
    """The head, either borrowed from the running daemon or opened here."""

    def __init__(self, cfg: TowerConfig, runtime_dir: Path | None) -> None:
        tool_logging()
        self.cfg = cfg
        self._client: ControlClient | None = client_for(runtime_dir)
        self._driver: Any = None
        try:
            self._client.call("ping")
        except DaemonNotRunning:
            self._client = None
        except ControlError as exc:
            fail(f"control socket: {exc}", EXIT_FAILURE)

    @property
    def through_daemon(self) -> bool:
        return self._client is not None

    def _open_driver(self) -> Any:
        if self._driver is None:
            from drivers.base import DriverError
            from drivers.registry import driver_module
            from edge.secrets import FileSecretStore

            settings: Any = self.cfg.ptz
            try:
                driver = driver_module("ptz", settings.type).Driver(
                    settings, FileSecretStore.from_config(self.cfg)
                )
                driver.open()
            except DriverError as exc:
                fail(str(exc), EXIT_FAILURE)
            if not driver.wait_connected(10.0):
                error = driver.health().last_error or "no answer"
                driver.close()
                fail(f"ptz: not connected in 10 s: {error}", EXIT_FAILURE)
            self._driver = driver
        return self._driver

    def where(self) -> dict[str, Any]:
        if self._client is not None:
            return call_or_exit(self._client, "ptz.where")
        s = self._open_driver().status()
        return {"pan_deg": s.pan_deg, "tilt_deg": s.tilt_deg, "hfov_deg": s.hfov_deg,
                "moving": s.moving, "t": s.t}  # fmt: skip

    def _borrow(self) -> None:
        assert self._client is not None
        call_or_exit(self._client, "head.pause", owner=OWNER, timeout_s=LEASE_S)

    def goto(self, pan_deg: float, tilt_deg: float) -> None:
        if self._client is not None:
            self._borrow()
            call_or_exit(self._client, "ptz.goto", pan_deg=pan_deg, tilt_deg=tilt_deg)
        else:
            self._run(lambda d: d.absolute_move(pan_deg, tilt_deg))

    def jog(self, dpan_deg: float, dtilt_deg: float) -> None:
        if self._client is not None:
            self._borrow()
            call_or_exit(self._client, "ptz.jog", dpan_deg=dpan_deg, dtilt_deg=dtilt_deg)
        else:
            self._run(lambda d: d.relative_move(dpan_deg, dtilt_deg))

    def _run(self, move: Any) -> None:
        from drivers.base import DriverError

        try:
            move(self._open_driver())
        except DriverError as exc:
            fail(str(exc), EXIT_FAILURE)

    def wait_settled(self) -> dict[str, Any]:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        position = self.where()
        while position.get("moving") and time.monotonic() < deadline:
            time.sleep(0.2)
            position = self.where()
        return position

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
            self._driver = None


def raw_angles(cfg: TowerConfig, pan_deg: float, tilt_deg: float) -> tuple[float, float]:
    calibration: PtzCalibration = cfg.ptz.calibration  # type: ignore[attr-defined]
    return calibration.to_device(pan_deg, tilt_deg)


def _show(cfg: TowerConfig, position: dict[str, Any], as_json: bool, raw: bool) -> None:
    if raw or as_json:
        raw_pan, raw_tilt = raw_angles(cfg, position["pan_deg"], position["tilt_deg"])
        position = position | {"pan_raw_deg": raw_pan, "tilt_raw_deg": raw_tilt}
    if as_json:
        echo_json(position)
        return
    line = (
        f"bearing {position['pan_deg']:.3f}°, elevation {position['tilt_deg']:+.3f}°, "
        f"hfov {position['hfov_deg']:.2f}°{' (moving)' if position.get('moving') else ''}"
    )
    if raw:
        line += (
            f"; raw pan {position['pan_raw_deg']:.3f}°, raw tilt {position['tilt_raw_deg']:+.3f}°"
        )
    click.echo(line)


@click.group("ptz")
def group() -> None:
    """Read and move the pan-tilt head (borrowed from the patrol while a daemon runs)."""


def _head_options(func: Any) -> Any:
    return config_options(runtime_dir_option(json_option(func)))


@group.command("where")
@_head_options
@click.option("--raw", is_flag=True, help="Also show the head's own angles (for landmarks).")
def where(
    config: str, sets: tuple[str, ...], runtime_dir: Path | None, as_json: bool, raw: bool
) -> None:
    """Where the head points."""
    cfg = load_or_exit(config, sets)
    head = HeadAccess(cfg, runtime_dir)
    try:
        _show(cfg, head.where(), as_json, raw)
    finally:
        head.close()


@group.command("goto")
@_head_options
@click.option("--bearing", "bearing_deg", type=float, help="True bearing, degrees [0, 360).")
@click.option("--tilt", "tilt_deg", type=float, help="Elevation, degrees (negative is down).")
@click.option("--lat", type=float, help="Point at a position instead (WGS-84).")
@click.option("--lon", type=float)
@click.option(
    "--height-m", type=float, default=None, help="Height of that point above MSL "
    "(default: the tower's ground elevation)."
)  # fmt: skip
def goto(
    config: str,
    sets: tuple[str, ...],
    runtime_dir: Path | None,
    as_json: bool,
    bearing_deg: float | None,
    tilt_deg: float | None,
    lat: float | None,
    lon: float | None,
    height_m: float | None,
) -> None:
    """Point at a bearing and elevation, or at a lat/lon."""
    cfg = load_or_exit(config, sets)
    pan, tilt = target(cfg, bearing_deg, tilt_deg, lat, lon, height_m)
    head = HeadAccess(cfg, runtime_dir)
    try:
        head.goto(pan, tilt)
        _show(cfg, head.wait_settled(), as_json, raw=False)
    finally:
        head.close()


def target(
    cfg: TowerConfig,
    bearing_deg: float | None,
    tilt_deg: float | None,
    lat: float | None,
    lon: float | None,
    height_m: float | None,
) -> tuple[float, float]:
    """The (bearing, elevation) asked for; one clear line and exit 2 for bad input."""
    by_bearing = bearing_deg is not None
    by_point = lat is not None or lon is not None
    if by_bearing == by_point:
        fail("give either --bearing (and --tilt) or --lat and --lon", EXIT_USAGE)
    if by_point:
        if lat is None or lon is None:
            fail("--lat and --lon go together", EXIT_USAGE)
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            fail(f"--lat {lat} --lon {lon}: not a WGS-84 position", EXIT_USAGE)
        if tilt_deg is not None:
            fail("--tilt goes with --bearing; a position sets its own elevation", EXIT_USAGE)
        from edge.geolocation import TowerSite, bearing_elevation_to

        t = cfg.tower
        site = TowerSite(t.lat, t.lon, t.camera_altitude_m)
        try:
            return bearing_elevation_to(
                site,
                lat,
                lon,
                t.ground_elevation_m if height_m is None else height_m,
                cfg.geolocation.refraction_k,
            )
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
    assert bearing_deg is not None
    if not 0.0 <= bearing_deg < 360.0:
        fail(f"--bearing {bearing_deg}: out of range, give 0 <= bearing < 360", EXIT_USAGE)
    tilt = cfg.patrol.tilt_deg if tilt_deg is None else tilt_deg
    if not -90.0 <= tilt <= 90.0:
        fail(f"--tilt {tilt}: out of range, give -90 <= tilt <= 90", EXIT_USAGE)
    return bearing_deg, tilt


@group.command("jog")
@_head_options
@click.option("--pan", "dpan_deg", type=click.FloatRange(-180.0, 180.0), default=0.0,
              help="Degrees to turn, positive clockwise.")  # fmt: skip
@click.option("--tilt", "dtilt_deg", type=click.FloatRange(-90.0, 90.0), default=0.0,
              help="Degrees to tilt, positive up.")  # fmt: skip
def jog(
    config: str,
    sets: tuple[str, ...],
    runtime_dir: Path | None,
    as_json: bool,
    dpan_deg: float,
    dtilt_deg: float,
) -> None:
    """Move by a small step (end clockwise and upward when centring a landmark)."""
    cfg = load_or_exit(config, sets)
    head = HeadAccess(cfg, runtime_dir)
    try:
        head.jog(dpan_deg, dtilt_deg)
        _show(cfg, head.wait_settled(), as_json, raw=False)
    finally:
        head.close()


@group.command("release")
@runtime_dir_option
def release(runtime_dir: Path | None) -> None:
    """Give the head back to the patrol now (it returns by itself after 10 minutes)."""
    call_or_exit(client_for(runtime_dir), "head.resume", owner=OWNER)
    click.echo("the patrol has the head again", err=True)
