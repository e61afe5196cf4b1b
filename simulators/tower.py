"""A whole simulated tower in one process: the world, the head, and devices on real protocols.

It reads the same config file as the daemon and serves each configured device where the
daemon will look for it: the frame stream on ``thermal.port``, the ONVIF PTZ endpoint on
``ptz.port``. Frames show the world rendered for the head's true pose at the tower's
clock, which may run ``speed`` × faster than wall time; frame timestamps carry that clock.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from simulators.clock import SimClock
from simulators.frame_server import FrameStreamServer, ProducedFrame
from simulators.head import SimulatedHead
from simulators.onvif_server import OnvifPtzServer
from simulators.scenario import Camera, Scenario, Tower
from simulators.world import SimWorld

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class TowerSpec:
    """What the simulated tower needs from the daemon's config (plain values: no edge types)."""

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
    onvif_host: str
    onvif_port: int
    onvif_username: str
    onvif_password: str
    wide_hfov_deg: float
    zoom_hfov_deg: float


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
        seed: int | None = None,
    ) -> None:  # fmt: skip
        self.spec = spec
        self.scenario = align_scenario(scenario, spec)
        self.clock = SimClock(self.scenario.start_unix, speed)
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
        self.onvif = OnvifPtzServer(
            self.head,
            self.clock,
            username=spec.onvif_username,
            password=spec.onvif_password,
            host=spec.onvif_host,
            port=spec.onvif_port,
        )

    def start(self) -> None:
        self.onvif.start()
        self.frames.start()
        log.info("simulated tower up", **self.endpoints())

    def stop(self) -> None:
        self.frames.stop()
        self.onvif.stop()

    def endpoints(self) -> dict[str, Any]:
        return {
            "tower_id": self.spec.tower_id,
            "frame_stream": f"{self.spec.frame_host}:{self.frames.port}",
            "onvif": self.onvif.url,
            "scenario": self.scenario.name,
            "start_utc": self.scenario.start_utc.isoformat(),
            "speed": self.clock.speed,
        }

    def write_endpoints(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.endpoints(), indent=2) + "\n", encoding="utf-8")
