"""The daemon's thermal stage: the shared detection pipeline fed with this tower's context.

It adds what the pure pipeline cannot know by itself: the sun's position and day or
night at the frame's time, the tower's known heat sources turned into angles, and the
horizon seen from the mast. It returns the candidates the PTZ should confirm and counts
the rejections by reason for the status topic.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import structlog

from detectors import radiometry
from detectors.pipeline import AngularSource, Decision, DetectionParams, FramePipeline
from detectors.solar import sun_position
from detectors.zoom_test import BlobMeasurement, measure
from drivers.base import Frame
from edge.calibration import horizon_dip_deg
from edge.config import DetectionSettings, KnownSource, TowerConfig
from edge.geodesy import distance_bearing
from edge.geolocation import TowerSite, bearing_elevation_to

log = structlog.get_logger(__name__)

# Ground at 20 km seen from a 40 m mast lies only ~0.005° below the horizon line and a
# flame sheet rises above it: the sky mask starts this far above the geometric horizon.
SKY_MARGIN_DEG = 0.15
# A known source is excluded within its radius plus this pointing tolerance (PTZ drift).
SOURCE_DRIFT_TOLERANCE_DEG = 0.3


@dataclass(frozen=True)
class Candidate:
    """A hotspot the thermal stage asks the PTZ to confirm."""

    t: float
    pan_deg: float
    tilt_deg: float
    hfov_deg: float
    x: float
    y: float
    score: float
    peak_k: float
    delta_t_k: float
    a_eq_m2_per_range2: float
    compact: bool
    wide: BlobMeasurement | None = None  # the 3×3 measurement for the zoom test

    @classmethod
    def from_decision(
        cls, decision: Decision, hfov_deg: float, wide: BlobMeasurement | None = None
    ) -> Candidate:
        return cls(
            t=decision.t,
            pan_deg=decision.pan_deg % 360.0,
            tilt_deg=decision.tilt_deg,
            hfov_deg=hfov_deg,
            x=decision.x,
            y=decision.y,
            score=decision.score,
            peak_k=decision.peak_k,
            delta_t_k=decision.delta_t_k,
            a_eq_m2_per_range2=decision.a_eq_m2_per_range2,
            compact=decision.compact,
            wide=wide,
        )

    @classmethod
    def expected_at(cls, bearing_deg: float, elevation_deg: float, hfov_deg: float) -> Candidate:
        """Where an already known fire should be (for a revisit)."""
        return cls(0.0, bearing_deg % 360.0, elevation_deg, hfov_deg, math.nan, math.nan,
                   0.0, math.nan, math.nan, 0.0, True)  # fmt: skip


def detection_params(settings: DetectionSettings) -> DetectionParams:
    return DetectionParams(
        k_sigma_day=settings.k_sigma_day,
        k_sigma_night=settings.k_sigma_night,
        min_excess_day_k=settings.min_excess_day_k,
        min_excess_night_k=settings.min_excess_night_k,
        absolute_day_k=settings.absolute_day_k,
        absolute_night_k=settings.absolute_night_k,
        sky_margin_deg=SKY_MARGIN_DEG,
    )


def angular_sources(
    site: TowerSite, ground_m: float, sources: tuple[KnownSource, ...]
) -> list[AngularSource]:
    """Known heat sources as (azimuth, elevation, angular radius) from the tower."""
    out = []
    for source in sources:
        pan, tilt = bearing_elevation_to(site, source.lat, source.lon, ground_m + source.height_m)
        distance_m, _ = distance_bearing(site.lat, site.lon, source.lat, source.lon)
        radius = math.degrees(math.atan2(source.radius_m, max(float(distance_m), 1.0)))
        out.append(AngularSource(source.name, pan, tilt, radius + SOURCE_DRIFT_TOLERANCE_DEG))
    return out


def band_radiance_of(values: np.ndarray) -> np.ndarray:
    return radiometry.band_radiance(np.clip(values, 0.0, radiometry.TABLE_MAX_K))


class ThermalStage:
    def __init__(self, cfg: TowerConfig) -> None:
        self.cfg = cfg
        site = TowerSite(cfg.tower.lat, cfg.tower.lon, cfg.tower.camera_altitude_m)
        self.known_sources = angular_sources(site, cfg.tower.ground_elevation_m, cfg.known_sources)
        self.pipeline = FramePipeline(
            detection_params(cfg.detection),
            cfg.camera.width_px,
            cfg.camera.height_px,
            radiometric=cfg.camera.radiometric,
            horizon_elevation_deg=-horizon_dip_deg(cfg.tower.mast_height_m),
        )
        self.rejections: Counter[str] = Counter()

    def transmittance(self, range_m: float | None) -> float:
        """Fire-spectrum transmittance of today's air over ``range_m`` (1 when unknown)."""
        if range_m is None:
            return 1.0
        w = self.cfg.weather
        atmosphere = radiometry.Atmosphere(
            w.air_temp_c, w.relative_humidity_pct, w.visibility_km, w.pressure_hpa
        )
        return float(atmosphere.transmittance(range_m, 1000.0, w.air_temp_c + 273.15))

    def is_day(self, t: float) -> bool:
        _, sun_el = sun_position(t, self.cfg.tower.lat, self.cfg.tower.lon)
        return sun_el > self.cfg.detection.sun_elevation_day_deg

    def process(
        self, frame: Frame, pose: tuple[float, float, float], now: float
    ) -> list[Candidate]:
        pan, tilt, hfov = pose
        sun_az, sun_el = sun_position(frame.t, self.cfg.tower.lat, self.cfg.tower.lon)
        image = frame.image if frame.image.dtype == np.float32 else frame.image.astype(np.float32)
        decisions = self.pipeline.process(
            image,
            frame.t,
            pan,
            tilt,
            hfov,
            sun_az_deg=sun_az,
            sun_el_deg=sun_el,
            is_day=sun_el > self.cfg.detection.sun_elevation_day_deg,
            known_sources=self.known_sources,
        )
        candidates = []
        for decision in decisions:
            if decision.event == "candidate":
                wide = None
                if self.cfg.camera.radiometric:
                    bg_k = decision.peak_k - decision.delta_t_k
                    wide = measure(image, decision.x, decision.y, bg_k, band_radiance_of)
                candidates.append(Candidate.from_decision(decision, hfov, wide))
            else:
                self.rejections[decision.reason or "unspecified"] += 1
                log.debug("hotspot rejected", reason=decision.reason, pan_deg=round(decision.pan_deg, 3),
                          tilt_deg=round(decision.tilt_deg, 3), source=decision.source)  # fmt: skip
        return candidates
