"""Drift watch: known sources seen on patrol against where the calibration puts them; frozen camera.

Pure: the daemon hands in sightings and frames, these classes answer; no devices, clocks
or threads of their own. Background: docs/algorithms/drift-watch.md.

Wiring into the daemon (a few lines):

    drift = DriftWatch(site, cfg.ptz.calibration, lens, known_points(cfg))
    frozen = FrozenFrameCheck()
    # on patrol, when a hotspot lies within gate of a known source or landmark:
    drift.add(DriftSighting(name, t, raw_pan, raw_tilt, u_px, v_px))
    # per thermal frame with the head's pose at that frame:
    if frozen.observe(frame.image, pan_deg, tilt_deg): restart the frame source
    # in status: drift.report().as_dict(); state degraded when report.degraded
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.ptz_calibration import PtzCalibration
from edge.calibration import true_pose
from edge.geodesy import DEFAULT_REFRACTION_K
from edge.geolocation import (
    Lens,
    TowerSite,
    bearing_elevation_pixel,
    bearing_elevation_to,
    pixel_bearing_elevation,
)

# Twice the pointing accuracy geolocation assumes (geolocation.sigma_pan_deg = 0.05°):
# below it a drift is within what the error ellipses already allow for.
DRIFT_THRESHOLD_DEG = 0.1
# A hotspot farther than this from where a known source should be is something else
# (a pumping unit beside a flare, a vehicle), not evidence of drift.
SIGHTING_GATE_DEG = 1.0
# A known heat source stands out of the land around it by far more than this; a
# smaller peak in the search window is the background, not the source.
SIGHTING_CONTRAST_K = 8.0


def _wrap180(angle_deg: float) -> float:
    return (angle_deg + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class KnownPoint:
    """A surveyed landmark or permanent heat source (WGS-84, height above MSL)."""

    name: str
    lat: float
    lon: float
    height_m: float


def known_points(sources: Iterable[Any], ground_elevation_m: float) -> list[KnownPoint]:
    """KnownPoints of config ``known_sources`` (whose heights are above the ground)."""
    return [KnownPoint(s.name, s.lat, s.lon, ground_elevation_m + s.height_m) for s in sources]


@dataclass(frozen=True)
class DriftSighting:
    """A known point seen at pixel (u, v) while the head read (pan_raw, tilt_raw)."""

    source: str
    t: float
    pan_raw_deg: float
    tilt_raw_deg: float
    u_px: float
    v_px: float


@dataclass(frozen=True)
class DriftReport:
    """Median offset (true − seen) over the window; add it to the calibration to fix it."""

    pan_offset_deg: float | None
    tilt_offset_deg: float | None
    pan_spread_deg: float | None
    tilt_spread_deg: float | None
    sightings: int
    sources: int
    rejected: int
    ready: bool
    degraded: bool
    threshold_deg: float

    def corrected(self, calibration: PtzCalibration) -> PtzCalibration:
        """The calibration with the measured offsets applied (levelling and roll kept)."""
        if not self.ready or self.pan_offset_deg is None or self.tilt_offset_deg is None:
            raise ValueError("not enough sightings to correct the calibration")
        return calibration.model_copy(
            update={
                "pan_offset_deg": _wrap180(calibration.pan_offset_deg + self.pan_offset_deg),
                "tilt_offset_deg": calibration.tilt_offset_deg + self.tilt_offset_deg,
            }
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "pan_offset_deg": self.pan_offset_deg,
            "tilt_offset_deg": self.tilt_offset_deg,
            "pan_spread_deg": self.pan_spread_deg,
            "tilt_spread_deg": self.tilt_spread_deg,
            "sightings": self.sightings,
            "sources": self.sources,
            "rejected": self.rejected,
            "ready": self.ready,
            "degraded": self.degraded,
            "threshold_deg": self.threshold_deg,
        }


class DriftWatch:
    """Keeps the last ``window`` sightings of known points and measures the pointing offset."""

    def __init__(
        self,
        tower: TowerSite,
        calibration: PtzCalibration,
        lens: Lens,
        points: Sequence[KnownPoint],
        *,
        k: float = DEFAULT_REFRACTION_K,
        window: int = 20,
        min_sightings: int = 3,
        min_sources: int = 2,
        threshold_deg: float = DRIFT_THRESHOLD_DEG,
        gate_deg: float = SIGHTING_GATE_DEG,
    ) -> None:
        if window < min_sightings or min_sightings < 1 or min_sources < 1:
            raise ValueError("need window >= min_sightings >= 1 and min_sources >= 1")
        self.calibration = calibration
        self.lens = lens
        self.threshold_deg = threshold_deg
        self.gate_deg = gate_deg
        self.min_sightings = min_sightings
        self.min_sources = min_sources
        self._expected = {
            p.name: bearing_elevation_to(tower, p.lat, p.lon, p.height_m, k) for p in points
        }
        self._offsets: deque[tuple[str, float, float]] = deque(maxlen=window)
        self.rejected = 0

    def add(self, sighting: DriftSighting) -> bool:
        """Record a sighting; False (and counted) when unknown or outside the gate."""
        expected = self._expected.get(sighting.source)
        if expected is None:
            self.rejected += 1
            return False
        pose = true_pose(self.calibration, sighting.pan_raw_deg, sighting.tilt_raw_deg)
        seen_az, seen_el = pixel_bearing_elevation(sighting.u_px, sighting.v_px, pose, self.lens)
        d_pan = _wrap180(expected[0] - seen_az)
        d_tilt = expected[1] - seen_el
        if math.hypot(d_pan, d_tilt) > self.gate_deg:
            self.rejected += 1
            return False
        self._offsets.append((sighting.source, d_pan, d_tilt))
        return True

    def sightings_in_frame(
        self,
        image: np.ndarray,
        t: float,
        pan_raw_deg: float,
        tilt_raw_deg: float,
        contrast_k: float = SIGHTING_CONTRAST_K,
    ) -> list[DriftSighting]:
        """Known points found hot in a frame taken at a raw head reading.

        Each point in view is searched for within ``gate_deg`` of where the calibration
        puts it; a peak ``contrast_k`` above the window's median counts, at the centroid
        of the pixels above half its contrast.
        """
        height_px, width_px = image.shape[:2]
        pose = true_pose(self.calibration, pan_raw_deg, tilt_raw_deg)
        gate_px = max(2, int(math.ceil(math.radians(self.gate_deg) * self.lens.focal_length_px)))
        found: list[DriftSighting] = []
        for name, (az, el) in self._expected.items():
            u, v = bearing_elevation_pixel(az, el, pose, self.lens)
            u_px, v_px = float(u), float(v)
            if not (math.isfinite(u_px) and math.isfinite(v_px)):
                continue
            if not (0 <= u_px < width_px and 0 <= v_px < height_px):
                continue
            u0, u1 = max(0, int(u_px) - gate_px), min(width_px, int(u_px) + gate_px + 1)
            v0, v1 = max(0, int(v_px) - gate_px), min(height_px, int(v_px) + gate_px + 1)
            window = np.asarray(image[v0:v1, u0:u1], dtype=np.float64)
            background = float(np.median(window))
            excess = window - background
            peak = float(excess.max())
            if not peak >= contrast_k:
                continue
            weights = np.where(excess >= peak / 2.0, excess, 0.0)
            rows, cols = np.indices(window.shape)
            total = float(weights.sum())
            found.append(DriftSighting(
                name, t, pan_raw_deg, tilt_raw_deg,
                u0 + float((cols * weights).sum()) / total,
                v0 + float((rows * weights).sum()) / total,
            ))  # fmt: skip
        return found

    def recalibrated(self, calibration: PtzCalibration) -> None:
        """A new calibration is in force: old sightings measured the old one."""
        self.calibration = calibration
        self._offsets.clear()

    def report(self) -> DriftReport:
        n = len(self._offsets)
        sources = len({s for s, _, _ in self._offsets})
        ready = n >= self.min_sightings and sources >= self.min_sources
        if n == 0:
            return DriftReport(None, None, None, None, 0, 0, self.rejected, False, False,
                               self.threshold_deg)  # fmt: skip
        pans = [p for _, p, _ in self._offsets]
        tilts = [t for _, _, t in self._offsets]
        pan = statistics.median(pans)
        tilt = statistics.median(tilts)
        # Median absolute deviation: the spread one misattributed sighting cannot inflate.
        pan_spread = statistics.median(abs(p - pan) for p in pans)
        tilt_spread = statistics.median(abs(t - tilt) for t in tilts)
        degraded = ready and max(abs(pan), abs(tilt)) > self.threshold_deg
        return DriftReport(pan, tilt, pan_spread, tilt_spread, n, sources, self.rejected, ready,
                           degraded, self.threshold_deg)  # fmt: skip


# Every 97th pixel: a few thousand of a 640×512 frame, spread over every row and
# column (97 is prime, so the sample does not fall into one column).
_FROZEN_SAMPLE_STRIDE = 97


def _within(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
    """No element differs by more than ``tolerance`` (NaN anywhere: they differ)."""
    return float(np.max(np.abs(np.subtract(a, b, dtype=np.float64)))) <= tolerance


class FrozenFrameCheck:
    """Detects a camera that keeps sending the same picture while the head moves.

    A real thermal frame always carries sensor noise, so frames that match (within
    ``tolerance_k``) while the head has turned by ``min_pose_change_deg`` or more are
    a frozen video pipeline. Identical frames at one pose prove nothing (a still scene
    behind heavy temporal filtering), so they neither count nor break the run.
    """

    def __init__(
        self,
        *,
        frozen_after: int = 3,
        min_pose_change_deg: float = 0.5,
        tolerance_k: float = 1e-3,
    ) -> None:
        if frozen_after < 2:
            raise ValueError("frozen_after must be >= 2")
        self.frozen_after = frozen_after
        self.min_pose_change_deg = min_pose_change_deg
        self.tolerance_k = tolerance_k
        self._image: np.ndarray | None = None
        self._poses: list[tuple[float, float]] = []
        self.frozen = False

    def reset(self) -> None:
        """After restarting the frame source."""
        self._image = None
        self._poses = []
        self.frozen = False

    def _same(self, image: np.ndarray) -> bool:
        previous = self._image
        if previous is None or previous.shape != image.shape:
            return False
        # Sensor noise makes nearly every pixel of a live camera differ from the last
        # frame, so a sparse sample settles almost every frame for a few microseconds;
        # only a frame that matches there is compared in full (cProfile put a full
        # comparison of every frame at 0.4 ms of the main thread's time). NaN anywhere
        # makes frames differ, as a dead pixel does not freeze a picture.
        sample = slice(None, None, _FROZEN_SAMPLE_STRIDE)
        before, now = previous.reshape(-1), image.reshape(-1)
        return _within(before[sample], now[sample], self.tolerance_k) and _within(
            before, now, self.tolerance_k
        )

    def _keep(self, image: np.ndarray) -> None:
        """The frame to compare the next with, in a buffer reused from frame to frame."""
        if (
            self._image is None
            or self._image.shape != image.shape
            or self._image.dtype != image.dtype
        ):
            self._image = np.array(image, copy=True)
        else:
            np.copyto(self._image, image)

    def _moved(self, a: tuple[float, float], b: tuple[float, float]) -> bool:
        return math.hypot(_wrap180(a[0] - b[0]), a[1] - b[1]) >= self.min_pose_change_deg

    def observe(self, image: np.ndarray, pan_deg: float, tilt_deg: float) -> bool:
        """Feed one frame and the head's pose at it; True while the camera looks frozen."""
        pose = (pan_deg, tilt_deg)
        if not self._same(image):
            self._keep(image)
            self._poses = [pose]
            self.frozen = False
            return False
        if self._moved(pose, self._poses[-1]):
            self._poses.append(pose)
        self.frozen = len(self._poses) >= self.frozen_after
        return self.frozen
