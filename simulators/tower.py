"""A whole simulated tower in one process: the world, the head, and devices on real protocols.

It reads the same config file as the daemon and serves each configured device where the
daemon will look for it: the frame stream on ``thermal.port``; the head as an ONVIF PTZ
endpoint on ``ptz.port`` or as a Pelco-D head on a pseudo-terminal at ``ptz.port``; the
smoke lidar, GNSS receiver and Modbus relay board on pseudo-terminals whose symlinks sit
exactly at the ``port`` paths of their sections. Frames show the world rendered for the
head's true pose at the tower's clock, which may run ``speed`` × faster than wall time;
frame timestamps, GNSS sentences and lidar profiles carry that clock.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from simulators.clock import SimClock
from simulators.frame_server import FrameStreamServer, ProducedFrame
from simulators.gnss import GnssSimulator
from simulators.head import SimulatedHead
from simulators.lidar import LidarSimulator
from simulators.lidar_world import WorldLidarView
from simulators.onvif_server import OnvifPtzServer
from simulators.pelco_d_head import PelcoDHeadSimulator
from simulators.relay_board import RelayBoardSimulator
from simulators.scenario import Camera, Scenario, Tower
from simulators.serial_devices import PtySerialDevice
from simulators.world import SimWorld

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class OnvifSpec:
    """The head as an ONVIF PTZ endpoint over HTTP."""

    host: str
    port: int
    username: str
    password: str


@dataclass(frozen=True)
class PelcoDSpec:
    """The head as a Pelco-D device on a pty whose symlink is ``port``."""

    port: str
    address: int = 1


@dataclass(frozen=True)
class LidarSpec:
    port: str
    prf_hz: float = 1000.0  # shots per second of tower time


@dataclass(frozen=True)
class GnssSpec:
    port: str


@dataclass(frozen=True)
class RelaySpec:
    port: str
    unit: int = 1
    coil: int = 0


@dataclass(frozen=True)
class TowerSpec:
    """What the simulated tower needs from the daemon's config (plain values: no edge types).

    The head is served over ONVIF or Pelco-D, whichever is given (exactly one); lidar,
    GNSS and relay are served when given. Serial ``port`` paths are where the pty
    symlinks are made; a relative path is relative to the working directory.
    """

    tower_id: str
    lat: float
    lon: float
    ground_elevation_m: float
    mast_height_m: float
    camera: dict[
        str, float
    ]  # width_px, height_px, pixel_pitch_um, focal lengths, f_number, netd_mk
    frame_host: str
    frame_port: int
    wide_hfov_deg: float
    zoom_hfov_deg: float
    onvif: OnvifSpec | None = None
    pelco_d: PelcoDSpec | None = None
    lidar: LidarSpec | None = None
    gnss: GnssSpec | None = None
    relay: RelaySpec | None = None

    def __post_init__(self) -> None:
        if (self.onvif is None) == (self.pelco_d is None):
            raise ValueError("tower spec: give the head as either ONVIF or Pelco-D")


class DevicePathError(ValueError):
    """A serial device's configured path cannot be used for its pty symlink."""


def prepare_link_path(device: str, key: str, path: str) -> str:
    """Make the folder of a pty symlink; refuse a path that is something other than a link."""
    if os.path.lexists(path) and not os.path.islink(path):
        raise DevicePathError(
            f"{device} ({key}={path}): the path exists and is not a symlink; the simulated "
            "tower puts its pseudo-terminal link there, so point the config elsewhere or "
            "remove it"
        )
    parent = os.path.dirname(path)
    if parent:
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise DevicePathError(
                f"{device} ({key}={path}): cannot create {parent}: {exc}"
            ) from exc
    return path


MAX_TOWER_MISMATCH_DEG = 0.01  # ≈ 1 km: beyond this the scenario was laid out elsewhere


def align_scenario(scenario: Scenario, spec: TowerSpec) -> Scenario:
    """The scenario's world placed around the configured tower and seen through its camera.

    The config is what the daemon believes; a scenario laid out around another place
    would put the sun and every lat/lon feature somewhere else, so it is reported.
    """
    scn_tower = scenario.tower
    if (
        abs(scn_tower.lat - spec.lat) > MAX_TOWER_MISMATCH_DEG
        or abs(scn_tower.lon - spec.lon) > MAX_TOWER_MISMATCH_DEG
    ):
        log.warning(
            "scenario tower differs from the config's; using the config's",
            scenario_lat=scn_tower.lat,
            scenario_lon=scn_tower.lon,
            config_lat=spec.lat,
            config_lon=spec.lon,
        )
    tower = Tower(
        id=spec.tower_id,
        lat=spec.lat,
        lon=spec.lon,
        ground_elevation_m=spec.ground_elevation_m,
        mast_height_m=spec.mast_height_m,
    )
    camera_fields = scenario.camera.model_dump()
    camera_fields.update(spec.camera)
    return scenario.model_copy(update={"tower": tower, "camera": Camera(**camera_fields)})


