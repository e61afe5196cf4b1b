"""Ask the smoke lidar along a camera bearing and read what came back, without ever blocking.

The confirmation scan calls ``start(bearing, tilt)`` once, ``poll()`` once per frame and
``result()`` when it decides: the probe requests one scan per elevation just above the
hotspot (smoke rises; the ground right behind the fire would block a beam aimed at its
base), drains the profiles the driver has received and analyses each with
detectors.lidar_returns. A device error is evidence, not an exception.
"""

from __future__ import annotations

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


@dataclass
class _Scan:
    elevation_deg: float
    offset_deg: float
    requested: bool = False
    error: str | None = None
    analysis: ProfileAnalysis | None = None
    profile_t: float | None = None


@dataclass(frozen=True)
class ProbeResult:
    """What the lidar said along one bearing. ``range_m`` is set only for a plume-like
    return clearly above the profile's noise (the z-weighted centroid of the strongest);
    ``beam_elevation_deg`` is the elevation of the shot that crossed it, which says how
    high above the fire the beam met the smoke."""

    bearing_deg: float | None
    tilt_deg: float | None
    done: bool
    range_m: float | None
    evidence: dict[str, Any] = field(default_factory=dict)
    beam_elevation_deg: float | None = None


class LidarProbe:
    """One cued look of the lidar at a bearing; reusable (``start`` begins a new look)."""

    def __init__(
        self,
        lidar: SmokeLidar,
        *,
        shots: int = 1000,
        elevations_deg: Sequence[float] = (0.1, 0.5, 1.0),
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
        """Request one scan per elevation offset above ``tilt_deg`` along ``bearing_deg``."""
        self._bearing_deg = bearing_deg % 360.0
        self._tilt_deg = tilt_deg
        self._unmatched = 0
        self._scans = [
            _Scan(min(90.0, max(-90.0, tilt_deg + offset)), offset)
            for offset in self.elevation_offsets_deg
        ]
        for scan in self._scans:
            try:
                self.lidar.request_scan(self._bearing_deg, scan.elevation_deg, self.shots)
            except DriverError as exc:
                scan.error = str(exc)
                log.warning("lidar scan not requested", error=str(exc))
            else:
                scan.requested = True

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
        return matched

    def _take(self, profile: LidarProfile) -> bool:
        if self._bearing_deg is None:
            return False
        if angle_diff_deg(profile.azimuth_deg, self._bearing_deg) > _DIRECTION_MATCH_DEG:
            return False
        for scan in self._scans:
            if (
                scan.requested
                and scan.analysis is None
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
        """Every requested scan has been answered (or could not be requested)."""
        return bool(self._scans) and all(
            s.analysis is not None or not s.requested for s in self._scans
        )

    def result(self) -> ProbeResult:
        best_plume: LidarReturn | None = None
        best_elevation_deg: float | None = None
        per_elevation = []
        for scan in self._scans:
            entry: dict[str, Any] = {
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
                if plume is not None and (best_plume is None or plume.peak_z > best_plume.peak_z):
                    best_plume, best_elevation_deg = plume, scan.elevation_deg
            per_elevation.append(entry)
        errors = [s.error for s in self._scans if s.error is not None]
        evidence: dict[str, Any] = {
            "bearing_deg": self._bearing_deg,
            "tilt_deg": self._tilt_deg,
            "shots": self.shots,
            "scans_asked": sum(1 for s in self._scans if s.requested),
            "scans_answered": sum(1 for s in self._scans if s.analysis is not None),
            "errors": errors,
            "unmatched_profiles": self._unmatched,
            "elevations": per_elevation,
            "plume_range_m": round(best_plume.range_m, 1) if best_plume else None,
        }
        return ProbeResult(
            bearing_deg=self._bearing_deg,
            tilt_deg=self._tilt_deg,
            done=self.done,
            range_m=best_plume.range_m if best_plume else None,
            evidence=evidence,
            beam_elevation_deg=best_elevation_deg,
        )
