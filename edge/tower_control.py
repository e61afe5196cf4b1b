"""The daemon's field-service side: control socket, head pause, latest frame, drift watch, frozen camera.

The daemon's main loop owns this object: it feeds frames (``observe_frame``) and hands
in a fresh status snapshot (``publish``); the control threads only read that snapshot
under a lock, use ``HeadPause`` or call thread-safe drivers (edge.control).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from drivers.base import Frame
from drivers.ptz_calibration import PtzCalibration
from edge.config import TowerConfig
from edge.control import (
    ControlError,
    ControlServer,
    HeadPause,
    LatestFrames,
    process_usage,
    register_command_handler,
    register_ptz_handlers,
    register_relay_handlers,
    register_thermal_handlers,
    socket_path,
)
from edge.devices import Devices
from edge.drift import DriftReport, DriftWatch, FrozenFrameCheck, known_points
from edge.geolocation import Lens, TowerSite

log = structlog.get_logger(__name__)

# Frame rate is measured over at least this much wall time.
FRAME_RATE_WINDOW_S = 2.0


def thermal_lens(cfg: TowerConfig) -> Lens:
    cam = cfg.camera
    return Lens.from_physical(cam.focal_length_mm, cam.pixel_pitch_um, cam.width_px, cam.height_px)


def configured_calibration(cfg: TowerConfig) -> PtzCalibration:
    """The head's calibration from the config (every head driver carries one)."""
    calibration = getattr(cfg.ptz, "calibration", None)
    return calibration if isinstance(calibration, PtzCalibration) else PtzCalibration()


class TowerControl:
    """Owned by the main loop; serves the control socket from snapshots it is handed."""

    def __init__(self, cfg: TowerConfig, site: TowerSite, path: Path | None = None) -> None:
        self.cfg = cfg
        self.path = socket_path() if path is None else path
        self.server = ControlServer(self.path)
        self.head_pause = HeadPause(clock=time.monotonic)
        self.latest_frames = LatestFrames()
        self.calibration = configured_calibration(cfg)
        self.drift = DriftWatch(
            site,
            self.calibration,
            thermal_lens(cfg),
            known_points(cfg.known_sources, cfg.tower.ground_elevation_m),
        )
        self.frozen = FrozenFrameCheck()
        self.frozen_restarts = 0
        self.frozen_reason: str | None = None
        self.listening = False
        self._lock = threading.Lock()
        self._document: dict[str, Any] | None = None
        self._rate_mark: tuple[float, int] = (time.monotonic(), 0)
        self._frames = 0
        self.frame_rate_hz: float | None = None

    # --- lifecycle (main loop) ---------------------------------------------------------

    def start(
        self,
        devices: Devices,
        on_command: Callable[[str, bytes], dict[str, Any]],
    ) -> None:
        """Register the handlers and listen; a socket that cannot be bound is logged, not fatal.

        The tower's job is fire watch: a second daemon on the same runtime directory or
        a missing /run folder must not stop it, only the field tools.
        """
        server = self.server
        server.register("status", lambda _args: self.document())
        self.head_pause.register(server)
        register_ptz_handlers(server, devices.ptz, self.head_pause)
        register_command_handler(server, on_command)
        if devices.relay is not None:
            register_relay_handlers(server, devices.relay)
        register_thermal_handlers(server, self.latest_frames)
        try:
            server.start()
        except (ControlError, OSError) as err:
            log.error("control socket unavailable; field tools cannot reach this daemon",
                      path=str(self.path), error=str(err))  # fmt: skip
            return
        self.listening = True

    def stop(self) -> None:
        if self.listening:
            self.server.stop()
            self.listening = False

    # --- frames (main loop) ------------------------------------------------------------

    def count_frame(self, frame: Frame) -> None:
        """One frame arrived: the rate is measured in wall time (real, not tower time) and
        the frame is handed to the control threads (`calibrate thermal`)."""
        self.latest_frames.offer(frame)
        self._frames += 1
        mono = time.monotonic()
        mark_s, mark_n = self._rate_mark
        if mono - mark_s >= FRAME_RATE_WINDOW_S:
            self.frame_rate_hz = (self._frames - mark_n) / (mono - mark_s)
            self._rate_mark = (mono, self._frames)

    def frame_frozen(self, frame: Frame, pan_deg: float, tilt_deg: float) -> bool:
        """True once the camera sent the same picture at several different poses."""
        if not self.frozen.observe(np.asarray(frame.image), pan_deg, tilt_deg):
            return False
        self.frozen_restarts += 1
        self.frozen_reason = (
            f"thermal: identical frames at {self.frozen.frozen_after} different head poses; "
            f"frame source restarted ({self.frozen_restarts} time(s))"
        )
        self.frozen.reset()
        return True

    def watch_drift(self, frame: Frame, t: float, pan_deg: float, tilt_deg: float) -> int:
        """Add the known sources found in a settled patrol frame; returns how many."""
        if not frame.radiometric:
            return 0
        raw_pan, raw_tilt = self.calibration.to_device(pan_deg, tilt_deg)
        added = 0
        for sighting in self.drift.sightings_in_frame(np.asarray(frame.image), t, raw_pan,
                                                      raw_tilt):  # fmt: skip
            added += self.drift.add(sighting)
        return added

    def drift_report(self) -> DriftReport:
        return self.drift.report()

    # --- status snapshot ---------------------------------------------------------------

    def publish(self, document: dict[str, Any]) -> None:
        """The main loop's newest status document, for the control threads."""
        with self._lock:
            self._document = document

    def document(self) -> dict[str, Any]:
        with self._lock:
            document = self._document
        if document is None:
            raise ControlError("the daemon is starting; status is not ready yet")
        fresh = copy.deepcopy(document)
        fresh.update(process_usage())
        return fresh
