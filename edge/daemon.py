"""The tower daemon's main loop: patrol, fire-point localisation scan, alarms, status.

One thread owns all state (one owner thread, as the code style asks). Devices deliver in their own threads (frames
queue, PTZ worker, MQTT); this loop waits for frames, never for wall time, so it runs
unchanged against a simulated tower that is many times faster than real time.

Looks: the head is always doing one *look* (edge.looks) — a patrol stop, a confirmation
of a candidate, a revisit of an open alarm, a recheck asked by the hub, or a hold. A look
is move → settle → dwell; frames only count once the head has settled. Which look comes
next is the pure LookScheduler's choice; this module moves the head and feeds frames.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from detectors.geometry import angle_diff_deg
from detectors.solar import sun_position
from drivers.base import Frame
from edge import sdnotify
from edge.alarms import AlarmBook
from edge.clock import Clock, RunDeadline, clock_for
from edge.config import TowerConfig
from edge.confirm import ConfirmationScan, Verdict, warm_up_detection
from edge.control import status_document
from edge.detection import Candidate, DetectionContext, ThermalStage
from edge.devices import Devices, build_devices
from edge.fire_reporter import FireReporter
from edge.geodesy import destination
from edge.geolocation import Terrain, TowerSite, bearing_elevation_to, check_target
from edge.lidar_probe import LidarProbe
from edge.lidar_sweep import LidarSweep, SmokeFix, SweepSettings
from edge.looks import SCANNED_KINDS, Look, LookKind, LookScheduler, LookSettings, patrol_stops
from edge.messages import (
    COMMAND_MODELS,
    Command,
    CommandError,
    GotoCommand,
    RecheckCommand,
    RelayResetCommand,
    TestAlarmCommand,
    parse_command,
)
from edge.patrol import PatrolPlan, approach_waypoints
from edge.ptz_worker import PtzWorker, reached
from edge.secrets import FileSecretStore
from edge.status_reporter import StatusReporter
from edge.topics import CommandVerb
from edge.tower_control import TowerControl
from edge.uplink import Uplink

log = structlog.get_logger(__name__)

# Frame times outside these years are a broken camera clock, not a moment to process
# (the sun's position and the tower clock would be nonsense).
FRAME_T_MIN_S = 946_684_800.0  # 2000-01-01
FRAME_T_MAX_S = 4_102_444_800.0  # 2100-01-01
MOVE_TIMEOUT_S = 30.0  # tower time allowed for a slew before the look is abandoned
# The head was seen still at its status's time, which may be later than the newest frame
# here (frames reach the daemon with the camera's latency): settling counts from the
# later of the two, so a frame taken while the head still moved is not used. The lead is
# bounded, so a head whose clock runs ahead of the camera's costs at most this per stop.
MAX_ARRIVAL_LEAD_S = 0.5
# A confirmation wants the visible camera for its settle and dwell and this much more:
# the slew to the candidate, and the alarm's snapshot after the verdict.
VISIBLE_WANTED_MARGIN_S = 30.0
# The control socket's status is refreshed this often (wall time): a technician on the
# mast sees the head move, the CLI should too.
CONTROL_REFRESH_S = 1.0
# A plume within this azimuth of an open alarm's bearing is that fire's smoke: the wind
# leans a plume a degree or so off its fire's bearing at the sweep's heights.
SAME_PLUME_AZIMUTH_DEG = 2.0


class TowerDaemon:
    """Runs until ``stop`` is set or ``duration_s`` has passed (see clock.RunDeadline).

    Wiring and the loop: the look scheduler picks looks, the thermal stage and the
    confirmation scan judge frames, the fire reporter turns verdicts into alarms and the
    status reporter reports health. The clock is injected (default: config.time_source).
    """

    def __init__(
        self,
        cfg: TowerConfig,
        *,
        stop: threading.Event,
        duration_s: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.cfg = cfg
        self.stop_event = stop
        self.clock: Clock = clock_for(cfg.time_source) if clock is None else clock
        self.deadline = RunDeadline(duration_s, self.clock.monotonic())
        self.state_dir = Path(cfg.storage.state_dir)
        self.commands: queue.Queue[Command] = queue.Queue(maxsize=64)
        self.counters: dict[str, int] = {
            "frames": 0,
            "frames_shutter": 0,
            "frames_invalid": 0,
            "frames_failed": 0,
            "candidates": 0,
            "confirmed": 0,
            "dismissed": 0,
            "looks_abandoned": 0,
            "commands": 0,
            "skipped_for_sun": 0,
            "looks_refused_sun": 0,
            "lidar_fixes_rejected": 0,
            "smoke_found": 0,  # plumes the lidar sweep reported
            "smoke_at_open_alarms": 0,
            "smoke_at_mapped_sources": 0,
            "smoke_looks": 0,
            "smoke_alarms": 0,
        }
        self.devices: Devices | None = None
        self.sweep: LidarSweep | None = None
        self.uplink: Uplink | None = None
        self.ptz: PtzWorker | None = None
        self.fires: FireReporter | None = None
        self.alarms = AlarmBook(self.state_dir / "alarms.json", cfg.tower.id, cfg.alarm)
        stops = patrol_stops(cfg)
        self.looks = LookScheduler(LookSettings.from_config(cfg), PatrolPlan(stops))
        self.detection = DetectionContext.from_config(cfg, patrol_stops=len(stops))
        self.thermal_stage = ThermalStage(self.detection)
        self.look: Look | None = None
        self.status = StatusReporter(cfg, self.clock, self.detection.is_day)
        self.first_frame_t: float | None = None
        self._last_frame_now: float | None = None
        self.site = TowerSite(cfg.tower.lat, cfg.tower.lon, cfg.tower.camera_altitude_m)
        self.terrain = self._load_terrain()
        self.control = TowerControl(cfg, self.site)
        self._head_was_paused = False
        self._control_refreshed_mono: float | None = None
        self._last_status: Any = None
        self._started_wall_mono = time.monotonic()
        # The one command table: verb → payload model (edge.messages) → handler here.
        self._command_handlers: dict[CommandVerb, Callable[[Any, float], None]] = {
            CommandVerb.RECHECK: self._recheck,
            CommandVerb.GOTO: self._goto,
            CommandVerb.TEST_ALARM: self._test_alarm,
            CommandVerb.RELAY_RESET: self._relay_reset,
        }
        if set(self._command_handlers) != set(COMMAND_MODELS):
            raise RuntimeError("every command verb needs exactly one payload model and handler")

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        cfg = self.cfg
        self.state_dir.mkdir(parents=True, exist_ok=True)
        secrets = FileSecretStore.from_config(cfg)
        self.devices = build_devices(cfg, secrets)
        self.uplink = self._make_uplink(secrets)
        self.fires = FireReporter(cfg, self.alarms, self.uplink, self.devices.relay,
                                  terrain=self.terrain, visible=self.devices.visible)  # fmt: skip
        self.devices.open_all()
        self.sweep = self._make_sweep()
        self.ptz = PtzWorker(self.devices.ptz)
        self.ptz.start()
        # numba loads (or, on a first start, compiles) its kernels now, not on the first
        # frame, so the main loop never stalls past the systemd watchdog
        warm_up_detection(cfg)
        # The handler goes in before the connection: the subscription then precedes the
        # first `online` status, and a hub that commands the tower on reading it is heard.
        self.uplink.subscribe_commands(self.handle_command)
        self.uplink.start()
        self.fires.resume()
        self._refresh_control()
        self.control.start(self.devices, self._control_command)
        sdnotify.ready()
        log.info("daemon started", tower=cfg.tower.id, stops=len(self.looks.patrol.stops),
                 hfov_deg=round(cfg.camera.hfov_deg, 3))  # fmt: skip
        try:
            while not self.stop_event.is_set() and not self._run_over():
                self._step()
        finally:
            sdnotify.stopping()
            log.info("daemon stopping", counters=self.counters)
            self._publish_status()  # the final counters, before `offline`
            self.control.stop()
            self.ptz.stop()
            self.uplink.stop()
            self.devices.close_all()
        return 0

    def _make_sweep(self) -> LidarSweep | None:
        c = self.cfg.lidar_sweep
        if not c.enabled or self.devices is None or self.devices.lidar is None:
            return None
        return LidarSweep(self.devices.lidar, SweepSettings(
            c.azimuth_start_deg, c.azimuth_span_deg, c.elevations_deg, c.azimuth_step_deg,
            c.shots, c.quiet_after_fix_s))  # fmt: skip

    def _run_over(self) -> bool:
        return self.deadline.over(self.clock.now(), self.clock.monotonic())

    def _make_uplink(self, secrets: FileSecretStore) -> Uplink:
        m = self.cfg.mqtt
        password = secrets.read(m.password_secret) if m.password_secret else None
        key_path = secrets.private_path(m.tls.key_secret) if m.tls and m.tls.key_secret else None
        return Uplink(
            m,
            tower_id=self.cfg.tower.id,
            outbox_path=self.state_dir / "outbox.sqlite",
            password=password,
            tls_key_path=key_path,
            outbox_max_messages=self.cfg.storage.outbox_max_messages,
        )

    def _load_terrain(self) -> Terrain | None:
        path = self.cfg.geolocation.dem_path
        if path is None:
            return None
        from edge.dem import Dem

        return Dem.load(path)

    # ------------------------------------------------------------------ main loop

    def _step(self) -> None:
        assert self.devices is not None
        frame = self.devices.thermal.read(timeout_s=0.5)
        self._drain_commands()
        if frame is not None:
            self._process_frame(frame)
        self._housekeeping()

    def _process_frame(self, frame: Frame) -> None:
        """One frame inside its own error handler: a bad frame is counted and dropped."""
        problem = self._frame_problem(frame)
        if problem is not None:
            self.counters["frames_invalid"] += 1
            if self.counters["frames_invalid"] % 100 == 1:  # the first, then every 100th
                log.warning("frame dropped", seq=frame.seq, problem=problem,
                            dropped=self.counters["frames_invalid"])  # fmt: skip
            return
        try:
            self._on_frame(frame)
        except Exception:
            # The per-frame boundary (STYLE §9): whatever one frame does, the tower goes on.
            self.counters["frames_failed"] += 1
            log.exception("frame processing failed", seq=frame.seq,
                          failed=self.counters["frames_failed"])  # fmt: skip

    def _frame_problem(self, frame: Frame) -> str | None:
        """Why the camera's frame cannot be processed, or None."""
        if not FRAME_T_MIN_S <= frame.t <= FRAME_T_MAX_S:  # NaN fails too
            return f"frame time {frame.t!r} is not a time between 2000 and 2100"
        cam = self.cfg.camera
        if frame.radiometric and frame.image.shape[:2] != (cam.height_px, cam.width_px):
            return (
                f"frame of {frame.image.shape[1]}x{frame.image.shape[0]} px, camera.width_px x "
                f"camera.height_px is {cam.width_px}x{cam.height_px}"
            )
        if math.isfinite(frame.hfov_deg) and not 0.0 < frame.hfov_deg < 180.0:
            return f"frame hfov_deg {frame.hfov_deg} is not in (0, 180)"
        return None

    def _on_frame(self, frame: Frame) -> None:
        self.clock.observe_frame(frame.t)
        now = self.clock.now()
        mono = self.clock.monotonic()
        if self._last_frame_now is not None and now < self._last_frame_now and self.look is not None:
            # The system clock stepped back: the look's times move with it, or its
            # settle and dwell would wait out the whole step.
            self.look.rewind(self._last_frame_now - now)
        self._last_frame_now = now
        if self.first_frame_t is None:
            self.first_frame_t = now
            log.info("first frame", startup_s=round(mono - self.status.started_mono, 3))
        self.deadline.frame(now, mono)
        self.counters["frames"] += 1
        self.control.count_frame(frame)
        if frame.shutter:
            self.counters["frames_shutter"] += 1  # NUC in progress: the frame is not a scene
            return
        if not frame.radiometric and self.cfg.camera.radiometric:
            self.counters["frames_invalid"] += 1
            return
        # only a frame the detectors can use keeps the camera "fresh" (status, watchdog)
        self.status.frame_seen()
        self._poll_sweep(now)
        if self._head_paused(now):
            return
        look = self.look or self._next_look(now)
        if look is None:
            return
        if not self._advance_motion(look, now):
            return
        if now - (look.arrived_at or now) < look.settle_s:
            return
        pose = self._frame_pose(frame, look)
        if self._camera_frozen(frame, look):
            return
        look.frames_used += 1
        if look.kind == LookKind.PATROL and look.frames_used == 1 and self.cfg.known_sources:
            self.control.watch_drift(frame, now, pose[0], pose[1])
        if look.probe is not None:
            look.probe.poll()
        if look.scan is not None:
            look.scan.add_frame(frame, pose, now)
            if self.fires is not None and (visible := self.fires.visible_frame()) is not None:
                look.scan.add_visible(visible, pose)
        elif look.kind != LookKind.HOLD:
            for candidate in self.thermal_stage.process(frame, pose, now):
                self._on_candidate(candidate, look, now)
                if self.look is not look:
                    return
        dwelt = now - (look.arrived_at or now) >= look.settle_s + look.dwell_s
        if dwelt and look.frames_used >= self.cfg.patrol.min_frames:
            self._finish_look(look, now)

    def _frame_pose(self, frame: Frame, look: Look) -> tuple[float, float, float]:
        """The pose a frame was taken at: the stream's metadata, else the head's status."""
        if math.isfinite(frame.pan_deg) and math.isfinite(frame.tilt_deg):
            hfov = frame.hfov_deg if math.isfinite(frame.hfov_deg) else look.hfov_deg
            return frame.pan_deg, frame.tilt_deg, hfov
        assert self.ptz is not None
        status = self.ptz.reading().status
        if status is not None:
            return status.pan_deg, status.tilt_deg, status.hfov_deg
        return look.pan_deg, look.tilt_deg, look.hfov_deg

    # ------------------------------------------------------------------ field tools

    def _head_paused(self, now: float) -> bool:
        """True while a field tool holds the head; the current look restarts afterwards."""
        paused = self.control.head_pause.paused()
        look = self.look
        if paused != self._head_was_paused:
            log.info("head paused by a field tool" if paused else "head handed back to the patrol",
                     **self.control.head_pause.state())  # fmt: skip
            self._head_was_paused = paused
            if not paused and look is not None:
                look.request_id = None  # the tool moved the head: go to the look's pose again
        if paused:
            return True
        if look is not None and look.request_id is None:
            # A look chosen or interrupted during the pause moves the head only now.
            self.look = None
            self._start_look(look, now)
        return False

    def _camera_frozen(self, frame: Frame, look: Look) -> bool:
        """Identical frames at different head poses: restart the thermal source."""
        assert self.ptz is not None and self.devices is not None
        # The head's own reading, not the frame's metadata: a frozen stream repeats both.
        status = self.ptz.reading().status
        pan, tilt = (status.pan_deg, status.tilt_deg) if status else (look.pan_deg, look.tilt_deg)
        if not self.control.frame_frozen(frame, pan, tilt):
            return False
        log.error("thermal camera frozen: restarting the frame source",
                  restarts=self.control.frozen_restarts)  # fmt: skip
        self.devices.thermal.close()
        self.devices.thermal.open()
        self.look = None
        return True

    def _control_command(self, verb: str, payload: bytes) -> dict[str, Any]:
        """The control socket's `command` (control thread): the hub's path, same checks."""
        return dict(self.handle_command(parse_command(verb, payload)))

    # ------------------------------------------------------------------ looks

    def _start_look(self, look: Look, now: float) -> None:
        assert self.ptz is not None
        if self.looks.sun_blocks(look, *self._sun(now)):
            self.counters["looks_refused_sun"] += 1
            log.warning("look refused: the sun would be in view", kind=look.kind,
                        pan_deg=round(look.pan_deg, 3), tilt_deg=round(look.tilt_deg, 3))  # fmt: skip
            self.look = None
            self._answer(look, ok=False, error="refused: the sun would be in the camera's view")
            return
        status = self.ptz.reading().status
        current = status.pan_deg if status is not None else look.pan_deg
        look.waypoints = approach_waypoints(current, look.pan_deg)
        look.started_at = now
        look.arrived_at = None
        if look.kind in SCANNED_KINDS and look.scan is None and look.candidate is not None:
            look.scan = ConfirmationScan(self.detection, look.candidate,
                                         self.cfg.confirmation.persistence_fraction)  # fmt: skip
        if self.control.head_pause.paused():
            # A technician holds the head: the look waits and moves it once released.
            look.request_id = None
            self.look = look
            return
        look.request_id = self.ptz.move_to(look.waypoints[0], look.tilt_deg, look.hfov_deg)
        self.look = look
        log.debug("look", kind=look.kind, pan_deg=round(look.pan_deg, 3),
                  tilt_deg=round(look.tilt_deg, 3), hfov_deg=round(look.hfov_deg, 3))  # fmt: skip

    def _sun(self, now: float) -> tuple[float, float]:
        return sun_position(now, self.cfg.tower.lat, self.cfg.tower.lon)

    def _advance_motion(self, look: Look, now: float) -> bool:
        """True once the head has arrived at the look's pose (settling counts from then)."""
        if look.arrived_at is not None:
            return True
        assert self.ptz is not None and look.request_id is not None
        reading = self.ptz.reading()
        status = reading.status
        target_pan = look.waypoints[0]
        if (
            status is not None
            and reading.status_after_request_id >= look.request_id
            and reached(status, target_pan, look.tilt_deg)
        ):
            look.waypoints.pop(0)
            if look.waypoints:
                look.request_id = self.ptz.move_to(look.waypoints[0], look.tilt_deg, look.hfov_deg)
                return False
            look.arrived_at = now + min(max(status.t - now, 0.0), MAX_ARRIVAL_LEAD_S)
            self._start_probe(look)
            return True
        if now - look.started_at > MOVE_TIMEOUT_S:
            self.counters["looks_abandoned"] += 1
            log.warning("head did not arrive", kind=look.kind, pan_deg=look.pan_deg,
                        error=reading.error)  # fmt: skip
            self.look = None
            self._answer(look, ok=False, error=f"the head did not reach the pose within {MOVE_TIMEOUT_S:g} s")
        return False

    def _next_look(self, now: float) -> Look | None:
        look = self.looks.next_look(now, self.alarms.due_revisits(now), *self._sun(now))
        self.counters["skipped_for_sun"] = self.looks.patrol.skipped_for_sun
        if self.fires is not None:
            self.counters["lidar_fixes_rejected"] = self.fires.lidar_fixes_rejected
        if look is None:
            return None
        self._start_look(look, now)
        return self.look

    def _start_probe(self, look: Look) -> None:
        """Fan the lidar around the candidate's bearing, downwind either way, while the
        camera dwells: the plume leans with the wind off the fire's bearing."""
        assert self.devices is not None
        if self.devices.lidar is None or look.scan is None:
            return
        c = self.cfg.confirmation
        look.probe = LidarProbe(
            self.devices.lidar,
            shots=c.lidar_shots,
            drift_per_rise=self.cfg.weather.wind_speed_m_s / self.cfg.geolocation.plume_rise_m_s,
            azimuth_step_deg=c.lidar_azimuth_step_deg,
            max_scans=c.lidar_max_scans,
        )
        look.probe.start(look.pan_deg, look.tilt_deg)

    def _finish_look(self, look: Look, now: float) -> None:
        self.look = None
        self._answer(look, ok=True, result={"pan_deg": round(look.pan_deg, 2),
                                            "tilt_deg": round(look.tilt_deg, 2),
                                            "frames": look.frames_used})  # fmt: skip
        if look.kind == LookKind.CONFIRM and look.scan is not None:
            self._conclude_confirmation(look, look.scan.verdict(), now)
        elif look.kind == LookKind.REVISIT and look.alarm_id is not None and look.scan is not None:
            assert self.fires is not None
            verdict = look.scan.verdict()
            if verdict.outcome == "confirmed":
                lidar = look.probe.result() if look.probe is not None else None
                self.fires.seen_again(look.alarm_id, verdict, lidar, now)
            else:
                self.fires.not_seen(look.alarm_id, now)

    # ------------------------------------------------------------------ confirmation

    def _on_candidate(self, candidate: Candidate, look: Look, now: float) -> None:
        self.counters["candidates"] += 1
        confirm = self.looks.on_candidate(candidate, look, self.alarms.open_alarms(), now)
        if confirm is None:
            log.debug("candidate at an open alarm or a dismissed spot",
                      pan_deg=round(candidate.pan_deg, 3))  # fmt: skip
            return
        log.info("candidate: confirming", pan_deg=round(candidate.pan_deg, 3),
                 tilt_deg=round(candidate.tilt_deg, 3), score=round(candidate.score, 2))  # fmt: skip
        if self.fires is not None:
            c = self.cfg.confirmation
            self.fires.expect_snapshot(c.settle_s + c.dwell_s + VISIBLE_WANTED_MARGIN_S)
        self._start_look(confirm, now)

    # ------------------------------------------------------------------ smoke

    def _poll_sweep(self, now: float) -> None:
        """The lidar's background sweep, paused while a look's cued fan holds the lidar."""
        if self.sweep is None:
            return
        fan_holds_lidar = self.look is not None and self.look.probe is not None
        smoke = self.sweep.poll(now, paused=fan_holds_lidar)
        if smoke is not None:
            self._on_smoke(smoke, now)

    def _on_smoke(self, smoke: SmokeFix, now: float) -> None:
        """A plume from the sweep: an open alarm's smoke, a mapped stack's, or a look."""
        assert self.fires is not None
        self.counters["smoke_found"] += 1
        for alarm in self.alarms.open_alarms():
            if angle_diff_deg(alarm.observation.bearing_deg, smoke.azimuth_deg) <= SAME_PLUME_AZIMUTH_DEG:
                self.counters["smoke_at_open_alarms"] += 1
                lidar = alarm.observation.evidence.get("lidar") or {}
                if lidar.get("found_by") == "sweep":
                    self.fires.smoke_seen_again(alarm.alarm_id, smoke, now)
                return
        source = self.fires.mapped_smoke_source(smoke)
        if source is not None:
            self.counters["smoke_at_mapped_sources"] += 1
            log.info("smoke at a mapped source", source=source,
                     azimuth_deg=round(smoke.azimuth_deg, 2), range_m=round(smoke.range_m))  # fmt: skip
            return
        ground_m = self.cfg.tower.ground_elevation_m + self.cfg.geolocation.canopy_height_m
        lat, lon = destination(self.site.lat, self.site.lon, smoke.azimuth_deg, smoke.range_m)
        _, ground_elevation_deg = bearing_elevation_to(self.site, lat, lon, ground_m)
        look = self.looks.smoke_look(smoke, ground_elevation_deg)
        if not self.looks.queue(look, first=True):
            log.warning("smoke look not queued: the queue is full")
            return
        self.counters["smoke_looks"] += 1
        c = self.cfg.confirmation
        self.fires.expect_snapshot(c.settle_s + c.dwell_s + VISIBLE_WANTED_MARGIN_S)
        log.info("smoke: turning the camera to it", azimuth_deg=round(smoke.azimuth_deg, 2),
                 range_m=round(smoke.range_m), elevation_deg=round(ground_elevation_deg, 3))  # fmt: skip

    def _conclude_smoke(self, look: Look, verdict: Verdict, now: float) -> bool:
        """The camera's look under a sweep's plume; False when it confirmed a fire (the
        thermal path goes on, with the plume's range where the fan found none)."""
        assert look.smoke is not None and self.fires is not None
        if verdict.outcome == "confirmed":
            return False
        if not self.cfg.lidar_sweep.alarm_without_thermal:
            log.info("smoke not confirmed by the camera; no alarm by policy",
                     reason=verdict.reason)  # fmt: skip
            return True
        self.counters["smoke_alarms"] += 1
        last_frame = look.scan.last_frame if look.scan is not None else None
        geo = self.fires.smoke_alarm(look.smoke, verdict, last_frame, now)
        log.info("smoke alarm on the lidar's fix", bearing_deg=round(geo.bearing_deg, 3),
                 range_m=geo.range_m, camera=verdict.reason)  # fmt: skip
        return True

    def _conclude_confirmation(self, look: Look, verdict: Verdict, now: float) -> None:
        assert look.candidate is not None
        if look.smoke is not None and self._conclude_smoke(look, verdict, now):
            return
        if verdict.outcome == "confirmed":
            assert self.fires is not None
            self.counters["confirmed"] += 1
            lidar = look.probe.result() if look.probe is not None else None
            if look.smoke is not None and (lidar is None or lidar.range_m is None):
                lidar = look.smoke.as_probe_result()
            # the fire was first seen when the patrol raised the candidate
            first_seen = look.smoke.t if look.smoke is not None else look.candidate.t
            geo = self.fires.confirmed(verdict, first_seen, lidar, now)
            log.info("fire confirmed", bearing_deg=round(verdict.bearing_deg, 3),
                     range_m=geo.range_m, bearing_only=geo.bearing_only)  # fmt: skip
            return
        if verdict.outcome == "undecided" and self.looks.undecided(look, now):
            return
        self.counters["dismissed"] += 1
        self.looks.dismiss(look.candidate, verdict.reason, now)
        log.info("candidate dismissed", reason=verdict.reason, pan_deg=round(look.pan_deg, 3))

    # ------------------------------------------------------------------ commands

    def handle_command(self, command: Command) -> Mapping[str, Any]:
        """The uplink's handler (MQTT thread): refuse what cannot be done, queue the rest.

        Only immutable config is read here; the main loop carries the command out.
        """
        verb = command.verb.value
        if isinstance(command, GotoCommand):
            self._check_goto(command)
        if isinstance(command, RecheckCommand) and command.lat is not None:
            assert command.lon is not None
            try:
                check_target(self.site, command.lat, command.lon, self.cfg.geolocation.max_range_m)
            except ValueError as err:
                raise CommandError(f"{verb}: {err}") from None
        try:
            self.commands.put_nowait(command)
        except queue.Full:
            raise CommandError(f"{verb}: too many commands waiting; try again") from None
        return {"queued": True}

    def _check_goto(self, command: GotoCommand) -> None:
        p = self.cfg.patrol
        if command.hold_s > p.goto_max_hold_s:
            raise CommandError(
                f"goto: hold_s {command.hold_s:g} exceeds patrol.goto_max_hold_s "
                f"({p.goto_max_hold_s:g} s): the tower would not patrol meanwhile"
            )
        if not p.goto_tilt_min_deg <= command.tilt_deg <= p.goto_tilt_max_deg:
            raise CommandError(
                f"goto: tilt_deg {command.tilt_deg:g} is outside patrol.goto_tilt_min_deg.."
                f"patrol.goto_tilt_max_deg ({p.goto_tilt_min_deg:g}..{p.goto_tilt_max_deg:g})"
            )

    def _drain_commands(self) -> None:
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            self.counters["commands"] += 1
            log.info("command", command=type(command).__name__, verb=command.verb.value,
                     request_id=command.request_id)  # fmt: skip
            self._command_handlers[command.verb](command, self.clock.now())

    def _answer(
        self,
        look: Look,
        *,
        ok: bool,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """The final reply to the command a look carried out (none for the tower's own looks)."""
        if look.asked_by is not None:
            self._reply_done(look.asked_by, ok=ok, result=result, error=error)

    def _reply_done(
        self,
        command: Command,
        *,
        ok: bool,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        assert self.uplink is not None
        self.uplink.send_command_result(command.verb.value, command.request_id, ok,
                                        result=result, error=error)  # fmt: skip

    def _test_alarm(self, command: TestAlarmCommand, now: float) -> None:
        assert self.fires is not None
        self.fires.test_alarm(now)
        self._reply_done(command, ok=True, result={"test_alarm": "sent"})

    def _relay_reset(self, command: RelayResetCommand, now: float) -> None:
        assert self.fires is not None
        self.fires.relay_reset()
        self._reply_done(command, ok=True, result={"relay": "open"})

    def _goto(self, command: GotoCommand, now: float) -> None:
        look = self.looks.hold_look(command.pan_deg, command.tilt_deg, command.hfov_deg,
                                    command.hold_s)  # fmt: skip
        look.asked_by = command
        if self.look is not None and self.look.kind in SCANNED_KINDS:
            # a fire being confirmed or measured is not dropped for a manual look: it waits
            if not self.looks.queue(look, first=True):
                log.warning("goto dropped: too many looks waiting", request_id=command.request_id)
                self._reply_done(command, ok=False, error="refused: too many looks waiting")
            return
        self.look = None
        self._start_look(look, now)

    def _recheck(self, command: RecheckCommand, now: float) -> None:
        if command.bearing_deg is not None:
            look = self.looks.recheck_look(command.bearing_deg, command.elevation_deg)
        else:
            assert command.lat is not None and command.lon is not None
            pan, tilt = bearing_elevation_to(self.site, command.lat, command.lon,
                                             self.cfg.tower.ground_elevation_m)  # fmt: skip
            look = self.looks.recheck_look(pan, tilt)
        look.asked_by = command
        if not self.looks.queue(look, first=True):
            log.warning("recheck dropped: too many looks waiting", request_id=command.request_id)
            self._reply_done(command, ok=False, error="refused: too many looks waiting")

    # ------------------------------------------------------------------ status

    def _housekeeping(self) -> None:
        assert self.fires is not None
        now = self.clock.now()
        if self.first_frame_t is not None:
            self.fires.housekeeping(now)
        if self.status.status_due():
            self._publish_status()
        mono = time.monotonic()
        last = self._control_refreshed_mono
        if last is None or mono - last >= CONTROL_REFRESH_S:
            self._refresh_control()
        if self.status.watchdog_due():
            sdnotify.watchdog()

    def _publish_status(self) -> None:
        status = self._status_message()
        assert self.uplink is not None
        self.uplink.publish_status(status)
        sdnotify.status(f"{status.state}: {', '.join(status.reasons) or 'all sensors ok'}")

    def _status_message(self) -> Any:
        assert self.devices is not None and self.uplink is not None and self.ptz is not None
        gnss = self.devices.gnss
        problems: list[str] = []
        if self.alarms.load_problem:
            problems.append(self.alarms.load_problem)
        # I/O threads and storage (edge.thread_health): a dead thread or a replaced outbox.
        for thread in (*self.uplink.health().values(), self.ptz.health()):
            if not thread.alive:
                problems.append(thread.describe())
        uplink = self.uplink.counters()
        if uplink.outbox_recovered:
            problems.append(str(uplink.outbox_recovered))
        problems.extend(self._field_problems())
        if self.sweep is not None:
            # the sweep keeps its own counts; the status carries them (not copied per frame)
            self.counters.update({f"lidar_sweep_{k}": v for k, v in self.sweep.counters.items()})
        status = self.status.message(
            now=self.clock.now(),
            health=self.devices.health(),
            ptz_error=self.ptz.reading().error,
            gnss_fix=gnss.latest_fix() if gnss is not None else None,
            uplink=uplink,
            counters=self.counters,
            patrol_cycle_s=self.looks.patrol_cycle_s,
            problems=tuple(problems),
        )
        self._last_status = status
        return status

    def _field_problems(self) -> list[str]:
        """Reasons from the drift watch and the frozen-camera check."""
        problems: list[str] = []
        drift = self.control.drift_report()
        if drift.degraded:
            assert drift.pan_offset_deg is not None and drift.tilt_offset_deg is not None
            problems.append(
                f"drift: pointing off by pan {drift.pan_offset_deg:+.3f}°, tilt "
                f"{drift.tilt_offset_deg:+.3f}° from {drift.sightings} sightings of "
                f"{drift.sources} known sources (threshold {drift.threshold_deg:g}°); "
                "apply with `towerwatch calibrate apply-drift`"
            )
        if self.control.frozen_reason is not None:
            problems.append(self.control.frozen_reason)
        return problems

    def _refresh_control(self) -> None:
        """Hand the control socket a fresh status document (read on its own threads)."""
        assert self.devices is not None and self.uplink is not None and self.ptz is not None
        self._control_refreshed_mono = time.monotonic()
        status = self._last_status or self._status_message()
        uplink = self.uplink.counters()
        head = self.ptz.reading().status
        pause = self.control.head_pause.state()
        look = self.look
        patrol: dict[str, Any] = {
            "pan_deg": None if head is None else head.pan_deg,
            "tilt_deg": None if head is None else head.tilt_deg,
            "cycle_s": self.looks.patrol_cycle_s,
            "look": None if look is None else str(look.kind),
            "paused": pause["paused"],
            "paused_by": pause.get("owner"),
        }
        alarms: list[Mapping[str, Any]] = [
            {
                "alarm_id": a.alarm_id,
                "seq": a.seq,
                "state": a.state,
                "bearing_deg": a.observation.bearing_deg,
                "first_seen": a.first_seen,
                "last_seen": a.last_seen,
            }  # fmt: skip
            for a in self.alarms.open_alarms()
        ]
        document = status_document(
            tower_id=self.cfg.tower.id,
            state=status.state,
            reasons=list(status.reasons),
            uptime_s=time.monotonic() - self._started_wall_mono,
            devices=self.devices.health(),
            broker={
                "connected": uplink.connected,
                "last_error": uplink.last_error,
                "reconnects": uplink.reconnects,
            },  # fmt: skip
            outbox_depth=uplink.outbox_depth,
            patrol=patrol,
            detection_range_m=status.detection_range_m,
            open_alarms=alarms,
            frame_rate_hz=self.control.frame_rate_hz,
            drift=self.control.drift_report().as_dict(),
        )
        document["frozen_camera_restarts"] = self.control.frozen_restarts
        document["counters"] = dict(self.counters)
        self.control.publish(document)
