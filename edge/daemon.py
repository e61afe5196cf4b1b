"""The tower daemon's main loop: patrol, fire-point localisation scan, alarms, status.

One thread owns all state (STYLE.md §7). Devices deliver in their own threads (frames
queue, PTZ worker, MQTT); this loop waits for frames, never for wall time, so it runs
unchanged against a simulated tower that is many times faster than real time.

Looks: the head is always doing one *look* — a patrol stop, a confirmation of a
candidate, a revisit of an open alarm, a recheck asked by the hub, or a hold. A look is
move → settle → dwell; frames only count once the head has settled.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from detectors.solar import sun_position
from drivers.base import DriverState, Frame
from edge import __version__, sdnotify
from edge.alarms import AlarmBook, AlarmEvent, FireObservation
from edge.clock import CameraClock, Clock, SystemClock
from edge.config import TowerConfig
from edge.confirm import ConfirmationScan, Verdict, warm_up_detection
from edge.coverage import coverage_range_m, mission_ranges
from edge.detection import Candidate, ThermalStage
from edge.devices import Devices, build_devices
from edge.geodesy import distance_bearing
from edge.geolocation import (
    ErrorModel,
    Geolocation,
    TowerSite,
    bearing_elevation_to,
    geolocate,
)
from edge.lidar_probe import LidarProbe, ProbeResult
from edge.messages import (
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
)
from edge.patrol import (
    PatrolPlan,
    Stop,
    approach_waypoints,
    signed_delta_deg,
    sun_in_view,
    tile_sector,
)
from edge.ptz_worker import PtzWorker
from edge.secrets import FileSecretStore
from edge.snapshot import render_snapshot, save_snapshot
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


@dataclass
class Look:
    purpose: str  # patrol | confirm | revisit | recheck | hold
    pan_deg: float
    tilt_deg: float
    hfov_deg: float
    dwell_s: float
    settle_s: float
    waypoints: list[float] = field(default_factory=list)
    request_id: int | None = None
    started_at: float = 0.0
    arrived_at: float | None = None
    stop: Stop | None = None
    candidate: Candidate | None = None
    scan: ConfirmationScan | None = None
    probe: LidarProbe | None = None
    alarm_id: str | None = None
    revisit_count: int = 0
    frames_used: int = 0


@dataclass
class Dismissed:
    pan_deg: float
    tilt_deg: float
    reason: str
    until: float
    a_eq: float


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
        self.dismissed: list[Dismissed] = []
        self.devices: Devices | None = None
        self.uplink: Uplink | None = None
        self.ptz: PtzWorker | None = None
        self.alarms = AlarmBook(
            self.state_dir / "alarms.json",
            cfg.tower.id,
            clear_after_s=cfg.alarm.clear_after_s,
            update_min_interval_s=cfg.alarm.update_min_interval_s,
            merge_radius_m=cfg.alarm.merge_radius_m,
            merge_bearing_deg=cfg.alarm.merge_bearing_deg,
            revisit_interval_s=cfg.alarm.revisit_interval_s,
        )
        stops = (
            [
                Stop(i, cfg.patrol.azimuth_start_deg, cfg.patrol.tilt_deg, cfg.camera.hfov_deg, p)
                for i, p in enumerate(cfg.patrol.presets)
            ]  # fmt: skip
            if cfg.patrol.presets
            else tile_sector(
                cfg.patrol.azimuth_start_deg,
                cfg.patrol.azimuth_span_deg,
                cfg.patrol.tilt_deg,
                cfg.camera.hfov_deg,
                cfg.patrol.overlap_fraction,
            )
        )
        self.patrol = PatrolPlan(stops)
        self.thermal_stage = ThermalStage(cfg, patrol_stops=len(stops))
        self.look: Look | None = None
        self.pending_looks: list[Look] = []
        self.last_visible: Frame | None = None
        self.started_wall = time.monotonic()
        self.first_frame_t: float | None = None
        self.last_frame_wall: float | None = None
        self.last_status_wall = -math.inf
        self.last_watchdog_wall = -math.inf
        self.cycle_started_t: float | None = None
        self.patrol_cycle_s: float | None = None
        self.hold_until: float | None = None
        self.relay_closed_at: float | None = None
        self.site = TowerSite(cfg.tower.lat, cfg.tower.lon, cfg.tower.camera_altitude_m)
        self.terrain = self._load_terrain()

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        cfg = self.cfg
        self.state_dir.mkdir(parents=True, exist_ok=True)
        secrets = FileSecretStore.from_config(cfg)
        self.devices = build_devices(cfg, secrets)
        self.uplink = self._make_uplink(secrets)
        self.devices.open_all()
        self.ptz = PtzWorker(self.devices.ptz)
        self.ptz.start()
        # numba loads (or, on a first start, compiles) its kernels now, not on the first
        # frame, so the main loop never stalls past the systemd watchdog
        warm_up_detection(cfg)
        self.uplink.start()
        self.uplink.subscribe_commands(self._on_command)
        # An alarm saved just before a crash may never have reached the outbox: queue the
        # newest event of each alarm again; the hub de-duplicates on (alarm_id, seq).
        tower = self._tower_ref()
        for event in self.alarms.events_for_resend():
            self.uplink.send_alarm(event.to_message(tower))
        sdnotify.ready()
        log.info("daemon started", tower=cfg.tower.id, stops=len(self.patrol.stops),
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
        key_path = secrets.private_path(m.tls.key_secret) if m.tls and m.tls.key_secret else None
        return Uplink(
            m,
            tower_id=self.cfg.tower.id,
            outbox_path=self.state_dir / "outbox.sqlite",
            password=password,
            tls_key_path=key_path,
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
            self.cycle_started_t = now
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
        elif look.purpose != "hold":
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
        if look.purpose != "patrol" and self._sun_in(look, now):
            # the patrol plan already avoids the sun; any other look is checked here
            self.counters["looks_refused_sun"] += 1
            log.warning("look refused: the sun would be in view", purpose=look.purpose,
                        pan_deg=round(look.pan_deg, 3), tilt_deg=round(look.tilt_deg, 3))  # fmt: skip
            self.look = None
            return
        status = self.ptz.reading().status
        current = status.pan_deg if status is not None else look.pan_deg
        look.waypoints = approach_waypoints(current, look.pan_deg)
        look.started_at = now
        look.arrived_at = None
        look.request_id = self.ptz.move_to(look.waypoints[0], look.tilt_deg, look.hfov_deg)
        self.look = look
        log.debug("look", purpose=look.purpose, pan_deg=round(look.pan_deg, 3),
                  tilt_deg=round(look.tilt_deg, 3), hfov_deg=round(look.hfov_deg, 3))  # fmt: skip

    def _sun_in(self, look: Look, now: float) -> bool:
        cfg = self.cfg
        sun_az, sun_el = sun_position(now, cfg.tower.lat, cfg.tower.lon)
        vfov = look.hfov_deg * cfg.camera.height_px / cfg.camera.width_px
        return sun_in_view(look.pan_deg, look.tilt_deg, look.hfov_deg, vfov, sun_az, sun_el,
                           cfg.patrol.sun_avoidance_margin_deg)  # fmt: skip

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
            log.warning("head did not arrive", purpose=look.purpose, pan_deg=look.pan_deg,
                        error=reading.error)  # fmt: skip
            self.look = None
        return False

    def _next_look(self, now: float) -> Look | None:
        if self.hold_until is not None and now < self.hold_until:
            return None
        self.hold_until = None
        if self.pending_looks:
            look = self.pending_looks.pop(0)
            self._start_look(look, now)
            return self.look
        for alarm in self.alarms.due_revisits(now):
            obs = alarm.observation
            look = self._revisit_look(alarm.alarm_id, obs.bearing_deg, obs.elevation_deg)
            self._start_look(look, now)
            return self.look
        cfg = self.cfg
        sun_az, sun_el = sun_position(now, cfg.tower.lat, cfg.tower.lon)
        before = self.patrol.cycles_completed
        stop = self.patrol.take_next_clear_of_sun(
            cfg.camera.vfov_deg, sun_az, sun_el, cfg.patrol.sun_avoidance_margin_deg
        )
        self.counters["skipped_for_sun"] = self.patrol.skipped_for_sun
        if self.patrol.cycles_completed > before and self.cycle_started_t is not None:
            self.patrol_cycle_s = now - self.cycle_started_t
            self.cycle_started_t = now
        if stop is None:
            return None
        look = Look(
            "patrol",
            stop.pan_deg,
            stop.tilt_deg,
            stop.hfov_deg,
            dwell_s=cfg.patrol.dwell_s,
            settle_s=cfg.patrol.settle_s,
            stop=stop,
        )
        self._start_look(look, now)
        return self.look

    def _start_probe(self, look: Look) -> None:
        """Ask the lidar along the candidate's bearing while the camera dwells."""
        assert self.devices is not None
        if self.devices.lidar is None or look.scan is None:
            return
        look.probe = LidarProbe(self.devices.lidar)
        look.probe.start(look.pan_deg, look.tilt_deg)

    def _revisit_look(self, alarm_id: str, bearing_deg: float, elevation_deg: float) -> Look:
        c = self.cfg
        look = Look("revisit", bearing_deg, elevation_deg, c.camera.zoom_hfov_deg,
                    dwell_s=c.confirmation.dwell_s, settle_s=c.confirmation.settle_s,
                    alarm_id=alarm_id)  # fmt: skip
        look.scan = ConfirmationScan(
            c, Candidate.expected_at(bearing_deg, elevation_deg, c.camera.hfov_deg)
        )
        return look

    def _finish_look(self, look: Look, now: float) -> None:
        self.look = None
        if look.purpose == "confirm" and look.scan is not None:
            self._conclude_confirmation(look, look.scan.verdict(), now)
        elif look.purpose == "revisit" and look.alarm_id is not None and look.scan is not None:
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
        for alarm in self.alarms.open_alarms():
            # A known fire seen again from the patrol: its scheduled revisit measures it
            # zoomed in; no new confirmation scan is spent on it.
            bearing_gap = abs(signed_delta_deg(alarm.observation.bearing_deg, candidate.pan_deg))
            if bearing_gap <= self.cfg.alarm.merge_bearing_deg:
                log.debug("candidate at an open alarm", alarm_id=alarm.alarm_id)
                return
        for d in self.dismissed:
            if (
                d.until > now
                and abs(signed_delta_deg(d.pan_deg, candidate.pan_deg)) < 0.3
                and abs(d.tilt_deg - candidate.tilt_deg) < 0.3
                and candidate.a_eq_m2_per_range2 < 2.0 * d.a_eq
            ):
                log.debug("candidate at a dismissed spot", reason=d.reason)
                return
        c = self.cfg
        confirm = Look(
            "confirm",
            candidate.pan_deg,
            candidate.tilt_deg,
            c.camera.zoom_hfov_deg,
            dwell_s=c.confirmation.dwell_s,
            settle_s=c.confirmation.settle_s,
            candidate=candidate,
            alarm_id=look.alarm_id,
            revisit_count=look.revisit_count,
        )
        confirm.scan = ConfirmationScan(c, candidate)
        if look.purpose == "patrol" and look.stop is not None:
            # resume the patrol at the interrupted stop afterwards
            self.patrol.resume_at(look.stop.index)
        log.info("candidate: confirming", pan_deg=round(candidate.pan_deg, 3),
                 tilt_deg=round(candidate.tilt_deg, 3), score=round(candidate.score, 2))  # fmt: skip
        self._start_look(confirm, now)

    def _conclude_confirmation(self, look: Look, verdict: Verdict, now: float) -> None:
        assert look.candidate is not None
        c = self.cfg
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
        if verdict.outcome == "undecided" and look.revisit_count < c.confirmation.max_revisits:
            again = Look("confirm", look.pan_deg, look.tilt_deg, look.hfov_deg,
                         dwell_s=look.dwell_s, settle_s=look.settle_s, candidate=look.candidate,
                         revisit_count=look.revisit_count + 1)  # fmt: skip
            again.scan = ConfirmationScan(c, look.candidate)
            self.hold_until = None
            self.pending_looks.append(again)
            return
        self.counters["dismissed"] += 1
        self.dismissed = [d for d in self.dismissed if d.until > now]
        self.dismissed.append(
            Dismissed(
                look.candidate.pan_deg,
                look.candidate.tilt_deg,
                verdict.reason,
                now + c.confirmation.dismissed_memory_s,
                look.candidate.a_eq_m2_per_range2,
            )
        )
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
        a_eq_m2 = verdict.a_eq_m2(range_m, self.thermal_stage.transmittance(range_m))
        return FireObservation.from_geolocation(
            geo,
            t=now,
            a_eq_m2=a_eq_m2,
            peak_k=verdict.peak_k,
            evidence={"thermal": verdict.evidence}
            | ({"lidar": lidar.evidence} if lidar is not None else {}),
            confidence=verdict.confidence,
        )

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

    def _on_command(self, command: Command) -> dict[str, Any]:
        """Runs on the MQTT thread: queue the parsed command for the main loop, reply at once."""
        verb = type(command).__name__
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
            log.info("command", command=type(command).__name__, request_id=command.request_id)
            now = self.clock.now()
            self._execute(command, now)

    def _execute(self, command: Command, now: float) -> None:
        c = self.cfg
        if isinstance(command, TestAlarmCommand):
            assert self.uplink is not None
            event = self.alarms.test_alarm(now)
            tower = self._tower_ref()
            self.uplink.send_alarm(event.to_message(tower))
        elif isinstance(command, RelayResetCommand):
            self._open_relay("relay-reset command")
        elif isinstance(command, GotoCommand):
            look = Look("hold", command.pan_deg, command.tilt_deg,
                        command.hfov_deg or c.camera.hfov_deg, dwell_s=command.hold_s,
                        settle_s=0.0)  # fmt: skip
            self.look = None
            self._start_look(look, now)
        elif isinstance(command, RecheckCommand):
            if command.bearing_deg is not None:
                pan = command.bearing_deg
                tilt = (
                    command.elevation_deg
                    if command.elevation_deg is not None
                    else c.patrol.tilt_deg
                )
            else:
                assert command.lat is not None and command.lon is not None
                pan, tilt = bearing_elevation_to(self.site, command.lat, command.lon,
                                                 c.tower.ground_elevation_m)  # fmt: skip
            self.pending_looks.insert(0, Look("recheck", pan, tilt, c.camera.hfov_deg,
                                              dwell_s=c.patrol.dwell_s, settle_s=c.patrol.settle_s))  # fmt: skip

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
        ptz_error = self.ptz.reading().error
        if ptz_error:
            reasons.append(f"ptz: {ptz_error}")
        # I/O threads and storage (edge.thread_health): a dead thread or a replaced outbox.
        for thread in (*self.uplink.health().values(), self.ptz.health()):
            if not thread.alive:
                reasons.append(thread.describe())
        if self.uplink.counters().outbox_recovered:
            reasons.append(str(self.uplink.counters().outbox_recovered))
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
        is_day = self._is_day(now)
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
            patrol_cycle_s=self.patrol_cycle_s,
            detection_range_m=coverage_range_m(ranges),
            counters=counters,
        )

    def _publish_status(self, now: float) -> None:
        assert self.uplink is not None
        status = self.status_message(now)
        self.uplink.publish_status(status)
        sdnotify.status(f"{status.state}: {', '.join(status.reasons) or 'all sensors ok'}")

    def _is_day(self, now: float) -> bool:
        _, sun_el = sun_position(now or time.time(), self.cfg.tower.lat, self.cfg.tower.lon)
        return sun_el > self.cfg.detection.sun_elevation_day_deg
