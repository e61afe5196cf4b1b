"""Fan the smoke lidar around a camera bearing and read what came back, without ever blocking.

The confirmation scan calls ``start(bearing, tilt)`` once, ``poll()`` once per frame and
``result()`` when it decides. The probe requests a fan of scans just above the hotspot
(smoke rises; the ground right behind the fire would block a beam aimed at its base),
wide enough in azimuth to meet a plume the wind has leaned off the bearing
(``fan_offsets``), drains the profiles the driver has received and analyses each with
detectors.lidar_returns. A device error is evidence, not an exception.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from detectors.geometry import angle_diff_deg
from detectors.lidar_returns import LidarReturn, ProfileAnalysis, analyse_profile
from drivers.base import DriverError, LidarProfile, SmokeLidar

log = structlog.get_logger(__name__)

# A profile answers a request when its direction matches to this (the protocol carries
# f32 angles; the lidar wraps the azimuth into [0, 360)).
_DIRECTION_MATCH_DEG = 0.01
# Profiles drained per poll at most, so one poll never holds up a frame for long.
_MAX_PROFILES_PER_POLL = 16
# Scans asked for and not yet answered, at most: a lidar queues only a few (the protocol's
# device refuses more as busy), and a fan's later scans are not needed once smoke is found.
MAX_OUTSTANDING_SCANS = 4


@dataclass
class _Scan:
    azimuth_deg: float
    elevation_deg: float
    offset_deg: float  # elevation above the hotspot
    azimuth_offset_deg: float  # azimuth from the hotspot's bearing
    requested: bool = False
    error: str | None = None
    analysis: ProfileAnalysis | None = None
    profile_t: float | None = None


@dataclass(frozen=True)
class ProbeResult:
    """What the lidar's fan said around one bearing. ``range_m`` is set only for a
    plume-like return clearly above the profile's noise: the z-weighted centroid of the
    one met by the lowest beam (the strongest among equals). ``beam_elevation_deg`` and
    ``beam_azimuth_deg`` are the direction of that shot: how high above the fire, and
    how far aside, the beam met the smoke."""

    bearing_deg: float | None
    tilt_deg: float | None
    done: bool
    range_m: float | None
    evidence: dict[str, Any] = field(default_factory=dict)
    beam_elevation_deg: float | None = None
    beam_azimuth_deg: float | None = None


def fan_offsets(
    elevation_offsets_deg: Sequence[float],
    drift_per_rise: float,
    azimuth_step_deg: float,
    max_scans: int,
) -> list[tuple[float, float]]:
    """(azimuth offset, elevation offset) of each shot of a fan, in the order to shoot.

    A beam δ above the hotspot meets the smoke z ≈ R·tan δ above the fire, which a wind u
    has carried z·u/w_rise downwind of it: an angle atan(tan δ · u/w_rise) off the bearing
    at any range R. Without the wind's direction the fan covers that angle on both sides,
    in steps narrower than the plume. The lowest beams go first (least drift: the range
    nearest the fire's), and each row from the bearing outward; past max_scans the
    highest rows are dropped.
    """
    if not azimuth_step_deg > 0.0 or max_scans < 1 or drift_per_rise < 0.0:
        raise ValueError("lidar fan: need azimuth_step_deg > 0, max_scans >= 1, drift >= 0")
    shots: list[tuple[float, float]] = []
    for offset in sorted(elevation_offsets_deg):
        lean_deg = math.degrees(
            math.atan(math.tan(math.radians(max(offset, 0.0))) * drift_per_rise)
        )
        steps = math.ceil(lean_deg / azimuth_step_deg - 1e-9)
        shots.append((0.0, offset))
        for k in range(1, steps + 1):
            shots += [(-k * azimuth_step_deg, offset), (k * azimuth_step_deg, offset)]
    return shots[:max_scans]


class LidarProbe:
    """One cued look of the lidar at a bearing; reusable (``start`` begins a new look)."""

    def __init__(
        self,
        lidar: SmokeLidar,
        *,
        shots: int = 1000,
        elevations_deg: Sequence[float] = (0.1, 0.5, 1.0),
        drift_per_rise: float = 0.0,
        azimuth_step_deg: float = 0.2,
        max_scans: int = 24,
        min_range_m: float = 500.0,
        z_min: float = 5.0,
        min_width_m: float = 15.0,
        max_width_m: float = 500.0,
    ) -> None:
        if not 1 <= shots <= 0xFFFF:
            raise ValueError(f"lidar probe: shots must be 1…65535, got {shots}")
        if not elevations_deg:
            raise ValueError("lidar probe: give at least one elevation offset")
        self.lidar = lidar
        self.shots = shots
        self.elevation_offsets_deg = tuple(float(e) for e in elevations_deg)
        # wind speed / plume rise speed: how far the plume leans; 0 shoots the bearing only
        self.fan = fan_offsets(self.elevation_offsets_deg, drift_per_rise, azimuth_step_deg,
                               max_scans)  # fmt: skip
        self.min_range_m = min_range_m
        self.z_min = z_min
        self.min_width_m = min_width_m
        self.max_width_m = max_width_m
        self._bearing_deg: float | None = None
        self._tilt_deg: float | None = None
        self._scans: list[_Scan] = []
        self._unmatched = 0

    # ----------------------------------------------------------------- driving

    def start(self, bearing_deg: float, tilt_deg: float) -> None:
        """Request the fan's scans above ``tilt_deg`` around ``bearing_deg``."""
        self._bearing_deg = bearing_deg % 360.0
        self._tilt_deg = tilt_deg
        self._unmatched = 0
        self._scans = [
            _Scan(
                (self._bearing_deg + d_az) % 360.0,
                min(90.0, max(-90.0, tilt_deg + d_el)),
                d_el,
                d_az,
            )  # fmt: skip
            for d_az, d_el in self.fan
        ]
        self._request_more()

    def _request_more(self) -> None:
        """Ask for the fan's next scans, a few at a time, until one of them met smoke:
        the rows go from the lowest beam up, so the first plume met is the nearest the
        fire, and the rest of the fan would add only drift."""
        if self._plume_found():
            return
        outstanding = sum(1 for s in self._scans if s.requested and s.analysis is None)
        for scan in self._scans:
            if outstanding >= MAX_OUTSTANDING_SCANS:
                return
            if scan.requested or scan.error is not None:
                continue
            try:
                self.lidar.request_scan(scan.azimuth_deg, scan.elevation_deg, self.shots)
            except DriverError as exc:
                scan.error = str(exc)
                log.warning("lidar scan not requested", error=str(exc))
            else:
                scan.requested = True
                outstanding += 1

    def _plume_found(self) -> bool:
        return any(s.analysis is not None and s.analysis.plume is not None for s in self._scans)

    def poll(self) -> int:
        """Take the profiles that have arrived (never waits); the number matched."""
        matched = 0
        for _ in range(_MAX_PROFILES_PER_POLL):
            profile = self.lidar.read_profile(timeout_s=0.0)
            if profile is None:
                break
            if self._take(profile):
                matched += 1
            else:
                self._unmatched += 1
        if matched:
            self._request_more()
        return matched

    def _take(self, profile: LidarProfile) -> bool:
        for scan in self._scans:
            if (
                scan.requested
                and scan.analysis is None
                and angle_diff_deg(profile.azimuth_deg, scan.azimuth_deg) <= _DIRECTION_MATCH_DEG
                and abs(profile.elevation_deg - scan.elevation_deg) <= _DIRECTION_MATCH_DEG
            ):
                scan.analysis = analyse_profile(
                    profile.bins,
                    profile.first_bin_m,
                    profile.bin_m,
                    shots=self.shots,
                    min_range_m=self.min_range_m,
                    z_min=self.z_min,
                    min_width_m=self.min_width_m,
                    max_width_m=self.max_width_m,
                )
                scan.profile_t = profile.t
                return True
        return False

    # ----------------------------------------------------------------- reading

    @property
    def done(self) -> bool:
        """Nothing is awaited: every scan asked for is answered, and either smoke was
        found or the fan has no scan left to ask for (one that could not be requested
        counts as asked)."""
        if not self._scans:
            return False
        if any(s.requested and s.analysis is None for s in self._scans):
            return False
        return self._plume_found() or all(s.requested or s.error for s in self._scans)

    def result(self) -> ProbeResult:
        best: tuple[LidarReturn, _Scan] | None = None
        per_elevation = []
        for scan in self._scans:
            if not scan.requested and scan.error is None:
                continue  # not reached: smoke was found first, or the look ended
            entry: dict[str, Any] = {
                "azimuth_offset_deg": round(scan.azimuth_offset_deg, 3),
                "elevation_deg": round(scan.elevation_deg, 3),
                "offset_deg": scan.offset_deg,
                "answered": scan.analysis is not None,
            }
            if scan.error is not None:
                entry["error"] = scan.error
            analysis = scan.analysis
            if analysis is not None:
                strongest = analysis.strongest
                plume = analysis.plume
                entry.update(
                    {
                        "t": scan.profile_t,
                        "strongest": strongest.as_dict() if strongest else None,
                        "plume": plume.as_dict() if plume else None,
                        "blocked_at_m": analysis.blocked_at_m,
                        "noise_scale": round(analysis.noise_scale, 2),
                    }
                )
                # The lowest beam that met smoke met it nearest the fire (least drift);
                # among equals the strongest return.
                if plume is not None and (
                    best is None
                    or scan.offset_deg < best[1].offset_deg
                    or (scan.offset_deg == best[1].offset_deg and plume.peak_z > best[0].peak_z)
                ):
                    best = (plume, scan)
            per_elevation.append(entry)
        errors = [s.error for s in self._scans if s.error is not None]
        evidence: dict[str, Any] = {
            "bearing_deg": self._bearing_deg,
            "tilt_deg": self._tilt_deg,
            "shots": self.shots,
            "scans_asked": sum(1 for s in self._scans if s.requested),
            "scans_answered": sum(1 for s in self._scans if s.analysis is not None),
            "scans_in_fan": len(self._scans),
            "errors": errors,
            "unmatched_profiles": self._unmatched,
            "elevations": per_elevation,
            "plume_range_m": round(best[0].range_m, 1) if best else None,
            "plume_azimuth_offset_deg": round(best[1].azimuth_offset_deg, 3) if best else None,
            "plume_elevation_deg": round(best[1].elevation_deg, 3) if best else None,
        }
        return ProbeResult(
            bearing_deg=self._bearing_deg,
            tilt_deg=self._tilt_deg,
            done=self.done,
            range_m=best[0].range_m if best else None,
            evidence=evidence,
            beam_elevation_deg=best[1].elevation_deg if best else None,
            beam_azimuth_deg=best[1].azimuth_deg if best else None,
        )
