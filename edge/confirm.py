"""The fire-point localisation scan: re-judge a candidate zoomed in and centred (docs/algorithms/confirmation.md).

The head is centred on the candidate at the longest focal length; after it settles, every
frame of the dwell is searched near the expected position. The verdict requires:
persistence (the hotspot is there in most frames), no motion (a vehicle drifts across
pixels), and the zoom-scaling test (a sub-pixel fire keeps its fire-equivalent area when
the pixels shrink, a warm surface keeps its temperature). An undecided scan is revisited;
a failed one is dismissed with its reason.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from detectors import radiometry
from detectors.blobs import make_blobs
from detectors.hotspot import HotspotParams, detect_hotspots, radiance_lut
from detectors.registration import VerticalRegistration
from detectors.visible_cues import FlameCue, FlameDetector
from detectors.zoom_test import BlobMeasurement, measure, zoom_test
from drivers.base import Frame
from edge.config import TowerConfig
from edge.detection import Candidate, DetectionContext, ThermalStage

Outcome = Literal["confirmed", "dismissed", "undecided"]

# Half-size of the window searched around the expected position: the pointing error of a
# calibrated head (≈0.05°) plus the candidate's own centroid error, in zoomed pixels,
# is far below it, and the kernel's 21×21 context fits with room to spare.
SEARCH_HALF_PX = 48
# Centroid drift over the dwell above this (zoomed pixels) is motion: turbulence moves a
# hot spot by < 0.4 px at the patrol zoom (docs/algorithms/suppression.md), ≈ 1 px zoomed.
MAX_DRIFT_PX = 3.0
MIN_PERSISTENCE_TO_REVISIT = 0.3  # seen less than this: not a fire now
# Half-size of the visible window searched for a flame around the hotspot's direction:
# the head's pointing and the two channels' boresight agree to well under this.
FLAME_SEARCH_HALF_PX = 24


@functools.lru_cache(maxsize=4)
def _lut(params: HotspotParams) -> np.ndarray:
    return radiance_lut(radiometry.band_radiance, params)


@dataclass(frozen=True)
class Sighting:
    t: float
    x: float
    y: float
    peak_k: float
    bg_k: float
    a_eq_m2_per_range2: float
    narrow: BlobMeasurement
    compact: bool  # the kernel's sub-pixel test (C2) or the absolute branch held
    is_day: bool


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str
    bearing_deg: float
    elevation_deg: float
    peak_k: float
    a_eq_m2_per_range2: float
    confidence: float
    evidence: dict[str, Any]
    frame: Frame | None = None
    hotspot_xy: tuple[float, float] = (math.nan, math.nan)
    visible: dict[str, Any] | None = None  # the visible camera's cues; None: no frames

    def a_eq_m2(self, range_m: float | None, transmittance: float) -> float:
        """Fire-equivalent area in m² at a range (0 when the range is unknown)."""
        if range_m is None or transmittance <= 0.0:
            return 0.0
        return self.a_eq_m2_per_range2 * range_m * range_m / transmittance


@dataclass
class ConfirmationScan:
    """The zoomed-in look at one candidate; persistence_fraction of frames must see it."""

    context: DetectionContext
    candidate: Candidate
    persistence_fraction: float
    frames: int = 0
    sightings: list[Sighting] = field(default_factory=list)
    last_frame: Frame | None = None
    last_pose: tuple[float, float, float] | None = None
    flame: FlameDetector = field(default_factory=FlameDetector)
    flame_cue: FlameCue | None = None
    visible_frames: int = 0
    # Sightings are kept in the first frame's coordinates: the mast's sway moves the
    # whole scene and must not read as the drift of a vehicle (detectors.registration).
    registration: VerticalRegistration = field(default_factory=VerticalRegistration)
    last_frame_dy: float = 0.0

    def add_visible(self, frame: Frame, pose: tuple[float, float, float]) -> None:
        """A visible frame of the dwell: look for a flame where the hotspot is.

        The visible camera is boresighted with the thermal one: a frame without its own
        pose metadata is taken at ``pose``, the thermal frame's. The flame test (colour
        and flicker, detectors.visible_cues) runs on a window around the hotspot's
        direction only, so a chimney or headlights elsewhere in view do not count.
        Supporting evidence: it never confirms or dismisses on its own.
        """
        if frame.image.ndim != 3 or frame.image.shape[2] != 3:
            return
        if math.isfinite(frame.pan_deg) and math.isfinite(frame.tilt_deg):
            hfov = frame.hfov_deg if math.isfinite(frame.hfov_deg) else pose[2]
            pose = (frame.pan_deg, frame.tilt_deg, hfov)
        height, width = frame.image.shape[:2]
        ex, ey = self.context.direction_pixel(
            self.candidate.pan_deg, self.candidate.tilt_deg, pose, width, height
        )
        half = FLAME_SEARCH_HALF_PX
        if not (-half < ex < width + half and -half < ey < height + half):
            return  # NaN too: behind the camera
        x0, y0 = max(int(ex) - half, 0), max(int(ey) - half, 0)
        window = frame.image[y0 : int(ey) + half, x0 : int(ex) + half]
        if window.size == 0:
            return
        self.visible_frames += 1
        self.flame_cue = self.flame.update(np.ascontiguousarray(window), frame.t)

    def visible_evidence(self) -> dict[str, Any] | None:
        if self.visible_frames == 0 or self.flame_cue is None:
            return None
        return {"frames": self.visible_frames, **self.flame_cue.evidence()}

    def add_frame(self, frame: Frame, pose: tuple[float, float, float], now: float) -> None:
        self.frames += 1
        if self.frames == 1:
            self.registration.begin(frame.image)
        else:
            self.registration.follow(frame.image)
        hfov = pose[2]
        height, width = frame.image.shape[:2]
        ex, ey = self.context.direction_pixel(
            self.candidate.pan_deg, self.candidate.tilt_deg, pose, width, height
        )
        if not (math.isfinite(ex) and math.isfinite(ey)):
            return
        x0 = int(min(max(round(ex) - SEARCH_HALF_PX, 0), max(width - 2 * SEARCH_HALF_PX, 0)))
        y0 = int(min(max(round(ey) - SEARCH_HALF_PX, 0), max(height - 2 * SEARCH_HALF_PX, 0)))
        crop = np.ascontiguousarray(
            frame.image[y0 : y0 + 2 * SEARCH_HALF_PX, x0 : x0 + 2 * SEARCH_HALF_PX],
            dtype=np.float32,
        )
        is_day = self.context.is_day(frame.t)
        params = self.context.params.hotspot(is_day, self.context.radiometric)
        result = detect_hotspots(crop, params, _lut(params))
        ifov_rad = math.radians(hfov) / width
        blobs = make_blobs(
            crop, result, radiometry.band_radiance_clipped, ifov_rad, None, params.saturation_k
        )
        best = None
        best_d = math.inf
        for blob in blobs:
            d = math.hypot(blob.x + x0 - ex, blob.y + y0 - ey)
            if d < best_d:
                best, best_d = blob, d
        if best is None:
            return
        x, y = best.x + x0, best.y + y0
        narrow = measure(frame.image, x, y, best.bg_k, radiometry.band_radiance_clipped)
        self.sightings.append(
            Sighting(
                frame.t,
                x,
                y - self.registration.current_px,
                best.peak_k,
                best.bg_k,
                best.a_eq_m2_per_range2,
                narrow,
                best.compact or best.absolute,
                is_day,
            )  # fmt: skip
        )
        self.last_frame = frame
        self.last_frame_dy = self.registration.current_px
        self.last_pose = pose

    def verdict(self) -> Verdict:
        c = self.candidate
        n, seen = self.frames, len(self.sightings)
        persistence = seen / n if n else 0.0
        evidence: dict[str, Any] = {
            "frames": n,
            "persistence": round(persistence, 3),
            "wide_delta_t_k": None if math.isnan(c.delta_t_k) else round(c.delta_t_k, 2),
        }

        def result(outcome: Outcome, reason: str, confidence: float = 0.0) -> Verdict:
            evidence["verdict"] = reason
            visible = self.visible_evidence()
            if not self.sightings or self.last_pose is None or self.last_frame is None:
                return Verdict(outcome, reason, c.pan_deg, c.tilt_deg, math.nan, 0.0,
                               confidence, evidence, visible=visible)  # fmt: skip
            last = self.sightings[-1]
            x = statistics.median(s.x for s in self.sightings)
            y = statistics.median(s.y for s in self.sightings) + self.registration.mean_px
            height, width = self.last_frame.image.shape[:2]
            bearing, elevation = self.context.pixel_direction(x, y, self.last_pose, width, height)
            return Verdict(
                outcome,
                reason,
                bearing % 360.0,
                elevation,
                max(s.peak_k for s in self.sightings),
                statistics.median(s.a_eq_m2_per_range2 for s in self.sightings),
                confidence,
                evidence,
                self.last_frame,
                (last.x, last.y + self.last_frame_dy),  # in the last frame, for the snapshot
                visible,
            )

        if n == 0:
            return result("undecided", "no frames during the dwell")
        if persistence < MIN_PERSISTENCE_TO_REVISIT:
            return result("dismissed", "transient")
        drift = self._drift_px()
        evidence["drift_px"] = round(drift, 2)
        if drift > MAX_DRIFT_PX:
            return result("dismissed", "vehicle")
        if self._sunlit_surface():
            return result("dismissed", "solar")
        zoom = self._zoom_verdict()
        if zoom is not None:
            evidence["zoom_a_eq_ratio"] = (
                round(zoom.ratio, 3) if math.isfinite(zoom.ratio) else None
            )
            evidence["zoom_delta_t_ratio"] = (
                round(zoom.delta_t_ratio, 3) if math.isfinite(zoom.delta_t_ratio) else None
            )
            evidence["zoom_decisive"] = zoom.decisive
            if zoom.decisive and not zoom.compact:
                # A warm surface keeps its temperature when zoomed; so does a flame near
                # enough to fill its pixels (a 2 m front at 5 km). Its temperature tells.
                hottest_k = max(s.peak_k for s in self.sightings)
                resolved_fire = hottest_k >= self.context.params.suppression.resolved_fire_min_k
                evidence["resolved_fire"] = resolved_fire
                if not resolved_fire:
                    return result("dismissed", "extended")
        if persistence < self.persistence_fraction:
            return result("undecided", "intermittent")
        compact = zoom is not None and zoom.decisive and zoom.compact
        confidence = min(1.0, 0.5 + 0.3 * persistence + (0.2 if compact else 0.0))
        return result("confirmed", "fire", confidence)

    def _sunlit_surface(self) -> bool:
        """Zoomed in, most sightings are extended (not sub-pixel) and no hotter than a
        sunlit surface gets by day: a road, roof or rock edge, not a flame (which, once
        resolved, is far hotter). The zoom test alone cannot tell: a flame front and a
        road are both line-like once resolved."""
        day = [s for s in self.sightings if s.is_day]
        if not day:
            return False
        extended = sum(1 for s in day if not s.compact)
        hottest_k = max(s.peak_k for s in day)
        limit_k = self.context.params.suppression.extended_solar_max_k
        return extended > len(day) / 2 and hottest_k < limit_k

    def _drift_px(self) -> float:
        """Largest distance of a sighting from the median position."""
        xs = [s.x for s in self.sightings]
        ys = [s.y for s in self.sightings]
        mx, my = statistics.median(xs), statistics.median(ys)
        return max(math.hypot(x - mx, y - my) for x, y in zip(xs, ys, strict=True))

    def _zoom_verdict(self) -> Any:
        wide = self.candidate.wide
        if wide is None or self.last_pose is None or self.last_frame is None:
            return None
        width = self.last_frame.image.shape[1]
        ifov_narrow = math.radians(self.last_pose[2]) / width * 1e3
        ifov_wide = math.radians(self.candidate.hfov_deg) / width * 1e3
        narrow = BlobMeasurement(
            excess_radiance=statistics.median(s.narrow.excess_radiance for s in self.sightings),
            delta_t_k=statistics.median(s.narrow.delta_t_k for s in self.sightings),
        )
        return zoom_test(wide, narrow, ifov_wide, ifov_narrow)


def warm_up_detection(cfg: TowerConfig) -> None:
    """Run the thermal stage and the confirmation once on a synthetic frame (throwaway
    state), so every numba kernel is loaded from its cache or compiled before service."""
    cam = cfg.camera
    context = DetectionContext.from_config(cfg)
    image = np.full((cam.height_px, cam.width_px), 290.0, dtype=np.float32)
    image[cam.height_px // 2, cam.width_px // 2] = 400.0
    t = 1.0e9
    frame = Frame(image, t, 0, True, 0.0, 0.0, cam.hfov_deg)
    pose = (0.0, 0.0, cam.hfov_deg)
    ThermalStage(context).process(frame, pose, t)
    candidate = Candidate(t, 0.0, 0.0, cam.hfov_deg, cam.width_px / 2, cam.height_px / 2,
                          0.0, 400.0, 110.0, 0.0, True)  # fmt: skip
    scan = ConfirmationScan(context, candidate, cfg.confirmation.persistence_fraction)
    scan.add_frame(frame, pose, t)
    scan.verdict()
