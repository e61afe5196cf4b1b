"""The per-frame detection pipeline the daemon and replay share: kernel → blobs → tracks → decisions."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numba
import numpy as np

from detectors import radiometry
from detectors.blobs import Blob, make_blobs
from detectors.hotspot import (
    HotspotParams,
    detect_hotspots,
    identity_lut,
    radiance_lut,
    relative_params,
)
from detectors.registration import VerticalRegistration
from detectors.suppression import (
    AngularSource,
    AngularZone,
    PoseMemory,
    PoseMemoryBank,
    Sighting,
    SuppressionParams,
    VisitAccumulator,
    extended_warm,
    fire_cues,
    in_exclusion_zone,
    in_glint_cone,
    motion_reason,
    near_known_source,
    revisit_cues,
    road_evidence,
    score,
    surface_reason,
    touches_mask,
)
from detectors.tracking import Track, Tracker

__all__ = [
    "AngularSource",
    "AngularZone",
    "Decision",
    "DetectionParams",
    "FramePipeline",
    "ground_range_by_row",
    "pan_tilt_to_pixel",
    "pixel_to_pan_tilt",
]


@dataclass(frozen=True)
class DetectionParams:
    """Every threshold of the thermal stage, with its unit; day/night pairs where they differ."""

    k_sigma_day: float = 4.0
    k_sigma_night: float = 3.5
    min_excess_day_k: float = 10.0
    min_excess_night_k: float = 6.0
    absolute_day_k: float = 360.0
    absolute_night_k: float = 330.0
    compact_ratio: float = 0.8
    window_radii_px: tuple[int, ...] = (3, 5, 7, 10)
    guard_radius_px: int = 2
    saturation_k: float = 655.0
    dead_below_k: float = 150.0
    relative_min_excess_counts: float = 12.0  # 8-bit AGC frames: contrast in counts
    pose_tolerance_deg: float = 0.05  # a larger pan/tilt change starts a new visit
    memory_tolerance_deg: float = 0.3  # revisits within this share the pose memory
    # poses remembered (two frames of 2 px block maxima in uint16 each, 328 kB at
    # 640×512): the patrol's stops plus a few rechecks; the least recently used goes first
    pose_memory_capacity: int = 256
    memory_block_px: int = 2
    sky_margin_deg: float = 0.0  # pixels above horizon + margin are sky
    track_gate_px: float = 4.0
    max_missed_frames: int = 3
    max_blobs_per_frame: int = 64
    # One kernel runs per frame and the gateway has few cores shared with rendering,
    # I/O and MQTT: extra numba threads only contend (80 ms/frame seen with 2 on a busy
    # 2-core box against < 1 ms with 1).
    kernel_threads: int = 1
    suppression: SuppressionParams = field(default_factory=SuppressionParams)

    def hotspot(self, is_day: bool, radiometric: bool = True) -> HotspotParams:
        """The kernel's parameter set for day or night (or relative mode)."""
        if not radiometric:
            k = self.k_sigma_day if is_day else self.k_sigma_night
            return relative_params(self.relative_min_excess_counts, k)
        dt = self.min_excess_day_k if is_day else self.min_excess_night_k
        return HotspotParams(
            k_sigma=self.k_sigma_day if is_day else self.k_sigma_night,
            dt_min_k=dt,
            abs_k=self.absolute_day_k if is_day else self.absolute_night_k,
            bgfire_dk=dt,
            compact_ratio=self.compact_ratio,
            window_radii_px=self.window_radii_px,
            guard_radius_px=self.guard_radius_px,
            dead_below_k=self.dead_below_k,
            saturation_k=self.saturation_k,
        )


@dataclass(frozen=True)
class Decision:
    """One thermal-stage verdict on a track.

    ``event`` is 'candidate' when the track first qualifies (the daemon should confirm
    it with the PTZ) or 'rejected' with a ``reason``. ``x``/``y`` are the blob's
    sub-pixel centroid in frame pixels; ``pan_deg``/``tilt_deg`` its direction.
    ``a_eq_m2_per_range2`` × R² / τ is the fire-equivalent area in m².
    """

    t: float
    track_id: int
    x: float
    y: float
    pan_deg: float
    tilt_deg: float
    event: str
    reason: str | None
    score: float
    peak_k: float
    delta_t_k: float
    area_px: int
    a_eq_m2_per_range2: float
    compact: bool
    frame: int = -1
    source: str | None = None  # the known source's or zone's name ('known_source', 'masked')


