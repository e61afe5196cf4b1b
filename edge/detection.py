"""The daemon's thermal stage: the shared detection pipeline fed with this tower's context.

DetectionContext is built once from the config and holds what the pure pipeline cannot
know by itself: thresholds (with the sky margin and the pose-memory capacity), the
day/night rule, the tower's known heat sources and exclusion zones turned into angles
(sources widened by the pointing drift), the mapped roads and the horizon seen from the
mast. The daemon's ThermalStage, the confirmation scan and `towerwatch replay` all use it, so they decide
alike. ThermalStage returns the candidates the PTZ should confirm and counts the
rejections by reason for the status topic.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import structlog

from detectors import radiometry
from detectors.geometry import angle_diff_deg, horizon_dip_deg
from detectors.pipeline import (
    AngularSource,
    AngularZone,
    Decision,
    DetectionParams,
    FramePipeline,
    ground_range_by_row,
    pan_tilt_to_pixel,
)
from detectors.solar import sun_position
from detectors.zoom_test import BlobMeasurement, measure
from drivers.base import Frame
from edge.config import DetectionSettings, ExclusionZone, KnownSource, MappedRoad, TowerConfig
from edge.geodesy import destination, distance_bearing
from edge.geolocation import (
    Lens,
    Pose,
    TowerSite,
    bearing_elevation_pixel,
    bearing_elevation_to,
    pixel_bearing_elevation,
)

log = structlog.get_logger(__name__)

# Ground at 20 km seen from a 40 m mast lies only ~0.005° below the horizon line and a
# flame sheet rises above it: the sky mask starts this far above the geometric horizon.
SKY_MARGIN_DEG = 0.15
# A known source is excluded within its radius plus this pointing tolerance (PTZ drift).
SOURCE_DRIFT_TOLERANCE_DEG = 0.3
# Day thresholds apply above this sun elevation when no config says otherwise (civil
# twilight: the ground has started to warm or is still warm).
DEFAULT_DAY_SUN_ELEVATION_DEG = -3.0
# Roads are drawn from the ground to a vehicle's roof, widened by the pan/tilt accuracy
# (the reference's "buffered by the bearing σ"); centre-line points every so many metres.
VEHICLE_ROOF_M = 4.5
ROAD_POINT_SPACING_M = 25.0
ROAD_BUFFER_DEG = 0.05  # the calibrated pointing accuracy (1σ, docs/physics/geolocation.md)


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


def angular_zones(
    site: TowerSite, ground_m: float, zones: tuple[ExclusionZone, ...]
) -> list[AngularZone]:
    """Exclusion zones as (azimuth, elevation) ellipses from the tower, over flat ground."""
    out = []
    for zone in zones:
        distance_m, bearing = distance_bearing(site.lat, site.lon, zone.lat, zone.lon)
        if distance_m <= zone.radius_m:
            far = destination(site.lat, site.lon, bearing, distance_m + zone.radius_m)
            _, far_el = bearing_elevation_to(site, *far, ground_m)
            out.append(AngularZone(zone.name, bearing, far_el, 180.0, 0.0, surrounds_tower=True))
            continue
        near = destination(site.lat, site.lon, bearing, max(distance_m - zone.radius_m, 1.0))
        far = destination(site.lat, site.lon, bearing, distance_m + zone.radius_m)
        _, near_el = bearing_elevation_to(site, *near, ground_m)
        _, far_el = bearing_elevation_to(site, *far, ground_m)
        half_width = math.degrees(math.asin(zone.radius_m / distance_m))
        out.append(AngularZone(zone.name, bearing, (near_el + far_el) / 2.0, half_width,
                               (far_el - near_el) / 2.0))  # fmt: skip
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
    lines: Sequence[Sequence[RoadPoint]], pan_deg: float, tilt_deg: float, hfov_deg: float,
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
            if angle_diff_deg(point.bearing_deg, pan_deg) > hfov_deg / 2 + margin_deg:
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


@dataclass(frozen=True)
class DetectionContext:
    """Everything the detectors need besides a frame and its pose, built once per tower."""

    params: DetectionParams
    width_px: int
    height_px: int
    radiometric: bool
    lat: float
    lon: float
    day_sun_elevation_deg: float
    horizon_elevation_deg: float | None
    mast_height_m: float
    known_sources: tuple[AngularSource, ...] = ()
    roads: tuple[tuple[RoadPoint, ...], ...] = ()
    exclusion_zones: tuple[AngularZone, ...] = ()
    roll_deg: float = 0.0  # the camera's roll about its optical axis (ptz.calibration)

    @classmethod
    def from_config(cls, cfg: TowerConfig, patrol_stops: int = 0) -> DetectionContext:
        """The context of a configured tower; patrol_stops sizes the pose memory."""
        site = TowerSite(cfg.tower.lat, cfg.tower.lon, cfg.tower.camera_altitude_m)
        ground_m = cfg.tower.ground_elevation_m
        return cls(
            params=detection_params(cfg.detection, patrol_stops),
            width_px=cfg.camera.width_px,
            height_px=cfg.camera.height_px,
            radiometric=cfg.camera.radiometric,
            lat=cfg.tower.lat,
            lon=cfg.tower.lon,
            day_sun_elevation_deg=cfg.detection.sun_elevation_day_deg,
            horizon_elevation_deg=-horizon_dip_deg(cfg.tower.mast_height_m),
            mast_height_m=cfg.tower.mast_height_m,
            known_sources=tuple(angular_sources(site, ground_m, cfg.known_sources)),
            roads=tuple(tuple(line) for line in road_points(site, ground_m, cfg.roads)),
            exclusion_zones=tuple(angular_zones(site, ground_m, cfg.exclusion_zones)),
            roll_deg=_roll_deg(cfg),
        )

    @classmethod
    def bare(
        cls, lat: float, lon: float, width_px: int, height_px: int, radiometric: bool
    ) -> DetectionContext:
        """Default thresholds and no tower knowledge (no sky mask, sources or roads).

        Without a config the camera's height above the land around it is unknown, so
        nothing is masked as sky; the contextual test's own statistics handle it.
        """
        return cls(DetectionParams(), width_px, height_px, radiometric, lat, lon,
                   DEFAULT_DAY_SUN_ELEVATION_DEG, None, 0.0)  # fmt: skip

    def with_camera(self, width_px: int, height_px: int, radiometric: bool) -> DetectionContext:
        return replace(self, width_px=width_px, height_px=height_px, radiometric=radiometric)

    def sun(self, t: float) -> tuple[float, float, bool]:
        """(sun azimuth, sun elevation, is_day) at unix time t: the one day/night rule."""
        sun_az, sun_el = sun_position(t, self.lat, self.lon)
        return sun_az, sun_el, sun_el > self.day_sun_elevation_deg

    def is_day(self, t: float) -> bool:
        return self.sun(t)[2]

    def _lens(self, hfov_deg: float, width_px: int, height_px: int) -> Lens:
        focal_px = (width_px / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return Lens(focal_px, (width_px - 1) / 2.0, (height_px - 1) / 2.0)

    def pixel_direction(
        self, x: float, y: float, pose: tuple[float, float, float], width_px: int, height_px: int
    ) -> tuple[float, float]:
        """The one pixel → (azimuth, elevation) model: a pinhole of the pose's hfov, turned
        by the camera's roll (edge.geolocation's Lens and Pose)."""
        pan, tilt, hfov = pose
        lens = self._lens(hfov, width_px, height_px)
        az, el = pixel_bearing_elevation(x, y, Pose(pan, tilt, self.roll_deg), lens)
        return az % 360.0, el

    def direction_pixel(
        self, az_deg: float, el_deg: float, pose: tuple[float, float, float],
        width_px: int, height_px: int,
    ) -> tuple[float, float]:  # fmt: skip
        """Pixel (x, y) of a direction at a pose; NaN when it lies behind the camera."""
        pan, tilt, hfov = pose
        lens = self._lens(hfov, width_px, height_px)
        u, v = bearing_elevation_pixel(az_deg, el_deg, Pose(pan, tilt, self.roll_deg), lens)
        return float(u), float(v)

    def pipeline(self) -> FramePipeline:
        """A fresh pipeline (its own tracks and pose memory) for this context."""
        return FramePipeline(self.params, self.width_px, self.height_px,
                             radiometric=self.radiometric,
                             horizon_elevation_deg=self.horizon_elevation_deg)  # fmt: skip


def _roll_deg(cfg: TowerConfig) -> float:
    """ptz.calibration.roll_deg where the head's driver has a calibration, else 0."""
    calibration = getattr(cfg.ptz, "calibration", None)
    return float(getattr(calibration, "roll_deg", 0.0))


