"""The status reporter: the tower's health as one status message, its period, and the watchdog.

It is given plain readings (device health, the PTZ worker's error, the GNSS fix, uplink
counters) and the injected clock, so a test can build any status without devices. Every
duration here is monotonic: a wall-clock step must not silence the status or feed the
watchdog of a tower that stopped seeing frames.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from drivers.base import DriverHealth, DriverState, GnssFix
from edge import __version__
from edge.clock import Clock
from edge.config import TowerConfig
from edge.coverage import coverage_range_m, mission_ranges
from edge.geodesy import distance_bearing
from edge.messages import SensorHealth, SensorState, StatusMessage, TowerPosition, iso_z
from edge.uplink import UplinkCounters

FRAME_STALE_S = 5.0  # monotonic seconds without a thermal frame: the camera is failed
WATCHDOG_FRESH_S = 10.0  # the watchdog is fed only if a frame was processed this recently
WATCHDOG_PERIOD_S = 1.0
GNSS_POSITION_TOLERANCE_M = 50.0  # a GNSS fix this far from the surveyed position is an error

_SENSOR_STATE: dict[DriverState, SensorState] = {
    DriverState.OK: "ok",
    DriverState.IDLE: "ok",  # read on demand; it answered when last wanted
    DriverState.CONNECTING: "degraded",
    DriverState.CLOSED: "failed",
    DriverState.FAILED: "failed",
}


class StatusReporter:
    def __init__(self, cfg: TowerConfig, clock: Clock, is_day: Callable[[float], bool]) -> None:
        self.cfg = cfg
        self.clock = clock
        self.is_day = is_day
        self.started_mono = clock.monotonic()
        self.last_frame_mono: float | None = None
        self._last_status_mono: float | None = None
        self._last_watchdog_mono: float | None = None

    def frame_seen(self) -> None:
        self.last_frame_mono = self.clock.monotonic()

    def status_due(self) -> bool:
        """Time for the periodic status (true at once on the first call)."""
        mono = self.clock.monotonic()
        last = self._last_status_mono
        if last is not None and mono - last < self.cfg.mqtt.status_interval_s:
            return False
        self._last_status_mono = mono
        return True

    def watchdog_due(self) -> bool:
        """Feed the watchdog now? Only while frames are being processed."""
        mono = self.clock.monotonic()
        fresh = self.last_frame_mono is not None and mono - self.last_frame_mono < WATCHDOG_FRESH_S
        last = self._last_watchdog_mono
        if not fresh or (last is not None and mono - last < WATCHDOG_PERIOD_S):
            return False
        self._last_watchdog_mono = mono
        return True

    def message(
        self,
        *,
        now: float,
        health: Mapping[str, DriverHealth],
        ptz_error: str | None,
        gnss_fix: GnssFix | None,
        uplink: UplinkCounters,
        counters: Mapping[str, int],
        patrol_cycle_s: float | None,
        problems: tuple[str, ...] = (),
    ) -> StatusMessage:
        """The status at tower time `now`; `problems` are reasons found elsewhere."""
        c = self.cfg
        mono = self.clock.monotonic()
        reasons: list[str] = []
        sensors: dict[str, SensorHealth] = {}
        for name, device in health.items():
            state = _SENSOR_STATE[device.state]
            if state != "ok":
                reasons.append(f"{name}: {device.last_error or device.state.value}")
            detail = device.last_error
            if device.state is DriverState.IDLE and detail is None:
                detail = "idle: read on demand"
            sensors[name] = SensorHealth(state=state, detail=detail)
        if self.last_frame_mono is None or mono - self.last_frame_mono > FRAME_STALE_S:
            reasons.append(f"thermal: no frame for {FRAME_STALE_S:.0f} s")
            sensors["thermal"] = SensorHealth(state="failed", detail="no frames")
        if ptz_error:
            reasons.append(f"ptz: {ptz_error}")
            # the head answers its driver but the worker cannot use it: say so in both places
            if "ptz" in sensors and sensors["ptz"].state == "ok":
                sensors["ptz"] = SensorHealth(state="degraded", detail=ptz_error)
        reasons.extend(problems)
        if gnss_fix is not None:
            # The configured (surveyed) position is what geolocation uses; a GNSS fix far
            # from it means the config or the mast is wrong: say so.
            offset_m, _ = distance_bearing(c.tower.lat, c.tower.lon, gnss_fix.lat, gnss_fix.lon)
            if offset_m > GNSS_POSITION_TOLERANCE_M:
                reasons.append(
                    f"gnss: fix {gnss_fix.lat:.6f}, {gnss_fix.lon:.6f} is {offset_m:.0f} m from "
                    f"tower.lat/tower.lon (tolerance {GNSS_POSITION_TOLERANCE_M:.0f} m)"
                )
        # before the first frame a camera-clocked tower has no time yet: use the gateway's
        ranges = mission_ranges(c.camera, c.weather, c.coverage,
                                is_day=self.is_day(now or self.clock.utc()))  # fmt: skip
        for r in ranges:
            if not r.met:
                reasons.append(
                    f"detection range: a {r.size_m:g} m fire is seen to "
                    f"{r.detectable_range_m / 1000:.1f} km today, "
                    f"{r.required_range_m / 1000:.1f} km required"
                )
        all_counters = dict(counters)
        all_counters.update(
            {"mqtt_reconnects": uplink.reconnects, "outbox_dropped": uplink.outbox_dropped}
        )
        return StatusMessage(
            tower_id=c.tower.id,
            state="degraded" if reasons else "online",
            reasons=tuple(reasons),
            heartbeat_at=iso_z(self.clock.utc()),
            version=__version__,
            uptime_s=round(mono - self.started_mono, 1),
            sensors=sensors,
            outbox_depth=uplink.outbox_depth,
            position=TowerPosition(
                lat=c.tower.lat, lon=c.tower.lon, height_m=c.tower.camera_altitude_m
            ),
            patrol_cycle_s=patrol_cycle_s,
            detection_range_m=coverage_range_m(ranges),
            counters=all_counters,
        )
