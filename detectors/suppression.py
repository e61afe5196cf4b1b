"""False-positive suppression: per-pose memories over revisits and the rules that reject or score tracks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from detectors.geometry import angle_diff_deg
from detectors.solar import glint_angle_deg
from detectors.tracking import Track


@dataclass(frozen=True)
class AngularSource:
    """A known permanent heat source as seen from the tower (true azimuth, elevation)."""

    name: str
    pan_deg: float
    tilt_deg: float
    radius_deg: float


@dataclass(frozen=True)
class AngularZone:
    """A ground exclusion zone as seen from the tower (true azimuth, elevation).

    A small ground disc at range d and radius r spans ±asin(r/d) in azimuth and, in
    elevation, the band between its near and far edges: an ellipse of those
    half-extents about the centre's direction is where the line of sight meets the
    ground inside it. A zone around the tower itself covers every direction below its
    far edge (``surrounds_tower``; the far edge's elevation in ``tilt_deg``).
    """

    name: str
    pan_deg: float
    tilt_deg: float
    half_width_deg: float  # azimuth
    half_depth_deg: float  # elevation
    surrounds_tower: bool = False


@dataclass(frozen=True)
class SuppressionParams:
    """Rule thresholds (docs/algorithms/suppression.md); starting values to be tuned on field data."""

    max_displacement_px: float = 1.5  # vehicle: fitted motion over the track
    max_speed_px_s: float = 0.3  # vehicle: ... or drift speed, once the track spans:
    speed_test_min_s: float = 5.0  # (below this the speed fit is turbulence jitter)
    min_hits: int = 5  # persistence: frames seen before a track may qualify
    min_duration_s: float = 1.0  # ... spanning at least this long (motion must be testable)
    min_persistence: float = 0.6  # ... and seen in this fraction of its frames
    extended_solar_max_k: float = 350.0  # extended and cooler than this by day: sunlit surface
    # Extended and hotter than this: a resolved flame, not a warm surface. The hottest
    # unmapped surfaces a tower sees (sunlit metal, engine blocks, heated pipelines) stay
    # below 400 K; a flame that fills its pixels shows 500-800 K in 8-14 µm.
    resolved_fire_min_k: float = 450.0
    novelty_min_k: float = 6.0  # hotter than the pose's remembered background by less: not new
    solar_ramp_max_k_per_min: float = 0.5  # slower rise since the last visit: sun heating
    step_rise_k_per_min: float = 3.0  # faster rise since the last visit: a fire-like step
    background_tau_s: float = 1200.0  # per-pixel background EWMA time constant over revisits
    glint_cone_deg: float = 15.0
    source_drift_tolerance_deg: float = 0.3  # PTZ pointing drift allowed around known sources
    static_contact_px: int = 1  # a blob this close to the static mask belongs to it
    road_min_revisits: int = 3
    road_min_span_s: float = 180.0
    # A vehicle's hot engine and exhaust (≈1 m² at 400–500 K) is ≈0.1 m² of 1000 K fire:
    # on a road, a hotspot whose fire-equivalent area is surely above this is no vehicle.
    road_vehicle_max_a_eq_m2: float = 0.3
    site_radius_px: float = 1.5  # sightings this close on a later visit are the same site
    flicker_cv_min: float = 0.1
    flicker_min_s: float = 5.0
    growth_t_min: float = 2.6  # one-sided t statistic of the A_eq slope (p ≈ 0.01)


@dataclass
class Sighting:
    """A track seen during one visit of a pose, for the revisit evidence."""

    t: float
    x: float
    y: float
    a_eq_m2_per_range2: float


# Pose memories hold frames in centikelvin (K × 100) in 16 bits, as the radiometric
# stream carries them: 0.01 K steps up to 655.35 K, half the bytes of float32. 0 marks a
# pixel never seen finite (no scene is at 0 K).
_CENTIKELVIN_PER_K = np.float32(100.0)
_CENTIKELVIN_MAX = 65535


def to_centikelvin(kelvin: np.ndarray) -> np.ndarray:
    """Kelvin → uint16 centikelvin, rounded; NaN → 0 (unknown), hotter saturates."""
    scaled = np.nan_to_num(kelvin * _CENTIKELVIN_PER_K, copy=False, nan=0.0)
    np.clip(scaled, 0.0, _CENTIKELVIN_MAX, out=scaled)
    return np.rint(scaled).astype(np.uint16)


def from_centikelvin(centikelvin: np.ndarray) -> np.ndarray:
    """uint16 centikelvin → float32 Kelvin, NaN where unknown."""
    kelvin = np.multiply(centikelvin, np.float32(1.0) / _CENTIKELVIN_PER_K, dtype=np.float32)
    kelvin[centikelvin == 0] = np.nan
    return kelvin


def block_max(centikelvin: np.ndarray, block_px: int) -> np.ndarray:
    """The warmest pixel of each ``block_px`` × ``block_px`` block (0, unknown, never wins);
    a partial block at the right or bottom edge holds the pixels that are there."""
    if block_px == 1:
        return centikelvin
    h, w = centikelvin.shape
    rows, cols = -(-h // block_px), -(-w // block_px)
    if (rows * block_px, cols * block_px) != (h, w):
        padded = np.zeros((rows * block_px, cols * block_px), dtype=centikelvin.dtype)
        padded[:h, :w] = centikelvin
        centikelvin = padded
    return centikelvin.reshape(rows, block_px, cols, block_px).max(axis=(1, 3))


@dataclass
class PoseMemory:
    """What a pose remembers across revisits: background, last visit and sightings.

    The rules only ask a memory for the warmest pixel near a position, so both frames
    are kept as the maximum of each ``block_px`` × ``block_px`` block, in uint16
    centikelvin (``to_centikelvin``): at 2 px blocks a 640×512 pose costs 164 kB a
    frame instead of 1.3 MB in float32. A lookup covers the blocks its window touches,
    so it may see up to ``block_px - 1`` pixels further than asked: a warm neighbour
    counts as background a little sooner, never a little later.
    """

    pan_deg: float
    tilt_deg: float
    hfov_deg: float
    block_px: int = 2
    shape_px: tuple[int, int] | None = None  # the frames' full-resolution shape
    background_ck: np.ndarray | None = None  # per-block EWMA over visits
    last_visit_ck: np.ndarray | None = None  # per-block maximum of the last visit's mean frame
    last_visit_t: float = math.nan
    visits: int = 0
    sightings: list[Sighting] = field(default_factory=list)

    @property
    def remembers(self) -> bool:
        return self.background_ck is not None and self.last_visit_ck is not None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.background_ck, self.last_visit_ck) if a is not None)

    def fold_visit(self, visit_mean_k: np.ndarray, t: float, tau_s: float) -> None:
        """Merge one visit's mean frame into the background (EWMA with time constant tau_s)."""
        visit_ck = block_max(to_centikelvin(visit_mean_k), self.block_px)
        if (
            self.background_ck is None
            or not math.isfinite(self.last_visit_t)
            or self.shape_px != visit_mean_k.shape
        ):
            self.background_ck = visit_ck
        else:
            alpha = 1.0 - math.exp(-max(t - self.last_visit_t, 0.0) / tau_s)
            background = self.background_ck.astype(np.float32)
            blended = background + np.float32(alpha) * (visit_ck - background)
            # where the visit saw nothing the background stays; where the background knew
            # nothing the visit is taken as it is
            blended = np.where(visit_ck == 0, background, blended)
            blended = np.where(self.background_ck == 0, visit_ck, blended)
            self.background_ck = np.rint(blended).astype(np.uint16)
        self.shape_px = visit_mean_k.shape
        self.last_visit_ck = visit_ck
        self.last_visit_t = t
        self.visits += 1

    def background_max_k(self, x: float, y: float, radius_px: int) -> float:
        """Warmest remembered background around a position (NaN when none is known)."""
        return self._neighbourhood_max_k(self.background_ck, x, y, radius_px)

    def last_visit_max_k(self, x: float, y: float, radius_px: int) -> float:
        """Warmest pixel of the previous visit around a position (NaN when none)."""
        return self._neighbourhood_max_k(self.last_visit_ck, x, y, radius_px)

    def _neighbourhood_max_k(
        self, blocks: np.ndarray | None, x: float, y: float, radius_px: int
    ) -> float:
        if blocks is None or self.shape_px is None:
            return math.nan
        bounds = _window_bounds(self.shape_px, x, y, radius_px)
        if bounds is None:
            return math.nan
        i0, i1, j0, j1 = bounds
        b = self.block_px
        warmest = int(blocks[i0 // b : (i1 - 1) // b + 1, j0 // b : (j1 - 1) // b + 1].max())
        return warmest / float(_CENTIKELVIN_PER_K) if warmest > 0 else math.nan


def _window_bounds(
    shape: tuple[int, int], x: float, y: float, radius_px: int
) -> tuple[int, int, int, int] | None:
    """Rows i0:i1 and columns j0:j1 within ``radius_px`` of the (rounded) position,
    clipped to the image; None when the position lies that far outside it."""
    h, w = shape
    i, j = int(round(y)), int(round(x))
    i0, i1 = max(i - radius_px, 0), min(i + radius_px + 1, h)
    j0, j1 = max(j - radius_px, 0), min(j + radius_px + 1, w)
    if i0 >= i1 or j0 >= j1:
        return None
    return i0, i1, j0, j1


def _window(image: np.ndarray, x: float, y: float, radius_px: int) -> np.ndarray | None:
    """The pixels within ``radius_px`` of the (rounded) position, clipped to the image;
    None when the position lies that far outside it."""
    bounds = _window_bounds(image.shape, x, y, radius_px)
    if bounds is None:
        return None
    i0, i1, j0, j1 = bounds
    return image[i0:i1, j0:j1]


class PoseMemoryBank:
    """Pose memories looked up by pose within a tolerance; the least recently used go first."""

    def __init__(self, tolerance_deg: float = 0.2, capacity: int = 256, block_px: int = 2) -> None:
        self.tolerance_deg = tolerance_deg
        self.capacity = capacity
        self.block_px = block_px
        self._memories: list[PoseMemory] = []

    def __len__(self) -> int:
        return len(self._memories)

    def lookup(self, pan_deg: float, tilt_deg: float, hfov_deg: float) -> PoseMemory:
        for k, mem in enumerate(self._memories):
            dpan = abs((pan_deg - mem.pan_deg + 180.0) % 360.0 - 180.0)
            if (
                dpan <= self.tolerance_deg
                and abs(tilt_deg - mem.tilt_deg) <= self.tolerance_deg
                and abs(hfov_deg - mem.hfov_deg) <= 0.01 * hfov_deg
            ):
                self._memories.append(self._memories.pop(k))
                return mem
        mem = PoseMemory(pan_deg, tilt_deg, hfov_deg, block_px=self.block_px)
        self._memories.append(mem)
        if len(self._memories) > self.capacity:
            self._memories.pop(0)
        return mem


@njit(cache=True)
def _accumulate_finite(total: np.ndarray, count: np.ndarray, frame: np.ndarray) -> None:
    """total += frame, count += 1 where the pixel is finite: one pass, no temporaries
    (it runs on every frame of every patrol stop)."""
    flat_total = total.ravel()
    flat_count = count.ravel()
    flat_frame = frame.ravel()
    for k in range(flat_frame.size):
        value = flat_frame[k]
        if np.isfinite(value):
            flat_total[k] += value
            flat_count[k] += 1


class VisitAccumulator:
    """Running per-pixel mean of the frames of the current visit (NaN-aware)."""

    def __init__(self) -> None:
        self._sum: np.ndarray | None = None
        self._count: np.ndarray | None = None
        self.last_t = math.nan

    def add(self, kelvin: np.ndarray, t: float) -> None:
        if self._sum is None or self._count is None or self._sum.shape != kelvin.shape:
            self._sum = np.zeros(kelvin.shape, dtype=np.float64)
            self._count = np.zeros(kelvin.shape, dtype=np.int32)
        _accumulate_finite(self._sum, self._count, np.ascontiguousarray(kelvin))
        self.last_t = t

    def take_mean(self) -> np.ndarray | None:
        """The visit's mean frame (NaN where never finite), then start afresh."""
        if self._sum is None or self._count is None:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self._count > 0, self._sum / np.maximum(self._count, 1), np.nan)
        self._sum = None
        self._count = None
        return mean.astype(np.float32)


def angular_distance_deg(pan1: float, tilt1: float, pan2: float, tilt2: float) -> float:
    """Great-circle angle between two directions given as azimuth/elevation in degrees."""
    a1, e1, a2, e2 = map(math.radians, (pan1, tilt1, pan2, tilt2))
    c = math.sin(e1) * math.sin(e2) + math.cos(e1) * math.cos(e2) * math.cos(a1 - a2)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def near_known_source(
    pan_deg: float, tilt_deg: float, sources: Sequence[AngularSource], tolerance_deg: float
) -> AngularSource | None:
    """The known source whose (radius + drift tolerance) covers the direction, if any."""
    for src in sources:
        if angular_distance_deg(pan_deg, tilt_deg, src.pan_deg, src.tilt_deg) <= (
            src.radius_deg + tolerance_deg
        ):
            return src
    return None


def in_exclusion_zone(
    pan_deg: float, tilt_deg: float, zones: Sequence[AngularZone]
) -> AngularZone | None:
    """The exclusion zone whose ground the direction meets, if any."""
    for zone in zones:
        if zone.surrounds_tower:
            if tilt_deg <= zone.tilt_deg:
                return zone
            continue
        across = angle_diff_deg(pan_deg, zone.pan_deg) / zone.half_width_deg
        along = (tilt_deg - zone.tilt_deg) / zone.half_depth_deg
        if across * across + along * along <= 1.0:
            return zone
    return None


def in_glint_cone(
    pan_deg: float, tilt_deg: float, sun_az_deg: float, sun_el_deg: float, cone_deg: float
) -> bool:
    """True when a level reflector at this direction would mirror the sun into the camera."""
    if sun_el_deg <= 0.0:
        return False
    return glint_angle_deg(pan_deg, tilt_deg, sun_az_deg, sun_el_deg) < cone_deg


def touches_mask(mask: np.ndarray | None, x: float, y: float, radius_px: int) -> bool:
    """True when any mask pixel lies within ``radius_px`` of the (rounded) position."""
    patch = None if mask is None else _window(mask, x, y, radius_px)
    return patch is not None and bool(np.any(patch))


@dataclass(frozen=True)
class Cues:
    """What the rules saw in one track (for the score and the decision record)."""

    novelty_k: float  # peak − remembered background, NaN on a pose's first visit
    rise_k_per_min: float  # change since the previous visit, NaN on a first visit
    step_rise: bool
    growth: bool
    flicker: bool
    flicker_cv: float


def motion_reason(track: Track, p: SuppressionParams) -> str | None:
    """'vehicle' when the track moves more than turbulence explains."""
    if track.net_displacement_px() > p.max_displacement_px:
        return "vehicle"
    if track.duration_s >= p.speed_test_min_s:
        vx, vy = track.velocity_px_s()
        if math.hypot(vx, vy) > p.max_speed_px_s:
            return "vehicle"
    return None


def revisit_cues(
    track: Track,
    memory: PoseMemory | None,
    offset_px: tuple[float, float],
    t: float,
    p: SuppressionParams,
) -> tuple[float, float]:
    """(novelty_k, rise_k_per_min) of the track's peak against the pose's memory.

    ``offset_px`` moves a position of the current frame into the memory's pixel grid
    (the pose may differ by a few tenths of a degree between visits).
    """
    if memory is None or not memory.remembers:
        return math.nan, math.nan
    x = track.last.x + offset_px[0]
    y = track.last.y + offset_px[1]
    background = memory.background_max_k(x, y, 1)
    previous = memory.last_visit_max_k(x, y, 1)
    novelty = track.last.peak_k - background
    dt_min = (t - memory.last_visit_t) / 60.0
    rise = (track.last.peak_k - previous) / dt_min if dt_min > 0 else math.nan
    return novelty, rise


def fire_cues(track: Track, novelty_k: float, rise_k_per_min: float, p: SuppressionParams) -> Cues:
    """Persistence-independent fire cues: step rise, A_eq growth, flicker (supporting only)."""
    step = math.isfinite(rise_k_per_min) and rise_k_per_min >= p.step_rise_k_per_min
    a_eq = [o.a_eq_m2_per_range2 for o in track.observations if math.isfinite(o.a_eq_m2_per_range2)]
    growth = False
    if len(a_eq) >= 5 and len(a_eq) == track.hits:
        slope, t_stat = track.slope_per_s(a_eq)
        growth = slope > 0 and t_stat > p.growth_t_min
    cv = track.flicker_cv()
    flicker = track.duration_s >= p.flicker_min_s and math.isfinite(cv) and cv > p.flicker_cv_min
    return Cues(
        novelty_k=novelty_k,
        rise_k_per_min=rise_k_per_min,
        step_rise=step,
        growth=growth,
        flicker=flicker,
        flicker_cv=cv,
    )


def extended_warm(track: Track, p: SuppressionParams) -> bool:
    """Extended (C1 without C2) and cooler than a fire could be: a sunlit surface's edge.

    A surface stays where it is (its edge only jitters); an extended warm body that has
    already moved further than that is a vehicle (a van's engine at 335 K), which the
    motion rule names once the track is long enough.
    """
    last = track.last
    warm = not last.compact and not last.absolute and last.peak_k < p.extended_solar_max_k
    return warm and track.net_displacement_px() <= p.max_displacement_px


def surface_reason(track: Track, cues: Cues, is_day: bool, p: SuppressionParams) -> str | None:
    """'solar' (or 'static' at night) for something that heats like a surface, not a fire.

    Without memory (a pose's first visit) only an extended, moderately warm surface is
    judged: a fire that small would be compact. With memory, a hotspot that was already
    there (little novelty over the background) and ramps slowly is a heated surface.
    """
    last = track.last
    if is_day and extended_warm(track, p):
        return "solar"
    if (
        math.isfinite(cues.novelty_k)
        and cues.novelty_k < p.novelty_min_k
        and math.isfinite(cues.rise_k_per_min)
        and cues.rise_k_per_min < p.solar_ramp_max_k_per_min
        and not last.absolute
    ):
        return "solar" if is_day else "static"
    return None


def road_evidence(
    track: Track, memory: PoseMemory | None, t: float, p: SuppressionParams
) -> tuple[bool, bool]:
    """(enough revisit evidence, cooling) for a track on a mapped road.

    A truck driving at the tower brightens like a growing fire (∝ τ/R²), so on a road
    the tower needs the same hotspot at the same place over ≥ 3 visits spanning ≥ 3 min,
    not shrinking; a falling A_eq (a parked vehicle cooling) rejects.
    """
    if memory is None:
        return False, False
    x, y = track.last.x, track.last.y
    same = [
        s
        for s in memory.sightings
        if math.hypot(s.x - x, s.y - y) <= p.site_radius_px and s.t < track.first.t
    ]
    times = [s.t for s in same] + [t]
    a_eq = [s.a_eq_m2_per_range2 for s in same] + [track.last.a_eq_m2_per_range2]
    visits = len(same) + 1
    if visits < 2:
        return False, False
    span = max(times) - min(times)
    ts = np.asarray(times)
    vs = np.asarray(a_eq)
    ts = ts - ts.mean()
    denom = float((ts * ts).sum())
    slope = float((ts * (vs - vs.mean())).sum() / denom) if denom > 0 else 0.0
    cooling = slope < 0.0
    enough = visits >= p.road_min_revisits and span >= p.road_min_span_s and not cooling
    return enough, cooling


def score(track: Track, cues: Cues, dt_min_k: float) -> float:
    """A 0–1 fire likelihood: contrast and persistence first, then step, growth, flicker."""
    contrast = min(max(track.last.delta_t_k, 0.0) / (2.0 * dt_min_k), 1.0)
    value = (
        0.35 * contrast
        + 0.2 * min(track.persistence, 1.0)
        + 0.15 * (1.0 if cues.step_rise else 0.0)
        + 0.15 * (1.0 if cues.growth else 0.0)
        + 0.1 * (1.0 if track.last.compact else 0.0)
        + 0.05 * (1.0 if cues.flicker else 0.0)
    )
    return round(value, 4)
