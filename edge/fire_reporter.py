"""The fire reporter: a verdict becomes a located observation, an alarm, a snapshot and the relay.

The daemon's loop hands it what a confirmation or revisit concluded; it geolocates the
fire, lets the alarm book decide what changed, closes the relay before anything is
stored or sent (the siren must not wait on a disk or a broker), publishes the alarm and
its snapshot, and runs the relay's on-time rule. One thread (the daemon's) calls it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import structlog

from drivers.base import Frame, FrameSource
from edge.alarms import AlarmBook, AlarmEvent, FireObservation
from edge.config import TowerConfig
from edge.confirm import Verdict
from edge.coverage import atmosphere_of
from edge.geodesy import destination, distance_bearing
from edge.geolocation import (
    ErrorModel,
    Geolocation,
    Terrain,
    TowerSite,
    geolocate,
    plume_drift_sigma_m,
)
from edge.lidar_probe import ProbeResult
from edge.lidar_sweep import SmokeFix
from edge.messages import AlarmMessage
from edge.snapshot import prune_snapshots, render_snapshot, save_snapshot

log = structlog.get_logger(__name__)

# The confidence of an alarm that stands on the lidar's smoke alone. Set by hand, not
# yet calibrated on replayed benchmark alarms: below any thermally confirmed fire's.
SMOKE_ONLY_CONFIDENCE = 0.6


class AlarmSink(Protocol):
    """Where alarms and snapshots go (edge.uplink.Uplink)."""

    def send_alarm(self, message: AlarmMessage) -> int: ...

    def send_snapshot(self, alarm_id: str, jpeg: bytes) -> Any: ...


class RelayOutput(Protocol):
    def set_output(self, on: bool) -> None: ...


def bearing_sigma_deg(sigma_pan_deg: float, hfov_deg: float, width_px: int) -> float:
    """1-σ of a stated bearing: pan calibration and the centroid's pixel quantisation.

    A centroid uniformly placed within one pixel has σ = IFOV/√12, so the result is > 0
    even for a perfectly calibrated head.
    """
    ifov_deg = hfov_deg / width_px
    return math.hypot(sigma_pan_deg, ifov_deg / math.sqrt(12.0))


class FireReporter:
    def __init__(
        self,
        cfg: TowerConfig,
        alarms: AlarmBook,
        sink: AlarmSink,
        relay: RelayOutput | None,
        *,
        terrain: Terrain | None = None,
        visible: FrameSource | None = None,
    ) -> None:
        self.cfg = cfg
        self.alarms = alarms
        self.sink = sink
        self.relay = relay
        self.terrain = terrain
        self.site = TowerSite(cfg.tower.lat, cfg.tower.lon, cfg.tower.camera_altitude_m)
        self.snapshot_dir = Path(cfg.storage.state_dir) / "snapshots"
        self.tower_ref = {"id": cfg.tower.id, "lat": cfg.tower.lat, "lon": cfg.tower.lon}
        # The visible camera is read only from a confirmation's start (expect_snapshot)
        # and asked for its newest frame only when a snapshot is sent, so its stream is
        # neither received nor decoded at the frame rate; the last one answered is kept
        # for when the stream has nothing new.
        self.visible = visible
        self.last_visible: Frame | None = None
        # Lidar ranges that disagreed with the camera and were not used (status counter).
        self.lidar_fixes_rejected = 0
        g = cfg.geolocation
        self.errors = ErrorModel(
            sigma_pan_deg=g.sigma_pan_deg,
            sigma_tilt_deg=g.sigma_tilt_deg,
            sigma_k=g.sigma_refraction_k,
            sigma_dem_m=g.sigma_dem_m,
        )

    # --- what the looks concluded ------------------------------------------------

    def confirmed(
        self, verdict: Verdict, first_seen_t: float, lidar: ProbeResult | None, now: float
    ) -> Geolocation:
        """A confirmation scan confirmed a fire first seen at first_seen_t."""
        geo = self.geolocate(verdict.bearing_deg, verdict.elevation_deg, lidar)
        observation = self.observation(verdict, geo, first_seen_t, lidar)
        if not self.alarms.is_known(observation):
            # a new fire: the siren first, then the disk and the broker, either of which
            # may fail or stall
            self._close_relay(now)
        event = self.alarms.observe_confirmed(observation, now)
        if event is not None:
            self.publish(event, verdict, now)
        return geo

    def seen_again(
        self, alarm_id: str, verdict: Verdict, lidar: ProbeResult | None, now: float
    ) -> None:
        """A revisit saw an open alarm's fire again."""
        geo = self.geolocate(verdict.bearing_deg, verdict.elevation_deg, lidar)
        event = self.alarms.observe_seen(alarm_id, self.observation(verdict, geo, now, lidar), now)
        if event is not None:
            self.publish(event, verdict, now)

    def smoke_alarm(self, smoke: SmokeFix, verdict: Verdict, last_frame: Frame | None,
                    now: float) -> Geolocation:  # fmt: skip
        """Smoke the lidar sweep found and the camera could not confirm: an alarm on the
        lidar's fix (range_source lidar, no size), when the policy allows it.

        ``verdict`` is the camera's look at the ground under the smoke; what it saw
        goes into the thermal evidence, and its last frame into the snapshot.
        """
        geo, sigma_bearing_deg = self.smoke_geolocation(smoke)
        thermal = {"outcome": verdict.outcome, "reason": verdict.reason, **verdict.evidence}
        observation = FireObservation.from_geolocation(
            geo,
            t=smoke.t,
            bearing_sigma_deg=sigma_bearing_deg,
            a_eq_m2=0.0,
            peak_k=verdict.peak_k if math.isfinite(verdict.peak_k) else 0.0,
            evidence={"thermal": thermal, "lidar": self._smoke_evidence(smoke)}
            | ({"visible": verdict.visible} if verdict.visible is not None else {}),
            confidence=SMOKE_ONLY_CONFIDENCE,
        )
        if not self.alarms.is_known(observation):
            self._close_relay(now)
        event = self.alarms.observe_confirmed(observation, now)
        if event is not None:
            snapshot = verdict
            if verdict.frame is None and last_frame is not None:
                # no hotspot: the mark goes where the camera was pointed, under the smoke
                height, width = last_frame.image.shape[:2]
                snapshot = replace(verdict, frame=last_frame, hotspot_xy=(width / 2, height / 2))
            self.publish(event, snapshot, now)
        return geo

    def smoke_seen_again(self, alarm_id: str, smoke: SmokeFix, now: float) -> None:
        """The sweep found an open smoke alarm's plume again: the fire still burns."""
        alarm = next((a for a in self.alarms.open_alarms() if a.alarm_id == alarm_id), None)
        if alarm is None:
            return
        geo, sigma_bearing_deg = self.smoke_geolocation(smoke)
        before = alarm.observation
        observation = FireObservation.from_geolocation(
            geo, t=smoke.t, bearing_sigma_deg=sigma_bearing_deg, a_eq_m2=0.0,
            peak_k=before.peak_k, evidence=before.evidence | {"lidar": self._smoke_evidence(smoke)},
            confidence=before.confidence,
        )  # fmt: skip
        event = self.alarms.observe_seen(alarm_id, observation, now)
        if event is not None:
            self.publish(event, None, now)

    def smoke_geolocation(self, smoke: SmokeFix) -> tuple[Geolocation, float]:
        """The fire under a plume, and the 1-σ of its bearing.

        The beam met the smoke above the fire, where the wind had carried it: the fire
        lies that drift away in a direction the tower does not know, so the drift widens
        both the range (along the beam) and the bearing (across it).
        """
        drift_m = self.plume_drift_m(smoke.range_m, smoke.elevation_deg)
        sigma_bearing_deg = math.hypot(self.cfg.geolocation.sigma_pan_deg,
                                       math.degrees(drift_m / smoke.range_m))  # fmt: skip
        geo = self._geolocate(smoke.azimuth_deg, smoke.elevation_deg, smoke.range_m,
                              self.plume_range_sigma_m(smoke.range_m, smoke.elevation_deg),
                              sigma_pan_deg=sigma_bearing_deg)  # fmt: skip
        return geo, sigma_bearing_deg

    def plume_range_sigma_m(self, slant_range_m: float, beam_elevation_deg: float) -> float:
        """1-σ of a range taken on a plume: the lidar's accuracy and the plume's drift."""
        drift_m = self.plume_drift_m(slant_range_m, beam_elevation_deg)
        return math.hypot(self.cfg.geolocation.sigma_lidar_m, drift_m)

    def plume_drift_m(self, slant_range_m: float, beam_elevation_deg: float) -> float:
        """1-σ distance between where a beam crossed a plume and the plume's fire."""
        g = self.cfg.geolocation
        return plume_drift_sigma_m(self.site.height_m, self.cfg.tower.ground_elevation_m,
                                   slant_range_m, beam_elevation_deg,
                                   self.cfg.weather.wind_speed_m_s, g.plume_rise_m_s,
                                   g.refraction_k)  # fmt: skip

    def mapped_smoke_source(self, smoke: SmokeFix) -> str | None:
        """The mapped source (a flare, a chimney) that explains a plume, or None.

        A source explains it when the plume's ground point lies within the source's
        radius plus twice the plume's drift from its stack.
        """
        lat, lon = destination(self.site.lat, self.site.lon, smoke.azimuth_deg, smoke.range_m)
        reach_m = 2.0 * self.plume_drift_m(smoke.range_m, smoke.elevation_deg)
        for source in self.cfg.known_sources:
            distance_m, _ = distance_bearing(lat, lon, source.lat, source.lon)
            if float(distance_m) <= source.radius_m + reach_m:
                return source.name
        return None

    def _smoke_evidence(self, smoke: SmokeFix) -> dict[str, Any]:
        return smoke.evidence | {
            "range_used": True,
            "range_sigma_m": round(self.plume_range_sigma_m(smoke.range_m, smoke.elevation_deg), 1),
            "drift_sigma_m": round(self.plume_drift_m(smoke.range_m, smoke.elevation_deg), 1),
        }

    def not_seen(self, alarm_id: str, now: float) -> None:
        self.alarms.observe_absent(alarm_id, now)

    def housekeeping(self, now: float) -> None:
        """Rate-limited updates and clears that are due, and the relay's on-time rule."""
        for event in self.alarms.due_updates(now) + self.alarms.due_clears(now):
            self.publish(event, None, now)
        self._relay_rules(now)

    def test_alarm(self, now: float) -> None:
        sigma = bearing_sigma_deg(
            self.cfg.geolocation.sigma_pan_deg, self.cfg.camera.hfov_deg, self.cfg.camera.width_px
        )
        event = self.alarms.test_alarm(now, bearing_sigma_deg=sigma)
        self.sink.send_alarm(event.to_message(self.tower_ref))

    def relay_reset(self) -> None:
        self._open_relay("relay-reset command")

    def resume(self) -> None:
        """After a start: the relay as it was, and the newest event of each alarm again.

        A relay closed before a restart is closed again (the siren must not fall silent
        mid-alarm because the process restarted). An alarm saved just before a crash may
        never have reached the outbox; the hub de-duplicates on (alarm_id, seq).
        """
        if self.relay is not None and self.alarms.relay_closed_at is not None:
            self.relay.set_output(True)
            log.info("relay closed again after a restart")
        for event in self.alarms.events_for_resend():
            self.sink.send_alarm(event.to_message(self.tower_ref))

    # --- geolocation -------------------------------------------------------------

    def geolocate(
        self, bearing_deg: float, elevation_deg: float, lidar: ProbeResult | None = None
    ) -> Geolocation:
        """The camera's fix, or the lidar's where the lidar found the plume and agrees.

        A lidar range is where the beam crossed the smoke, which has drifted downwind of
        the fire: its error carries that drift (lidar_range_sigma_m). A lidar range
        outside the camera's own range interval (widened by twice that error) is another
        plume or a hard target: it is reported in the alarm's lidar evidence, counted,
        and not trusted.
        """
        camera = self._geolocate(bearing_deg, elevation_deg)
        if lidar is None or lidar.range_m is None:
            return camera
        sigma_m = self.lidar_range_sigma_m(lidar)
        fix = self._geolocate(bearing_deg, elevation_deg, lidar.range_m, sigma_m)
        if fix.range_m is not None and (
            camera.range_min_m - 2.0 * sigma_m <= fix.range_m <= camera.range_max_m + 2.0 * sigma_m
        ):
            return fix
        self.lidar_fixes_rejected += 1
        log.warning("lidar range disagrees with the camera; not used",
                    lidar_range_m=round(lidar.range_m, 1),
                    camera_range_min_m=round(camera.range_min_m, 1),
                    camera_range_max_m=round(camera.range_max_m, 1))  # fmt: skip
        return camera

    def lidar_range_sigma_m(self, lidar: ProbeResult) -> float:
        """1-σ of a lidar fix: the range accuracy and the plume's drift from its fire."""
        g = self.cfg.geolocation
        if lidar.range_m is None:
            return g.sigma_lidar_m
        beam_deg = lidar.beam_elevation_deg
        if beam_deg is None:
            beam_deg = lidar.tilt_deg if lidar.tilt_deg is not None else 0.0
        return self.plume_range_sigma_m(lidar.range_m, beam_deg)

    def _geolocate(
        self,
        bearing_deg: float,
        elevation_deg: float,
        lidar_range_m: float | None = None,
        sigma_lidar_m: float = 0.0,
        *,
        sigma_pan_deg: float | None = None,
    ) -> Geolocation:
        g = self.cfg.geolocation
        errors = replace(self.errors, sigma_lidar_m=sigma_lidar_m)
        if sigma_pan_deg is not None:
            errors = replace(errors, sigma_pan_deg=sigma_pan_deg)
        return geolocate(
            self.site,
            bearing_deg,
            elevation_deg,
            terrain=self.terrain,
            ground_elevation_m=self.cfg.tower.ground_elevation_m,
            canopy_height_m=g.canopy_height_m,
            lidar_range_m=lidar_range_m,
            k=g.refraction_k,
            max_range_m=g.max_range_m,
            errors=errors,
        )

    def observation(
        self, verdict: Verdict, geo: Geolocation, t: float, lidar: ProbeResult | None = None
    ) -> FireObservation:
        range_m = geo.range_m
        if range_m is None and math.isfinite(geo.range_min_m) and math.isfinite(geo.range_max_m):
            range_m = 0.5 * (geo.range_min_m + geo.range_max_m)  # bearing-only: mid-interval
        cam = self.cfg.camera
        return FireObservation.from_geolocation(
            geo,
            t=t,
            bearing_sigma_deg=bearing_sigma_deg(
                self.cfg.geolocation.sigma_pan_deg, cam.zoom_hfov_deg, cam.width_px
            ),
            a_eq_m2=verdict.a_eq_m2(range_m, self.transmittance(range_m)),
            peak_k=verdict.peak_k,
            evidence={"thermal": verdict.evidence}
            | ({"visible": verdict.visible} if verdict.visible is not None else {})
            | ({"lidar": self._lidar_evidence(lidar, geo)} if lidar is not None else {}),
            confidence=verdict.confidence,
        )

    def _lidar_evidence(self, lidar: ProbeResult, geo: Geolocation) -> dict[str, Any]:
        """The probe's evidence, with whether its range located the fire and how well."""
        if lidar.range_m is None:
            return lidar.evidence
        return lidar.evidence | {
            "range_used": geo.range_source == "lidar",
            "range_sigma_m": round(self.lidar_range_sigma_m(lidar), 1),
        }

    def transmittance(self, range_m: float | None) -> float:
        """Fire-spectrum transmittance of today's air over ``range_m`` (1 when unknown)."""
        if range_m is None:
            return 1.0
        w = self.cfg.weather
        return float(atmosphere_of(w).transmittance(range_m, 1000.0, w.air_temp_c + 273.15))

    # --- publishing --------------------------------------------------------------

    def publish(self, event: AlarmEvent, verdict: Verdict | None, now: float) -> None:
        if event.state == "confirmed":
            self._close_relay(now)
        self.sink.send_alarm(event.to_message(self.tower_ref))
        if event.state == "confirmed" and verdict is not None and verdict.frame is not None:
            self._send_snapshot(event, verdict)
        log.info("alarm", alarm_id=event.alarm_id, seq=event.seq, state=event.state)

    def expect_snapshot(self, within_s: float) -> None:
        """A confirmation has begun: the visible camera, read on demand, is wanted until
        its alarm's snapshot could be sent (``within_s``)."""
        if self.visible is not None:
            self.visible.want(within_s)

    def visible_frame(self) -> Frame | None:
        """The visible camera's newest frame since the last call, without waiting (None:
        nothing new, or no camera); the snapshot uses the last one seen."""
        if self.visible is None:
            return None
        newest = self.visible.newest()
        if newest is not None:
            self.last_visible = newest
        return newest

    def _send_snapshot(self, event: AlarmEvent, verdict: Verdict) -> None:
        assert verdict.frame is not None
        obs = event.observation
        self.visible_frame()
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
            visible_evidence=verdict.visible,
        )
        try:
            save_snapshot(jpeg, self.snapshot_dir, event.alarm_id, event.seq)
            max_bytes = int(self.cfg.storage.snapshots_max_mb * 1e6)
            prune_snapshots(self.snapshot_dir, max_bytes)
        except OSError as err:
            # a full or read-only disk loses the local copy, not the hub's
            log.warning("snapshot not kept", alarm_id=event.alarm_id, error=str(err))
        self.sink.send_snapshot(event.alarm_id, jpeg)

    # --- relay -------------------------------------------------------------------

    def _close_relay(self, now: float) -> None:
        if self.relay is None:
            return
        self.relay.set_output(True)
        log.info("relay closed")
        self.alarms.set_relay(now)

    def _open_relay(self, why: str) -> None:
        if self.relay is None or self.alarms.relay_closed_at is None:
            return
        self.relay.set_output(False)
        log.info("relay opened", reason=why)
        self.alarms.set_relay(None)

    def _relay_rules(self, now: float) -> None:
        """On-time and hold: open the contact once its time is up and nothing holds it."""
        rules = self.cfg.alarm_output
        closed_at = self.alarms.relay_closed_at
        if closed_at is None or rules.on_time_s <= 0.0:
            return
        if now - closed_at < rules.on_time_s:
            return
        if rules.hold_while_open and self.alarms.open_alarms():
            return
        self._open_relay("on-time elapsed")