class _FrameProducer:
    """Renders thermal and visible together; each stream takes the newest render."""

    def __init__(self, world: SimWorld, head: SimulatedHead, clock: SimClock) -> None:
        self._world = world
        self._head = head
        self._clock = clock
        self._lock = threading.Lock()
        self._visible: ProducedFrame | None = None
        self.renders = 0

    def __call__(self, stream: str) -> ProducedFrame:
        with self._lock:
            if stream == "visible" and self._visible is not None:
                return self._visible
            t = self._clock.now()
            pan, tilt, hfov = self._head.true_pose()
            thermal, visible, _truth = self._world.render(pan, tilt, hfov, t)
            self.renders += 1
            vfov = self._world.pose_for(pan, tilt, hfov).vfov_deg
            shutter = self._world.sensor.in_nuc(t)
            self._visible = ProducedFrame(visible, t, pan, tilt, hfov, vfov, shutter)
            if stream == "visible":
                return self._visible
            return ProducedFrame(thermal, t, pan, tilt, hfov, vfov, shutter)


class SimulatedTower:
    """Start the servers, run until stopped; ``endpoints()`` says where each device is."""

    def __init__(
        self, spec: TowerSpec, scenario: Scenario, *, speed: float = 1.0, fps: float = 9.0,
        seed: int | None = None, clock: SimClock | None = None,
    ) -> None:  # fmt: skip
        """``clock``: a tower clock shared with other towers of one world (then ``speed`` is its)."""
        self.spec = spec
        self.scenario = align_scenario(scenario, spec)
        self.clock = clock if clock is not None else SimClock(self.scenario.start_unix, speed)
        speed = self.clock.speed
        self.world = SimWorld(self.scenario, seed)
        start_pan, start_tilt = 0.0, -0.3
        self.head = SimulatedHead(
            self.clock,
            hfov_min_deg=min(spec.zoom_hfov_deg, spec.wide_hfov_deg * 0.999),
            hfov_max_deg=spec.wide_hfov_deg,
            initial_raw_pan_deg=start_pan,
            initial_raw_tilt_deg=start_tilt,
        )
        self.producer = _FrameProducer(self.world, self.head, self.clock)
        # fps is the camera's rate in tower time: the server sends speed × faster.
        self.frames = FrameStreamServer(
            self.producer, fps=fps * speed, host=spec.frame_host, port=spec.frame_port
        )
        self.onvif: OnvifPtzServer | None = None
        if spec.onvif is not None:
            self.onvif = OnvifPtzServer(
                self.head,
                self.clock,
                username=spec.onvif.username,
                password=spec.onvif.password,
                host=spec.onvif.host,
                port=spec.onvif.port,
            )
        # Serial devices by config section, each behind a symlink at its configured port.
        self.serial: dict[str, PtySerialDevice] = {}
        if spec.pelco_d is not None:
            self.pelco_d = PelcoDHeadSimulator(
                self.head,
                address=spec.pelco_d.address,
                link_path=prepare_link_path("ptz", "ptz.port", spec.pelco_d.port),
            )
            self.serial["ptz"] = self.pelco_d
        self.lidar: LidarSimulator | None = None
        if spec.lidar is not None:
            self.lidar = LidarSimulator(
                self.clock,
                WorldLidarView(self.world),
                prf_hz=spec.lidar.prf_hz,
                seed=self.world.seed,
                link_path=prepare_link_path("lidar", "lidar.port", spec.lidar.port),
            )
            self.serial["lidar"] = self.lidar
        self.gnss: GnssSimulator | None = None
        if spec.gnss is not None:
            self.gnss = GnssSimulator(
                self.clock,
                spec.lat,
                spec.lon,
                spec.ground_elevation_m + spec.mast_height_m,
                link_path=prepare_link_path("gnss", "gnss.port", spec.gnss.port),
            )
            self.serial["gnss"] = self.gnss
        self.relay: RelayBoardSimulator | None = None
        if spec.relay is not None:
            self.relay = RelayBoardSimulator(
                unit=spec.relay.unit,
                coils=max(8, spec.relay.coil + 1),
                link_path=prepare_link_path("relay", "relay.port", spec.relay.port),
            )
            self.serial["relay"] = self.relay

    def start(self) -> None:
        started: list[PtySerialDevice] = []
        try:
            for device in self.serial.values():
                device.start()
                started.append(device)
            if self.onvif is not None:
                self.onvif.start()
            self.frames.start()
        except BaseException:
            for device in started:
                device.stop()
            if self.onvif is not None:
                self.onvif.stop()
            raise
        log.info("simulated tower up", **self.endpoints())

    def stop(self) -> None:
        self.frames.stop()
        if self.onvif is not None:
            self.onvif.stop()
        for device in self.serial.values():
            device.stop()

    def endpoints(self) -> dict[str, Any]:
        """Where each device is: TCP address, URL or the pty symlink (and its /dev/pts)."""
        out: dict[str, Any] = {
            "tower_id": self.spec.tower_id,
            "frame_stream": f"{self.spec.frame_host}:{self.frames.port}",
        }
        if self.onvif is not None:
            out["onvif"] = self.onvif.url
        for section, device in self.serial.items():
            out[section] = {"port": device.port_path, "tty": device.tty_path}
        out.update(
            {
                "scenario": self.scenario.name,
                "start_utc": self.scenario.start_utc.isoformat(),
                "speed": self.clock.speed,
            }
        )
        return out

    def write_endpoints(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.endpoints(), indent=2) + "\n", encoding="utf-8")