class ThermalStage:
    """The wide-view detection: one pipeline over the patrol's frames, with road masks."""

    def __init__(self, context: DetectionContext) -> None:
        self.context = context
        self._road_mask_pose: tuple[float, float, float] | None = None
        self._road_mask: np.ndarray | None = None
        self.pipeline = context.pipeline()
        self.rejections: Counter[str] = Counter()

    def _ground_range_for(self, pose: tuple[float, float, float]) -> np.ndarray | None:
        ctx = self.context
        if not ctx.roads:
            return None  # only the road rule uses it
        return ground_range_by_row(pose[1], pose[2], ctx.width_px, ctx.height_px,
                                   ctx.mast_height_m)  # fmt: skip

    def _road_mask_for(self, pose: tuple[float, float, float]) -> np.ndarray | None:
        ctx = self.context
        if not ctx.roads:
            return None
        key = (round(pose[0], 3), round(pose[1], 3), round(pose[2], 3))
        if key != self._road_mask_pose:
            self._road_mask = road_mask(ctx.roads, *key, ctx.width_px, ctx.height_px)
            self._road_mask_pose = key
        return self._road_mask

    def decide(
        self, image: np.ndarray, t: float, pose: tuple[float, float, float]
    ) -> list[Decision]:
        """Every decision of the pipeline on one frame taken at unix time t and pose."""
        pan, tilt, hfov = pose
        sun_az, sun_el, is_day = self.context.sun(t)
        return self.pipeline.process(
            image,
            t,
            pan,
            tilt,
            hfov,
            sun_az_deg=sun_az,
            sun_el_deg=sun_el,
            is_day=is_day,
            known_sources=self.context.known_sources,
            road_mask=self._road_mask_for(pose),
            ground_range_m=self._ground_range_for(pose),
            exclusion_zones=self.context.exclusion_zones,
        )

    def process(
        self, frame: Frame, pose: tuple[float, float, float], now: float
    ) -> list[Candidate]:
        hfov = pose[2]
        image = frame.image if frame.image.dtype == np.float32 else frame.image.astype(np.float32)
        candidates = []
        for decision in self.decide(image, frame.t, pose):
            if decision.event == "candidate":
                wide = None
                if self.context.radiometric:
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