def _focal_px(hfov_deg: float, width_px: int) -> float:
    return (width_px / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)


def _camera_axes(pan_deg: float, tilt_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(forward, right, up) unit vectors in east-north-up for a pose (no roll)."""
    p, t = math.radians(pan_deg), math.radians(tilt_deg)
    forward = np.array([math.sin(p) * math.cos(t), math.cos(p) * math.cos(t), math.sin(t)])
    right = np.array([math.cos(p), -math.sin(p), 0.0])
    up = np.array([-math.sin(p) * math.sin(t), -math.cos(p) * math.sin(t), math.cos(t)])
    return forward, right, up


def pixel_to_pan_tilt(
    x: float,
    y: float,
    pan_deg: float,
    tilt_deg: float,
    hfov_deg: float,
    width_px: int,
    height_px: int,
) -> tuple[float, float]:
    """Direction (azimuth, elevation) in degrees of a pixel position (pinhole, no roll)."""
    f = _focal_px(hfov_deg, width_px)
    forward, right, up = _camera_axes(pan_deg, tilt_deg)
    u = (x - (width_px - 1) / 2.0) / f
    v = (y - (height_px - 1) / 2.0) / f
    d = forward + u * right - v * up
    az = math.degrees(math.atan2(d[0], d[1])) % 360.0
    el = math.degrees(math.atan2(d[2], math.hypot(d[0], d[1])))
    return az, el


def ground_range_by_row(
    tilt_deg: float,
    hfov_deg: float,
    width_px: int,
    height_px: int,
    eye_height_m: float,
    refraction_k: float = 0.13,
    earth_radius_m: float = 6_371_000.0,
) -> np.ndarray:
    """Ground distance (m) seen by each image row over flat land on the curved earth.

    The refracted ray's height over the sphere is h + s·tanθ + s²(1 − k)/(2R)
    (docs/physics/geolocation.md); each row's elevation gives the nearest root. NaN where the ray
    never meets the ground (sky, or beyond the horizon). Used for a lower bound of a
    hotspot's fire-equivalent area: whatever sits on the ground there is that far.
    """
    f = _focal_px(hfov_deg, width_px)
    rows = np.arange(height_px, dtype=np.float64)
    elevation = np.radians(tilt_deg) - np.arctan((rows - (height_px - 1) / 2.0) / f)
    a = (1.0 - refraction_k) / (2.0 * earth_radius_m)
    b = np.tan(elevation)
    disc = b * b - 4.0 * a * eye_height_m
    with np.errstate(invalid="ignore"):
        s = (-b - np.sqrt(disc)) / (2.0 * a)
    return np.where((disc >= 0.0) & (b < 0.0), s, np.nan)


def pan_tilt_to_pixel(
    az_deg: float,
    el_deg: float,
    pan_deg: float,
    tilt_deg: float,
    hfov_deg: float,
    width_px: int,
    height_px: int,
) -> tuple[float, float]:
    """Pixel position (x, y) of a direction; NaN when it lies behind the camera."""
    f = _focal_px(hfov_deg, width_px)
    forward, right, up = _camera_axes(pan_deg, tilt_deg)
    a, e = math.radians(az_deg), math.radians(el_deg)
    d = np.array([math.sin(a) * math.cos(e), math.cos(a) * math.cos(e), math.sin(e)])
    depth = float(d @ forward)
    if depth <= 0.0:
        return math.nan, math.nan
    x = (width_px - 1) / 2.0 + f * float(d @ right) / depth
    y = (height_px - 1) / 2.0 - f * float(d @ up) / depth
    return x, y


class FramePipeline:
    """Detection and suppression over a stream of frames at changing PTZ poses.

    One instance per camera, fed in time order from one thread. Each call to
    :meth:`process` returns the decisions taken on that frame: a 'candidate' once per
    track when it first qualifies, a 'rejected' once per track when it is rejected.
    """

    def __init__(
        self,
        params: DetectionParams,
        width_px: int,
        height_px: int,
        *,
        radiometric: bool = True,
        horizon_elevation_deg: float | None = None,
    ) -> None:
        self.params = params
        self.width_px = width_px
        self.height_px = height_px
        self.radiometric = radiometric
        self.horizon_elevation_deg = horizon_elevation_deg
        self._hotspot = {day: params.hotspot(day, radiometric) for day in (True, False)}
        # The radiance table depends only on quantisation and saturation, shared by day/night.
        hp = self._hotspot[True]
        self._lut = radiance_lut(radiometry.band_radiance, hp) if radiometric else identity_lut(hp)
        self._tracker = Tracker(params.track_gate_px, params.max_missed_frames)
        self._memories = PoseMemoryBank(
            params.memory_tolerance_deg, params.pose_memory_capacity, params.memory_block_px
        )
        self._visit = VisitAccumulator()
        self._pose: tuple[float, float, float] | None = None
        self._memory: PoseMemory | None = None
        self._sky_cache: tuple[tuple[float, float, float], np.ndarray | None] | None = None
        self._frame_index = -1
        # Tracks live in the coordinates of the visit's first frame: a swaying mast moves
        # the whole scene, and a fire must not look like a vehicle for it.
        self._registration = VerticalRegistration()

    # ------------------------------------------------------------------ helpers

    def _radiance(self, values: np.ndarray) -> np.ndarray:
        if not self.radiometric:
            return np.asarray(values, dtype=np.float64)
        return radiometry.band_radiance_clipped(values)

    def _sky_mask(self, pan_deg: float, tilt_deg: float, hfov_deg: float) -> np.ndarray | None:
        """Rows above the horizon line (+ margin) of this pose, or None without a horizon."""
        if self.horizon_elevation_deg is None:
            return None
        key = (pan_deg, tilt_deg, hfov_deg)
        if self._sky_cache is not None and self._sky_cache[0] == key:
            return self._sky_cache[1]
        limit = self.horizon_elevation_deg + self.params.sky_margin_deg
        f = _focal_px(hfov_deg, self.width_px)
        rows = np.arange(self.height_px, dtype=np.float64)
        elev = tilt_deg - np.degrees(np.arctan((rows - (self.height_px - 1) / 2.0) / f))
        sky_rows = elev > limit
        mask: np.ndarray | None = None
        if np.any(sky_rows):
            mask = np.zeros((self.height_px, self.width_px), dtype=bool)
            mask[sky_rows, :] = True
        self._sky_cache = (key, mask)
        return mask

    def _new_pose(self, pan_deg: float, tilt_deg: float, hfov_deg: float) -> bool:
        if self._pose is None:
            return True
        p0, t0, h0 = self._pose
        dpan = abs((pan_deg - p0 + 180.0) % 360.0 - 180.0)
        tol = self.params.pose_tolerance_deg
        return dpan > tol or abs(tilt_deg - t0) > tol or abs(hfov_deg - h0) > 0.01 * h0

    def _memory_offset_px(
        self, pan_deg: float, tilt_deg: float, hfov_deg: float
    ) -> tuple[float, float]:
        """Shift from this frame's pixels to the pose memory's grid (small-angle)."""
        mem = self._memory
        if mem is None:
            return 0.0, 0.0
        deg_per_px = hfov_deg / self.width_px
        dpan = (pan_deg - mem.pan_deg + 180.0) % 360.0 - 180.0
        return dpan / deg_per_px, -(tilt_deg - mem.tilt_deg) / deg_per_px

    def _nominal_y(self, y: float) -> float:
        """A track's row at the pose's mean pointing: the sway averages out over a visit."""
        return y + self._registration.mean_px

    def _register(self, kelvin: np.ndarray, blobs: list[Blob]) -> list[Blob]:
        """Blobs moved into the visit's first-frame coordinates (only frames with blobs pay)."""
        if not blobs:
            return blobs
        dy = self._registration.follow(kelvin)
        if dy == 0.0:
            return blobs
        return [dataclasses.replace(b, y=b.y - dy) for b in blobs]

    def _decision(
        self,
        track: Track,
        t: float,
        event: str,
        reason: str | None,
        value: float,
        source: str | None = None,
    ) -> Decision:
        last = track.last
        assert self._pose is not None
        pan, tilt = pixel_to_pan_tilt(
            last.x, self._nominal_y(last.y), *self._pose, self.width_px, self.height_px
        )
        track.qualified = track.qualified or event == "candidate"
        if event == "rejected":
            track.rejected_reason = reason
        return Decision(
            t=t,
            track_id=track.track_id,
            x=last.x,
            y=last.y + self._registration.current_px,  # in this frame, to be measured there
            pan_deg=pan,
            tilt_deg=tilt,
            event=event,
            reason=reason,
            score=value,
            peak_k=last.peak_k,
            delta_t_k=last.delta_t_k,
            area_px=last.area_px,
            a_eq_m2_per_range2=last.a_eq_m2_per_range2,
            compact=last.compact,
            frame=self._frame_index,
            source=source,
        )

    def _too_large_for_a_vehicle(self, track: Track, ground_range_m: np.ndarray | None) -> bool:
        """Its fire-equivalent area, at the range of the ground under it and with τ = 1
        (both make it a lower bound), exceeds what a vehicle's engine can show."""
        if ground_range_m is None:
            return False
        row = int(round(track.last.y))
        if not 0 <= row < ground_range_m.size or not math.isfinite(ground_range_m[row]):
            return False
        a_eq_lower_m2 = track.last.a_eq_m2_per_range2 * float(ground_range_m[row]) ** 2
        return a_eq_lower_m2 > self.params.suppression.road_vehicle_max_a_eq_m2

    def _end_visit(self, t: float, road_mask: np.ndarray | None) -> list[Decision]:
        """Close the current visit: remember it, and settle tracks that needed revisits."""
        decisions: list[Decision] = []
        sp = self.params.suppression
        for track in self._tracker.reset():
            if (
                track.rejected_reason is None
                and track.hits >= sp.min_hits
                and self._memory is not None
            ):
                self._memory.sightings.append(
                    Sighting(
                        t=track.last.t,
                        x=float(np.median([o.x for o in track.observations])),
                        y=self._nominal_y(float(np.median([o.y for o in track.observations]))),
                        a_eq_m2_per_range2=track.last.a_eq_m2_per_range2,
                    )
                )
            if (
                not track.qualified
                and track.rejected_reason is None
                and track.hits >= sp.min_hits
                and touches_mask(road_mask, track.last.x, self._nominal_y(track.last.y), 0)
            ):
                decisions.append(self._decision(track, t, "rejected", "road", 0.0))
        mean = self._visit.take_mean()
        if mean is not None and self._memory is not None:
            self._memory.fold_visit(mean, self._visit.last_t, sp.background_tau_s)
        return decisions

    def end_visit(self, t: float, road_mask: np.ndarray | None = None) -> list[Decision]:
        """The camera leaves the pose: fold the visit into the pose memory, settle its tracks.

        Without this call the visit ends when the next frame arrives at another pose.
        """
        if self._pose is None:
            return []
        decisions = self._end_visit(t, road_mask)
        self._pose = None
        self._memory = None
        return decisions

    # ------------------------------------------------------------------ main entry

    def process(
        self,
        kelvin: np.ndarray,
        t: float,
        pan_deg: float,
        tilt_deg: float,
        hfov_deg: float,
        *,
        sun_az_deg: float,
        sun_el_deg: float,
        is_day: bool,
        known_sources: Sequence[AngularSource] = (),
        road_mask: np.ndarray | None = None,
        static_mask: np.ndarray | None = None,
        sky_mask: np.ndarray | None = None,
        ground_range_m: np.ndarray | None = None,
        exclusion_zones: Sequence[AngularZone] = (),
    ) -> list[Decision]:
        """Run one frame. Masks are (H, W) bool, True on the road / static source / sky;
        ``ground_range_m`` (per row, see :func:`ground_range_by_row`) lets a hotspot on a
        road too large to be a vehicle skip the road's revisit requirement."""
        if kelvin.shape != (self.height_px, self.width_px):
            raise ValueError(
                f"frame shape {kelvin.shape} does not match the pipeline's "
                f"({self.height_px}, {self.width_px})"
            )
        self._frame_index += 1
        available = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        threads = max(1, min(self.params.kernel_threads, available))
        if numba.get_num_threads() != threads:
            numba.set_num_threads(threads)
        decisions: list[Decision] = []
        if self._new_pose(pan_deg, tilt_deg, hfov_deg):
            decisions.extend(self._end_visit(t, road_mask))
            self._pose = (pan_deg, tilt_deg, hfov_deg)
            self._memory = self._memories.lookup(pan_deg, tilt_deg, hfov_deg)
            self._registration.begin(kelvin)
        assert self._pose is not None

        hp = self._hotspot[is_day]
        invalid = sky_mask if sky_mask is not None else self._sky_mask(*self._pose)
        if static_mask is not None:
            invalid = static_mask if invalid is None else (invalid | static_mask)
        valid = None if invalid is None else ~invalid
        result = detect_hotspots(kelvin, hp, self._lut, valid)
        ifov_rad = math.radians(hfov_deg) / self.width_px
        blobs = make_blobs(
            kelvin,
            result,
            self._radiance,
            ifov_rad,
            valid,
            hp.saturation_k,
            self.params.max_blobs_per_frame,
        )
        blobs = self._register(kelvin, blobs)
        self._visit.add(kelvin, t)
        touched, ended = self._tracker.update(t, blobs)
        for track in ended:
            # a one-frame blip is noise, not an event worth a decision
            if not track.qualified and track.rejected_reason is None and track.hits >= 2:
                decisions.append(self._decision(track, t, "rejected", "transient", 0.0))
        offset = self._memory_offset_px(pan_deg, tilt_deg, hfov_deg)
        for track in touched:
            decision = self._assess(
                track,
                t,
                offset,
                is_day,
                sun_az_deg,
                sun_el_deg,
                known_sources,
                road_mask,
                static_mask,
                hp.dt_min_k,
                ground_range_m,
                exclusion_zones,
            )
            if decision is not None:
                decisions.append(decision)
        return decisions

    def _assess(
        self,
        track: Track,
        t: float,
        offset: tuple[float, float],
        is_day: bool,
        sun_az_deg: float,
        sun_el_deg: float,
        known_sources: Sequence[AngularSource],
        road_mask: np.ndarray | None,
        static_mask: np.ndarray | None,
        dt_min_k: float,
        ground_range_m: np.ndarray | None = None,
        exclusion_zones: Sequence[AngularZone] = (),
    ) -> Decision | None:
        if track.rejected_reason is not None:
            return None
        sp = self.params.suppression
        last = track.last
        assert self._pose is not None
        nominal_y = self._nominal_y(last.y)
        pan, tilt = pixel_to_pan_tilt(last.x, nominal_y, *self._pose, self.width_px, self.height_px)
        if touches_mask(static_mask, last.x, nominal_y, sp.static_contact_px):
            return self._decision(track, t, "rejected", "static", 0.0)
        src = near_known_source(pan, tilt, known_sources, sp.source_drift_tolerance_deg)
        if src is not None:
            return self._decision(track, t, "rejected", "known_source", 0.0, src.name)
        zone = in_exclusion_zone(pan, tilt, exclusion_zones)
        if zone is not None:
            return self._decision(track, t, "rejected", "masked", 0.0, zone.name)
        if in_glint_cone(pan, tilt, sun_az_deg, sun_el_deg, sp.glint_cone_deg):
            return self._decision(track, t, "rejected", "glint", 0.0)
        if track.hits >= 4 and track.net_displacement_px() > 2.0 * sp.max_displacement_px:
            # clearly and steadily moving (a vehicle's warm body is extended too): say so
            return self._decision(track, t, "rejected", "vehicle", 0.0)
        if is_day and track.hits >= 2 and extended_warm(track, sp):
            # the edge of a sunlit surface flickers around the threshold: judge it by
            # what it is before its jittering centroid is mistaken for motion
            return self._decision(track, t, "rejected", "solar", 0.0)
        reason = motion_reason(track, sp)
        if reason is not None:
            return self._decision(track, t, "rejected", reason, 0.0)
        if track.hits < sp.min_hits or track.duration_s < sp.min_duration_s:
            return None
        novelty, rise = revisit_cues(track, self._memory, offset, t, sp)
        cues = fire_cues(track, novelty, rise, sp)
        reason = surface_reason(track, cues, is_day, sp)
        if reason is not None:
            return self._decision(track, t, "rejected", reason, 0.0)
        if track.qualified or track.persistence < sp.min_persistence:
            return None
        if touches_mask(road_mask, last.x, nominal_y, 0) and not self._too_large_for_a_vehicle(
            track, ground_range_m
        ):
            enough, cooling = road_evidence(track, self._memory, t, sp)
            if cooling:
                return self._decision(track, t, "rejected", "road", 0.0)
            if not enough:
                return None
        return self._decision(track, t, "candidate", None, score(track, cues, dt_min_k))
