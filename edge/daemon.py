"""The tower daemon's main loop: patrol, fire-point localisation scan, alarms, status.

One thread owns all state (STYLE.md §7). Devices deliver in their own threads (frames
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

from detectors.geometry import signed_delta_deg
from detectors.solar import sun_position
from drivers.base import DriverState, Frame
from edge import __version__, sdnotify
from edge.alarms import AlarmBook, AlarmEvent, FireObservation
from edge.clock import CameraClock, Clock, SystemClock
from edge.config import TowerConfig
from edge.confirm import ConfirmationScan, Verdict, warm_up_detection
from edge.coverage import atmosphere_of, coverage_range_m, mission_ranges
from edge.detection import Candidate, DetectionContext, ThermalStage
from edge.devices import Devices, build_devices
from edge.geodesy import distance_bearing
from edge.geolocation import (
    ErrorModel,
    Geolocation,
    TowerSite,
    bearing_elevation_to,
    check_target,
    geolocate,
)
from edge.lidar_probe import LidarProbe, ProbeResult
from edge.looks import SCANNED_KINDS, Look, LookKind, LookScheduler, LookSettings, patrol_stops
from edge.messages import (
    COMMAND_MODELS,
    Command,
    CommandError,
    GotoCommand,
    RecheckCommand,
    RelayResetCommand,
    SensorHealth,
    SensorState,
    StatusMessage,
    TestAlarmCommand,
    TowerPosition,
    iso_z,
    parse_command,
)
from edge.patrol import PatrolPlan, approach_waypoints
from edge.ptz_worker import PtzWorker
from edge.secrets import FileSecretStore
from edge.snapshot import render_snapshot, save_snapshot
from edge.topics import CommandVerb
from edge.uplink import Uplink

log = structlog.get_logger(__name__)

ARRIVAL_TOLERANCE_DEG = 0.05  # head position within this of the target: arrived
MOVE_TIMEOUT_S = 30.0  # tower time allowed for a slew before the look is abandoned
FRAME_STALE_S = 5.0  # wall seconds without a thermal frame: the camera is degraded
WATCHDOG_FRESH_S = 10.0
GNSS_POSITION_TOLERANCE_M = 50.0  # a GNSS fix this far from the surveyed position is an error
_SENSOR_STATE: dict[DriverState, SensorState] = {
    DriverState.OK: "ok",
    DriverState.CONNECTING: "degraded",
    DriverState.CLOSED: "failed",
    DriverState.FAILED: "failed",
}  # watchdog is fed only if a frame was processed this recently


class TowerDaemon:
    """Runs until ``stop`` is set or ``duration_s`` of tower time has passed."""

    def __init__(
        self, cfg: TowerConfig, *, stop: threading.Event, duration_s: float | None = None
    ) -> None:
        self.cfg = cfg
        self.stop_event = stop
        self.duration_s = duration_s
        self.clock: Clock = CameraClock() if cfg.time_source == "camera" else SystemClock()
        self.state_dir = Path(cfg.storage.state_dir)
        self.commands: queue.Queue[Command] = queue.Queue(maxsize=64)
        self.counters: dict[str, int] = {
            "frames": 0,
            "frames_shutter": 0,
            "frames_invalid": 0,
            "candidates": 0,
            "confirmed": 0,
            "dismissed": 0,
            "looks_abandoned": 0,
            "commands": 0,
            "skipped_for_sun": 0,
            "looks_refused_sun": 0,
        }
        self.devices: Devices | None = None
        self.uplink: Uplink | None = None
        self.ptz: PtzWorker | None = None
        self.alarms = AlarmBook(self.state_dir / "alarms.json", cfg.tower.id, cfg.alarm)
        stops = patrol_stops(cfg)
        self.looks = LookScheduler(LookSettings.from_config(cfg), PatrolPlan(stops))
        self.detection = DetectionContext.from_config(cfg, patrol_stops=len(stops))
        self.thermal_stage = ThermalStage(self.detection)
        self.look: Look | None = None
        self.last_visible: Frame | None = None
        self.started_wall = time.monotonic()
        self.first_frame_t: float | None = None
        self.last_frame_wall: float | None = None
        self.last_status_wall = -math.inf
        self.last_watchdog_wall = -math.inf
        self.relay_closed_at: float | None = None
        self.site = TowerSite(cfg.tower.lat, cfg.tower.lon, cfg.tower.camera_altitude_m)
        self.terrain = self._load_terrain()
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
        secrets = FileSecretStore(cfg.secrets_directory())
        self.devices = build_devices(cfg, secrets)
        self.uplink = self._make_uplink(secrets)
        self.devices.open_all()
        self.ptz = PtzWorker(self.devices.ptz)
        self.ptz.start()
        # numba loads (or, on a first start, compiles) its kernels now, not on the first
        # frame, so the main loop never stalls past the systemd watchdog
        warm_up_detection(cfg)
        self.uplink.start()
        self.uplink.subscribe_commands(
            lambda verb, payload: self.handle_command(parse_command(verb, payload))
        )
        # An alarm saved just before a crash may never have reached the outbox: queue the
        # newest event of each alarm again; the hub de-duplicates on (alarm_id, seq).
        tower = self._tower_ref()
        for event in self.alarms.events_for_resend():
            self.uplink.send_alarm(event.to_message(tower))
        sdnotify.ready()
        log.info("daemon started", tower=cfg.tower.id, stops=len(self.looks.patrol.stops),
                 hfov_deg=round(cfg.camera.hfov_deg, 3))  # fmt: skip
        try:
            while not self.stop_event.is_set() and not self._duration_elapsed():
                self._step()
        finally:
            sdnotify.stopping()
            log.info("daemon stopping", counters=self.counters)
            self._publish_status(self.clock.now())  # the final counters, before `offline`
            self.ptz.stop()
            self.uplink.stop()
            self.devices.close_all()
        return 0

    def _duration_elapsed(self) -> bool:
        if self.duration_s is None:
            return False
        if self.first_frame_t is not None:
            return self.clock.now() - self.first_frame_t >= self.duration_s
        # No frame yet: fall back to wall time so a dead camera cannot hang the run.
        return time.monotonic() - self.started_wall >= self.duration_s

    def _tower_ref(self) -> dict[str, Any]:
        return {"id": self.cfg.tower.id, "lat": self.cfg.tower.lat, "lon": self.cfg.tower.lon}

    def _make_uplink(self, secrets: FileSecretStore) -> Uplink:
        m = self.cfg.mqtt
        password = secrets.read(m.password_secret) if m.password_secret else None
        key_path = secrets.path_of(m.tls.key_secret) if m.tls and m.tls.key_secret else None
        return Uplink(
            host=m.host,
            port=m.port,
            client_id=m.client_id or self.cfg.tower.id,
            tower_id=self.cfg.tower.id,
            outbox_path=self.state_dir / "outbox.sqlite",
            topic_prefix=m.topic_prefix,
            keepalive_s=m.keepalive_s,
            username=m.username,
            password=password,
            tls_ca_path=m.tls.ca_file if m.tls else None,
            tls_cert_path=m.tls.cert_file if m.tls else None,
            tls_key_path=key_path,
            session_expiry_s=m.session_expiry_s,
            outbox_max_messages=self.cfg.storage.outbox_max_messages,
        )

    def _load_terrain(self) -> Any:
        path = self.cfg.geolocation.dem_path
        if path is None:
            return None
        from edge.dem import Dem

        return Dem.load(path)

    # ------------------------------------------------------------------ main loop

    def _step(self) -> None:
        assert self.devices is not None
        frame = self.devices.thermal.read(timeout_s=0.5)
        self._drain_visible()
        self._drain_commands()
        if frame is not None:
            self._on_frame(frame)
        self._housekeeping()

    def _drain_visible(self) -> None:
        assert self.devices is not None
        if self.devices.visible is None:
            return
        while (visible := self.devices.visible.read(timeout_s=0.0)) is not None:
            self.last_visible = visible

    def _on_frame(self, frame: Frame) -> None:
        self.clock.observe_frame(frame.t)
        now = self.clock.now()
        if self.first_frame_t is None:
            self.first_frame_t = now
            log.info("first frame", startup_s=round(time.monotonic() - self.started_wall, 3))
        self.last_frame_wall = time.monotonic()
        self.counters["frames"] += 1
        if frame.shutter:
            self.counters["frames_shutter"] += 1  # NUC in progress: the frame is not a scene
            return
        if not frame.radiometric and self.cfg.camera.radiometric:
            self.counters["frames_invalid"] += 1
            return
        look = self.look or self._next_look(now)
        if look is None:
            return
        if not self._advance_motion(look, now):
            return
        if now - (look.arrived_at or now) < look.settle_s:
            return
        pose = self._frame_pose(frame, look)
        look.frames_used += 1
        if look.probe is not None:
            look.probe.poll()
        if look.scan is not None:
            look.scan.add_frame(frame, pose, now)
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

    # ------------------------------------------------------------------ looks

    def _start_look(self, look: Look, now: float) -> None:
        assert self.ptz is not None
        if self.looks.sun_blocks(look, *self._sun(now)):
            self.counters["looks_refused_sun"] += 1
            log.warning("look refused: the sun would be in view", kind=look.kind,
                        pan_deg=round(look.pan_deg, 3), tilt_deg=round(look.tilt_deg, 3))  # fmt: skip
            self.look = None
            return
        status = self.ptz.reading().status
        current = status.pan_deg if status is not None else look.pan_deg
        look.waypoints = approach_waypoints(current, look.pan_deg)
        look.started_at = now
        look.arrived_at = None
        if look.kind in SCANNED_KINDS and look.scan is None and look.candidate is not None:
            look.scan = ConfirmationScan(self.detection, look.candidate,
                                         self.cfg.confirmation.persistence_fraction)  # fmt: skip
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
            and not status.moving
            and abs(signed_delta_deg(status.pan_deg, target_pan)) <= ARRIVAL_TOLERANCE_DEG
            and abs(status.tilt_deg - look.tilt_deg) <= ARRIVAL_TOLERANCE_DEG
        ):
            look.waypoints.pop(0)
            if look.waypoints:
                look.request_id = self.ptz.move_to(look.waypoints[0], look.tilt_deg, look.hfov_deg)
                return False
            look.arrived_at = now
            self._start_probe(look)
            return True
        if now - look.started_at > MOVE_TIMEOUT_S:
            self.counters["looks_abandoned"] += 1
            log.warning("head did not arrive", kind=look.kind, pan_deg=look.pan_deg,
                        error=reading.error)  # fmt: skip
            self.look = None
        return False

    def _next_look(self, now: float) -> Look | None:
        look = self.looks.next_look(now, self.alarms.due_revisits(now), *self._sun(now))
        self.counters["skipped_for_sun"] = self.looks.patrol.skipped_for_sun
        if look is None:
            return None
        self._start_look(look, now)
        return self.look

    def _start_probe(self, look: Look) -> None:
        """Ask the lidar along the candidate's bearing while the camera dwells."""
        assert self.devices is not None
        if self.devices.lidar is None or look.scan is None:
            return
        look.probe = LidarProbe(self.devices.lidar)
        look.probe.start(look.pan_deg, look.tilt_deg)

    def _finish_look(self, look: Look, now: float) -> None:
        self.look = None
        if look.kind == LookKind.CONFIRM and look.scan is not None:
            self._conclude_confirmation(look, look.scan.verdict(), now)
        elif look.kind == LookKind.REVISIT and look.alarm_id is not None and look.scan is not None:
            verdict = look.scan.verdict()
            if verdict.outcome == "confirmed":
                lidar = look.probe.result() if look.probe is not None else None
                geo = self._geolocate(verdict.bearing_deg, verdict.elevation_deg, lidar)
                observation = self._observation(verdict, geo, now, lidar)
                event = self.alarms.observe_seen(look.alarm_id, observation, now)
                if event is not None:
                    self._publish_alarm(event, verdict, now)
            else:
                self.alarms.observe_absent(look.alarm_id, now)

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
        self._start_look(confirm, now)

    def _conclude_confirmation(self, look: Look, verdict: Verdict, now: float) -> None:
        assert look.candidate is not None
        if verdict.outcome == "confirmed":
            self.counters["confirmed"] += 1
            lidar = look.probe.result() if look.probe is not None else None
            geo = self._geolocate(verdict.bearing_deg, verdict.elevation_deg, lidar)
            # the fire was first seen when the patrol raised the candidate
            observation = self._observation(verdict, geo, look.candidate.t, lidar)
            events = self._alarm_events([self.alarms.observe_confirmed(observation, now)])
            for event in events:
                self._publish_alarm(event, verdict, now)
            log.info("fire confirmed", bearing_deg=round(verdict.bearing_deg, 3),
                     range_m=geo.range_m, bearing_only=geo.bearing_only)  # fmt: skip
            return
        if verdict.outcome == "undecided" and self.looks.undecided(look, now):
            return
        self.counters["dismissed"] += 1
        self.looks.dismiss(look.candidate, verdict.reason, now)
        log.info("candidate dismissed", reason=verdict.reason, pan_deg=round(look.pan_deg, 3))

    def _geolocate(
        self, bearing_deg: float, elevation_deg: float, lidar: ProbeResult | None = None
    ) -> Geolocation:
        g = self.cfg.geolocation
        return geolocate(
            self.site,
            bearing_deg,
            elevation_deg,
            terrain=self.terrain,
            ground_elevation_m=self.cfg.tower.ground_elevation_m,
            canopy_height_m=g.canopy_height_m,
            lidar_range_m=lidar.range_m if lidar is not None else None,
            k=g.refraction_k,
            max_range_m=g.max_range_m,
            errors=ErrorModel(
                sigma_pan_deg=g.sigma_pan_deg,
                sigma_tilt_deg=g.sigma_tilt_deg,
                sigma_k=g.sigma_refraction_k,
                sigma_dem_m=g.sigma_dem_m,
            ),
        )

    def _observation(
        self, verdict: Verdict, geo: Geolocation, now: float, lidar: ProbeResult | None = None
    ) -> FireObservation:
        range_m = geo.range_m
        if range_m is None and math.isfinite(geo.range_min_m) and math.isfinite(geo.range_max_m):
            range_m = 0.5 * (geo.range_min_m + geo.range_max_m)  # bearing-only: mid-interval
        a_eq_m2 = verdict.a_eq_m2(range_m, self._transmittance(range_m))
        return FireObservation.from_geolocation(
            geo,
            t=now,
            bearing_sigma_deg=self._bearing_sigma_deg(self.cfg.camera.zoom_hfov_deg),
            a_eq_m2=a_eq_m2,
            peak_k=verdict.peak_k,
            evidence={"thermal": verdict.evidence}
            | ({"lidar": lidar.evidence} if lidar is not None else {}),
            confidence=verdict.confidence,
        )

    def _transmittance(self, range_m: float | None) -> float:
        """Fire-spectrum transmittance of today's air over ``range_m`` (1 when unknown)."""
        if range_m is None:
            return 1.0
        w = self.cfg.weather
        return float(atmosphere_of(w).transmittance(range_m, 1000.0, w.air_temp_c + 273.15))

    def _bearing_sigma_deg(self, hfov_deg: float) -> float:
        """1-σ of a stated bearing: pan calibration and the centroid's pixel quantisation.

        A centroid uniformly placed within one pixel has σ = IFOV/√12.
        """
        ifov_deg = hfov_deg / self.cfg.camera.width_px
        return math.hypot(self.cfg.geolocation.sigma_pan_deg, ifov_deg / math.sqrt(12.0))

    # ------------------------------------------------------------------ alarms

    def _alarm_events(self, events: list[AlarmEvent | None]) -> list[AlarmEvent]:
        return [e for e in events if e is not None]

    def _publish_alarm(self, event: AlarmEvent, verdict: Verdict | None, now: float) -> None:
        assert self.uplink is not None and self.devices is not None
        tower = self._tower_ref()
        self.uplink.send_alarm(event.to_message(tower))
        if event.state == "confirmed":
            self._close_relay(now)
            if verdict is not None and verdict.frame is not None:
                self._send_snapshot(event, verdict)
        log.info("alarm", alarm_id=event.alarm_id, seq=event.seq, state=event.state)

    def _send_snapshot(self, event: AlarmEvent, verdict: Verdict) -> None:
        assert self.uplink is not None and verdict.frame is not None
        obs = event.observation
        visible = self.last_visible.image if self.last_visible is not None else None
        jpeg = render_snapshot(
            verdict.frame.image,
            visible,
            verdict.hotspot_xy,
            bearing_deg=obs.bearing_deg,
            range_m=None if obs.bearing_only else obs.range_m,
            range_interval_m=(obs.range_min_m, obs.range_max_m),
            range_source=obs.range_source,
            t_unix=event.t,
            tower_id=self.cfg.tower.id,
            alarm_id=event.alarm_id,
        )
        save_snapshot(jpeg, self.state_dir / "snapshots", event.alarm_id, event.seq)
        self.uplink.send_snapshot(event.alarm_id, jpeg)

    # ------------------------------------------------------------------ relay

    def _close_relay(self, now: float) -> None:
        assert self.devices is not None
        if self.devices.relay is None:
            return
        self.devices.relay.set_output(True)
        self.relay_closed_at = now
        log.info("relay closed")

    def _open_relay(self, why: str) -> None:
        assert self.devices is not None
        if self.devices.relay is None or self.relay_closed_at is None:
            return
        self.devices.relay.set_output(False)
        self.relay_closed_at = None
        log.info("relay opened", reason=why)

    def _relay_rules(self, now: float) -> None:
        """On-time and hold: open the contact once its time is up and nothing holds it."""
        rules = self.cfg.alarm_output
        if self.relay_closed_at is None or rules.on_time_s <= 0.0:
            return
        if now - self.relay_closed_at < rules.on_time_s:
            return
        if rules.hold_while_open and self.alarms.open_alarms():
            return
        self._open_relay("on-time elapsed")

    # ------------------------------------------------------------------ commands

    def handle_command(self, command: Command) -> Mapping[str, Any]:
        """The uplink's handler (MQTT thread): refuse what cannot be done, queue the rest.

        Only immutable config is read here; the main loop carries the command out.
        """
        verb = command.verb.value
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

    def _drain_commands(self) -> None:
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            self.counters["commands"] += 1
            log.info("command", verb=command.verb.value, request_id=command.request_id)
            self._command_handlers[command.verb](command, self.clock.now())

    def _test_alarm(self, command: TestAlarmCommand, now: float) -> None:
        assert self.uplink is not None
        hfov_deg = self.cfg.camera.hfov_deg
        event = self.alarms.test_alarm(now, bearing_sigma_deg=self._bearing_sigma_deg(hfov_deg))
        self.uplink.send_alarm(event.to_message(self._tower_ref()))

    def _relay_reset(self, command: RelayResetCommand, now: float) -> None:
        self._open_relay("relay-reset command")

    def _goto(self, command: GotoCommand, now: float) -> None:
        look = self.looks.hold_look(command.pan_deg, command.tilt_deg, command.hfov_deg,
                                    command.hold_s)  # fmt: skip
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
        if not self.looks.queue(look, first=True):
            log.warning("recheck dropped: too many looks waiting", request_id=command.request_id)

    # ------------------------------------------------------------------ status

    def _housekeeping(self) -> None:
        now = self.clock.now()
        if self.first_frame_t is not None:
            for event in self.alarms.due_updates(now) + self.alarms.due_clears(now):
                self._publish_alarm(event, None, now)
            self._relay_rules(now)
        wall = time.monotonic()
        if wall - self.last_status_wall >= self.cfg.mqtt.status_interval_s:
            self.last_status_wall = wall
            self._publish_status(now)
        fresh = self.last_frame_wall is not None and wall - self.last_frame_wall < WATCHDOG_FRESH_S
        if fresh and wall - self.last_watchdog_wall >= 1.0:
            self.last_watchdog_wall = wall
            sdnotify.watchdog()

    def status_message(self, now: float) -> StatusMessage:
        assert self.devices is not None and self.uplink is not None and self.ptz is not None
        c = self.cfg
        reasons: list[str] = []
        sensors: dict[str, SensorHealth] = {}
        for name, health in self.devices.health().items():
            state = _SENSOR_STATE[health.state]
            if state != "ok":
                reasons.append(f"{name}: {health.last_error or health.state.value}")
            sensors[name] = SensorHealth(state=state, detail=health.last_error)
        wall = time.monotonic()
        if self.last_frame_wall is None or wall - self.last_frame_wall > FRAME_STALE_S:
            reasons.append(f"thermal: no frame for {FRAME_STALE_S:.0f} s")
            sensors["thermal"] = SensorHealth(state="failed", detail="no frames")
        if self.alarms.load_problem is not None:
            reasons.append(self.alarms.load_problem)
        ptz_error = self.ptz.reading().error
        if ptz_error:
            reasons.append(f"ptz: {ptz_error}")
        position = TowerPosition(
            lat=c.tower.lat, lon=c.tower.lon, height_m=c.tower.camera_altitude_m
        )
        if self.devices.gnss is not None:
            fix = self.devices.gnss.latest_fix()
            if fix is not None:
                # The configured (surveyed) position is what geolocation uses; a GNSS fix
                # far from it means the config or the mast is wrong: say so.
                offset_m, _ = distance_bearing(c.tower.lat, c.tower.lon, fix.lat, fix.lon)
                if offset_m > GNSS_POSITION_TOLERANCE_M:
                    reasons.append(
                        f"gnss: fix {fix.lat:.6f}, {fix.lon:.6f} is {offset_m:.0f} m from "
                        f"tower.lat/tower.lon (tolerance {GNSS_POSITION_TOLERANCE_M:.0f} m)"
                    )
        is_day = self.detection.is_day(now or time.time())
        ranges = mission_ranges(c.camera, c.weather, c.coverage, is_day=is_day)
        for r in ranges:
            if not r.met:
                reasons.append(
                    f"detection range: a {r.size_m:g} m fire is seen to {r.detectable_range_m / 1000:.1f} km "
                    f"today, {r.required_range_m / 1000:.1f} km required"
                )
        counters = dict(self.counters)
        uplink = self.uplink.counters()
        counters.update(
            {"mqtt_reconnects": uplink.reconnects, "outbox_dropped": uplink.outbox_dropped}
        )
        return StatusMessage(
            tower_id=c.tower.id,
            state="degraded" if reasons else "online",
            reasons=tuple(reasons),
            heartbeat_at=iso_z(time.time()),
            version=__version__,
            uptime_s=round(wall - self.started_wall, 1),
            sensors=sensors,
            outbox_depth=uplink.outbox_depth,
            position=position,
            patrol_cycle_s=self.looks.patrol_cycle_s,
            detection_range_m=coverage_range_m(ranges),
            counters=counters,
        )

    def _publish_status(self, now: float) -> None:
        assert self.uplink is not None
        status = self.status_message(now)
        self.uplink.publish_status(status)
        sdnotify.status(f"{status.state}: {', '.join(status.reasons) or 'all sensors ok'}")
