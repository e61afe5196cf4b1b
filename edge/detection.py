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
from detectors.pipeline import (
    AngularSource,
    Decision,
    DetectionParams,
    FramePipeline,
    ground_range_by_row,
    pan_tilt_to_pixel,
)
from detectors.solar import sun_position
from detectors.zoom_test import BlobMeasurement, measure
from drivers.base import Frame
from edge.calibration import horizon_dip_deg
from edge.config import DetectionSettings, KnownSource, MappedRoad, TowerConfig
from edge.coverage import atmosphere_of
from edge.geodesy import destination, distance_bearing
from edge.geolocation import TowerSite, bearing_elevation_to

log = structlog.get_logger(__name__)

# Ground at 20 km seen from a 40 m mast lies only ~0.005° below the horizon line and a
# flame sheet rises above it: the sky mask starts this far above the geometric horizon.
SKY_MARGIN_DEG = 0.15
# A known source is excluded within its radius plus this pointing tolerance (PTZ drift).
SOURCE_DRIFT_TOLERANCE_DEG = 0.3
# Roads are drawn from the ground to a vehicle's roof, widened by the pan/tilt accuracy
# (the reference's "buffered by the bearing σ"); centre-line points every so many metres.
VEHICLE_ROOF_M = 4.5
ROAD_POINT_SPACING_M = 25.0
ROAD_BUFFER_DEG = 0.05  # the calibrated pointing accuracy (1σ, algorithms.md §7)


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


# Pose memories kept beyond the patrol's own stops (rechecks, goto holds).
EXTRA_POSE_MEMORIES = 16


def detection_params(settings: DetectionSettings, patrol_stops: int = 0) -> DetectionParams:
    return DetectionParams(
        pose_memory_capacity=max(patrol_stops, 1) + EXTRA_POSE_MEMORIES,
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


@dataclass(frozen=True)
class RoadPoint:
    """One centre-line point of a mapped road as seen from the tower."""

    bearing_deg: float
    ground_elevation_deg: float  # apparent elevation of the road surface
    roof_elevation_deg: float  # ... and of a vehicle roof on it
    half_width_deg: float


def road_points(
    site: TowerSite, ground_m: float, roads: tuple[MappedRoad, ...]
) -> list[list[RoadPoint]]:
    """Each road's centre line, every ROAD_POINT_SPACING_M, in angles from the tower."""
    out = []
    for road in roads:
        line: list[RoadPoint] = []
        for a, b in zip(road.points, road.points[1:], strict=False):
            length_m, heading = distance_bearing(a.lat, a.lon, b.lat, b.lon)
            steps = max(1, math.ceil(length_m / ROAD_POINT_SPACING_M))
            for k in range(steps + 1):
                lat, lon = destination(a.lat, a.lon, heading, length_m * k / steps)
                distance_m, _ = distance_bearing(site.lat, site.lon, lat, lon)
                if distance_m < 1.0:
                    continue
                bearing, ground_el = bearing_elevation_to(site, lat, lon, ground_m)
                _, roof_el = bearing_elevation_to(site, lat, lon, ground_m + VEHICLE_ROOF_M)
                half = math.degrees(math.atan2(road.width_m / 2.0, distance_m))
                line.append(RoadPoint(bearing, ground_el, roof_el, half))
        out.append(line)
    return out


def road_mask(
    lines: list[list[RoadPoint]], pan_deg: float, tilt_deg: float, hfov_deg: float,
    width_px: int, height_px: int,
) -> np.ndarray | None:  # fmt: skip
    """(H, W) bool, True where a mapped road (up to a vehicle roof) lies in this view."""
    import cv2  # lazy: only towers with mapped roads pay for it here

    px_per_deg = width_px / hfov_deg
    margin_deg = hfov_deg  # points just outside the view still paint its edge
    mask = np.zeros((height_px, width_px), dtype=np.uint8)
    for line in lines:
        previous: tuple[int, int, int, int] | None = None
        for point in line:
            if (
                abs((point.bearing_deg - pan_deg + 180.0) % 360.0 - 180.0)
                > hfov_deg / 2 + margin_deg
            ):
                previous = None
                continue
            x0, y0 = pan_tilt_to_pixel(point.bearing_deg, point.ground_elevation_deg, pan_deg,
                                       tilt_deg, hfov_deg, width_px, height_px)  # fmt: skip
            x1, y1 = pan_tilt_to_pixel(point.bearing_deg, point.roof_elevation_deg, pan_deg,
                                       tilt_deg, hfov_deg, width_px, height_px)  # fmt: skip
            if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
                previous = None
                continue
            # a round brush: the road's width plus the pointing buffer on every side
            brush_deg = 2.0 * (point.half_width_deg + ROAD_BUFFER_DEG)
            thickness = max(1, round(brush_deg * px_per_deg))
            current = (round(x0), round(y0), round(x1), round(y1))
            cv2.line(mask, current[:2], current[2:], 1, thickness)
            if previous is not None:
                cv2.line(mask, previous[:2], current[:2], 1, thickness)
                cv2.line(mask, previous[2:], current[2:], 1, thickness)
            previous = current
    return mask.astype(bool) if mask.any() else None


class ThermalStage:
    def __init__(self, cfg: TowerConfig, patrol_stops: int = 0) -> None:
        self.cfg = cfg
        site = TowerSite(cfg.tower.lat, cfg.tower.lon, cfg.tower.camera_altitude_m)
        self.known_sources = angular_sources(site, cfg.tower.ground_elevation_m, cfg.known_sources)
        self.roads = road_points(site, cfg.tower.ground_elevation_m, cfg.roads)
        self._road_mask_pose: tuple[float, float, float] | None = None
        self._road_mask: np.ndarray | None = None
        self.pipeline = FramePipeline(
            detection_params(cfg.detection, patrol_stops),
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
        return float(atmosphere_of(w).transmittance(range_m, 1000.0, w.air_temp_c + 273.15))

    def _ground_range_for(self, pose: tuple[float, float, float]) -> np.ndarray | None:
        if not self.roads:
            return None  # only the road rule uses it
        cam = self.cfg.camera
        return ground_range_by_row(pose[1], pose[2], cam.width_px, cam.height_px,
                                   self.cfg.tower.mast_height_m)  # fmt: skip

    def _road_mask_for(self, pose: tuple[float, float, float]) -> np.ndarray | None:
        if not self.roads:
            return None
        key = (round(pose[0], 3), round(pose[1], 3), round(pose[2], 3))
        if key != self._road_mask_pose:
            cam = self.cfg.camera
            self._road_mask = road_mask(self.roads, *key, cam.width_px, cam.height_px)
            self._road_mask_pose = key
        return self._road_mask

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
            road_mask=self._road_mask_for(pose),
            ground_range_m=self._ground_range_for(pose),
        )
        candidates = []
        for decision in decisions:
            if decision.event == "candidate":
                wide = None
                if self.cfg.camera.radiometric:
                    bg_k = decision.peak_k - decision.delta_t_k
                    wide = measure(
                        image, decision.x, decision.y, bg_k, radiometry.band_radiance_clipped
                    )
                candidates.append(Candidate.from_decision(decision, hfov, wide))
            else:
                self.rejections[decision.reason or "unspecified"] += 1
                log.debug("hotspot rejected", reason=decision.reason, pan_deg=round(decision.pan_deg, 3),
                          tilt_deg=round(decision.tilt_deg, 3), source=decision.source)  # fmt: skip
        return candidates
