"""Smoke in a scanning lidar: excess backscatter over each direction's own clean air.

Per direction (azimuth, elevation) the detector learns a clear-air reference from the
recent shots that held no plume: the median profile and its shot-to-shot spread. A new
profile's bins are scored against that reference (Poisson noise of the counts plus the
learned spread), so a hill, a mast or a stable haze layer, which is in the reference,
scores nothing. A plume is a run of bins standing ``z_min`` above the reference over
15–500 m; narrower is a new hard target (a bird, a vehicle on a dyke), wider is fog or
a change of the air as a whole. A plume is *confirmed* when it persists (``confirm_shots``
of the last ``window_shots`` shots within ±``tolerance_bins``) and a neighbouring
direction sees it at about the same range. Until a direction has a reference, its
profiles are judged against their own clean-air trend (detectors.lidar_returns).

Range is the z-weighted centroid of the run; the plume's optical depth comes from the
step down of the signal behind it (−½ ln of the ratio to the reference). Pure code:
profiles in, fixes out; the caller supplies the time. Notes: docs/physics/smoke-lidar.md.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors.lidar_returns import analyse_profile

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LidarSmokeSettings:
    reference_shots: int = 10  # clean shots kept per direction
    min_reference_shots: int = 3  # fewer and the profile's own trend is the reference
    z_min: float = 5.0  # SNR > 5 (Utkin et al.)
    z_low: float = 2.0  # a run's edges
    min_bins: int = 2
    air_change_fraction: float = 0.2  # more of the beam than this changed: fog, not smoke
    min_width_m: float = 15.0
    max_width_m: float = 500.0
    min_range_m: float = 300.0  # incomplete overlap of laser and telescope nearer
    window_shots: int = 5
    confirm_shots: int = 3
    tolerance_bins: int = 2
    neighbour_az_deg: float = 0.25  # a neighbour is within this in azimuth …
    neighbour_el_deg: float = 0.6  # … and this in elevation
    neighbour_range_m: float = 60.0  # and sees it this close in range
    neighbour_age_s: float = 60.0  # within this long
    spread_floor: float = 0.01  # relative shot-to-shot spread never assumed below this
    step_bins: int = 8  # bins behind the plume that measure its optical depth


@dataclass(frozen=True)
class PlumeCandidate:
    t_s: float
    azimuth_deg: float
    elevation_deg: float
    range_m: float  # z-weighted centroid
    start_m: float
    end_m: float
    peak_z: float
    optical_depth: float  # −½ ln(signal behind / reference behind); NaN when unmeasured


@dataclass(frozen=True)
class SmokeFix:
    """A confirmed plume: where it is and how sure."""

    azimuth_deg: float
    elevation_deg: float
    range_m: float
    range_sigma_m: float  # spread of the persisting shots' centroids, at least one bin
    extent_m: float
    optical_depth: float
    peak_z: float
    shots: int
    neighbours: int

    def evidence(self) -> dict[str, float | int]:
        return {
            "range_m": round(self.range_m, 1),
            "range_sigma_m": round(self.range_sigma_m, 1),
            "extent_m": round(self.extent_m, 1),
            "optical_depth": round(self.optical_depth, 3)
            if math.isfinite(self.optical_depth)
            else -1.0,
            "z": round(self.peak_z, 1),
            "shots": self.shots,
            "neighbours": self.neighbours,
        }


@dataclass
class _Direction:
    clean: deque[F64]
    recent: deque[list[PlumeCandidate]] = field(default_factory=lambda: deque(maxlen=5))


def direction_key(azimuth_deg: float, elevation_deg: float) -> tuple[int, int]:
    """Directions are told apart to 0.01°: a head repeats its poses to that."""
    return int(round(azimuth_deg * 100.0)) % 36000, int(round(elevation_deg * 100.0))


class LidarSmokeDetector:
    """Feed it every profile of a sweep or a cued fan; read confirmed fixes back."""

    def __init__(self, settings: LidarSmokeSettings | None = None) -> None:
        self.settings = settings or LidarSmokeSettings()
        self._directions: dict[tuple[int, int], _Direction] = {}
        self._candidates: deque[PlumeCandidate] = deque(maxlen=512)

    def add_profile(
        self,
        bins: npt.ArrayLike,
        *,
        first_bin_m: float,
        bin_m: float,
        shots: int,
        azimuth_deg: float,
        elevation_deg: float,
        t_s: float,
    ) -> SmokeFix | None:
        """Score one profile; return a fix when this shot confirms a plume."""
        s = self.settings
        if not (bin_m > 0.0 and shots >= 1 and math.isfinite(first_bin_m)):
            raise ValueError(f"lidar profile: need bin_m > 0 and shots ≥ 1, got {bin_m}, {shots}")
        p = np.asarray(bins, dtype=np.float64).ravel()
        p = np.where(np.isfinite(p), p, 0.0)
        d = self._directions.setdefault(
            direction_key(azimuth_deg, elevation_deg),
            _Direction(deque(maxlen=s.reference_shots), deque(maxlen=s.window_shots)),
        )
        r = first_bin_m + bin_m * np.arange(p.size, dtype=np.float64)
        reference = [c for c in d.clean if c.size == p.size]
        if len(reference) >= s.min_reference_shots:
            found = self._against_reference(p, np.stack(reference), r, bin_m, shots)
        else:
            found = self._against_trend(p, first_bin_m, bin_m, shots)
        candidates = [PlumeCandidate(t_s, azimuth_deg, elevation_deg, *f) for f in found]
        d.recent.append(candidates)
        if not candidates:
            d.clean.append(p)
            return None
        self._candidates.extend(candidates)
        return self._confirm(d, candidates, bin_m, t_s)

    def _against_reference(
        self, p: F64, reference: npt.NDArray[np.float64], r: F64, bin_m: float, shots: int
    ) -> list[tuple[float, float, float, float, float]]:
        s = self.settings
        ref = np.median(reference, axis=0)
        spread = 1.4826 * np.median(np.abs(reference - ref), axis=0) if len(reference) > 2 else 0.0
        spread = np.maximum(spread, s.spread_floor * np.abs(ref))
        sigma = np.sqrt(np.maximum(ref, 1.0 / shots) / shots + spread**2)
        z = (p - ref) / sigma
        z[r < s.min_range_m] = 0.0
        analysed = int(np.count_nonzero(r >= s.min_range_m))
        if analysed and np.count_nonzero(np.abs(z) > s.z_min) > s.air_change_fraction * analysed:
            # Fog or a change of the air along the whole beam: no plume, a new reference.
            return []
        out = []
        # Hysteresis: a run spans the bins above z_low, and holds min_bins above z_min, so
        # the fading edge of a wide layer does not break up into narrow "plumes".
        for lo, hi in _runs(z > s.z_low):
            width = (hi - lo) * bin_m
            if np.count_nonzero(z[lo:hi] > s.z_min) < s.min_bins:
                continue
            if not s.min_width_m <= width <= s.max_width_m:
                continue
            weights = z[lo:hi]
            centroid = float(np.sum(r[lo:hi] * weights) / np.sum(weights))
            behind = slice(hi + 1, min(hi + 1 + s.step_bins, p.size))
            tau = math.nan
            if behind.stop - behind.start >= 3:
                ratio = float(np.mean(p[behind]) / max(float(np.mean(ref[behind])), 1e-12))
                if ratio > 0.0:
                    tau = max(-0.5 * math.log(ratio), 0.0)
            out.append((centroid, float(r[lo]), float(r[hi - 1]), float(weights.max()), tau))
        return out

    def _against_trend(
        self, p: F64, first_bin_m: float, bin_m: float, shots: int
    ) -> list[tuple[float, float, float, float, float]]:
        s = self.settings
        analysis = analyse_profile(
            p,
            first_bin_m,
            bin_m,
            shots=shots,
            min_range_m=s.min_range_m,
            z_min=s.z_min,
            min_bins=s.min_bins,
            min_width_m=s.min_width_m,
            max_width_m=s.max_width_m,
        )
        return [
            (ret.range_m, ret.start_m, ret.end_m, ret.peak_z, math.nan)
            for ret in analysis.returns
            if ret.kind == "plume"
        ]

    def _confirm(
        self, d: _Direction, candidates: list[PlumeCandidate], bin_m: float, t_s: float
    ) -> SmokeFix | None:
        s = self.settings
        tolerance_m = s.tolerance_bins * bin_m
        best = max(candidates, key=lambda c: c.peak_z)
        persisting = [
            c for shot in d.recent for c in shot if abs(c.range_m - best.range_m) <= tolerance_m
        ]
        shots = sum(
            1
            for shot in d.recent
            if any(abs(c.range_m - best.range_m) <= tolerance_m for c in shot)
        )
        if shots < s.confirm_shots:
            return None
        own = direction_key(best.azimuth_deg, best.elevation_deg)
        neighbours = {
            direction_key(c.azimuth_deg, c.elevation_deg)
            for c in self._candidates
            if t_s - c.t_s <= s.neighbour_age_s
            and direction_key(c.azimuth_deg, c.elevation_deg) != own
            and abs(_angle_diff_deg(c.azimuth_deg, best.azimuth_deg)) <= s.neighbour_az_deg
            and abs(c.elevation_deg - best.elevation_deg) <= s.neighbour_el_deg
            and abs(c.range_m - best.range_m) <= s.neighbour_range_m
        }
        if not neighbours:
            return None
        centroids = np.array([c.range_m for c in persisting])
        taus = [c.optical_depth for c in persisting if math.isfinite(c.optical_depth)]
        return SmokeFix(
            azimuth_deg=best.azimuth_deg,
            elevation_deg=best.elevation_deg,
            range_m=float(np.median(centroids)),
            range_sigma_m=max(float(np.std(centroids)), bin_m),
            extent_m=max(c.end_m - c.start_m for c in persisting) + bin_m,
            optical_depth=float(np.median(taus)) if taus else math.nan,
            peak_z=max(c.peak_z for c in persisting),
            shots=shots,
            neighbours=len(neighbours),
        )


def _angle_diff_deg(a_deg: float, b_deg: float) -> float:
    return (a_deg - b_deg + 180.0) % 360.0 - 180.0


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the True runs of a boolean array."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
