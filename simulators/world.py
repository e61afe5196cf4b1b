"""The simulated world around a tower, rendered radiometrically for any pan, tilt, zoom and time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numba
import numpy as np
import numpy.typing as npt

from detectors.radiometry import (
    Atmosphere,
    band_radiance,
    brightness_temperature,
    psf_pixel_kernel,
    saturation_vapour_pressure_hpa,
)
from detectors.solar import cox_munk_slope_variance, direction_enu, sun_position
from simulators import emitters as em
from simulators import scenario as sc
from simulators import terrain as tr
from simulators.geo import LocalFrame, bearing_range_to_local, earth_drop_m
from simulators.sensor import SensorModel
from simulators.surfaces import (
    EMISSIVITY,
    SPECULAR,
    TEXTURE,
    air_temperature_k,
    class_temperatures_k,
    sky_brightness_k,
)

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

# Solar disc solid angle (sr): sets how bright a specular glint of the sun is.
_SUN_SOLID_ANGLE_SR = 6.8e-5
_SUN_K = 5778.0
_PSF_OVERSAMPLE = 8
_PSF_RADIUS_PX = 2
# Visible colours (BGR) of each land-cover class in daylight.
_CLASS_BGR = np.array(
    [
        (235, 200, 160),  # sky
        (90, 150, 170),  # reed: straw
        (60, 130, 70),  # vegetation
        (110, 90, 60),  # water
        (90, 120, 150),  # bare soil
        (80, 80, 85),  # asphalt
        (120, 150, 175),  # dirt road
        (170, 170, 175),  # roof
        (130, 135, 140),  # rock
        (90, 40, 30),  # solar panel
    ],
    dtype=np.float32,
)
# Land cover is integrated over a pixel's footprint where a class boundary may cross it:
# n² sample rays on an n×n grid sheared so that no two share a row or a column, which
# resolves an edge at any angle in 1/n² steps of fill, not the 1/n of a plain grid.
_SUB_N = 6
_SUB_A, _SUB_B = np.meshgrid(np.arange(_SUB_N), np.arange(_SUB_N), indexing="ij")
_SUB_DX = ((_SUB_N * _SUB_A + _SUB_B + 0.5) / _SUB_N**2 - 0.5).ravel()
_SUB_DY = ((_SUB_N * _SUB_B + _SUB_A + 0.5) / _SUB_N**2 - 0.5).ravel()
# Classes kept per mixed pixel: enough for a road crossing the edge of a field or pond.
_MIX_CLASSES = 3


@dataclass(frozen=True)
class Pose:
    """Pinhole camera at a pan/tilt with a horizontal field of view; pixel (0, 0) is top left."""

    pan_deg: float
    tilt_deg: float
    hfov_deg: float
    width_px: int
    height_px: int

    @property
    def focal_px(self) -> float:
        return (self.width_px / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)

    @property
    def vfov_deg(self) -> float:
        return 2.0 * math.degrees(math.atan((self.height_px / 2.0) / self.focal_px))

    def _basis(self) -> tuple[F64, F64, F64]:
        p = math.radians(self.pan_deg)
        t = math.radians(self.tilt_deg)
        fwd = np.array([math.sin(p) * math.cos(t), math.cos(p) * math.cos(t), math.sin(t)])
        right = np.array([math.cos(p), -math.sin(p), 0.0])
        up = np.cross(right, fwd)
        return fwd, right, up

    def directions(self) -> F64:
        """Unit ENU direction of every pixel centre, shape (H, W, 3)."""
        fwd, right, up = self._basis()
        u = (np.arange(self.width_px) - (self.width_px - 1) / 2.0) / self.focal_px
        v = (np.arange(self.height_px) - (self.height_px - 1) / 2.0) / self.focal_px
        d = (
            fwd[None, None, :]
            + u[None, :, None] * right[None, None, :]
            - v[:, None, None] * up[None, None, :]
        )
        return np.asarray(d / np.linalg.norm(d, axis=2, keepdims=True), dtype=np.float64)

    def rays(self, x_px: F64, y_px: F64) -> F64:
        """Unit ENU directions through arbitrary pixel coordinates (flat arrays), shape (N, 3)."""
        fwd, right, up = self._basis()
        u = (np.asarray(x_px, np.float64) - (self.width_px - 1) / 2.0) / self.focal_px
        v = (np.asarray(y_px, np.float64) - (self.height_px - 1) / 2.0) / self.focal_px
        d = fwd[None, :] + u[:, None] * right[None, :] - v[:, None] * up[None, :]
        return np.asarray(d / np.linalg.norm(d, axis=1, keepdims=True), dtype=np.float64)

    def project(self, az_deg: float, el_deg: float) -> tuple[float, float] | None:
        """Pixel (x, y) of a direction, or None when it is behind the camera."""
        fwd, right, up = self._basis()
        d = np.array(direction_enu(az_deg, el_deg))
        z = float(d @ fwd)
        if z <= 1e-6:
            return None
        return (
            (self.width_px - 1) / 2.0 + self.focal_px * float(d @ right) / z,
            (self.height_px - 1) / 2.0 - self.focal_px * float(d @ up) / z,
        )


@dataclass
class _PoseCache:
    """What a pose sees that does not change with time.

    ``cls``/``texture`` hold each ground pixel's dominant land cover. Pixels a class
    boundary crosses are listed in ``mix_idx`` (flat index) with up to three classes,
    their footprint fractions and textures; rendering mixes their radiances. The
    ``specular_*`` rows are every (pixel, mirroring class, fraction) the sun may glint off.
    """

    pose: Pose
    dirs: F64
    ground_range: F64
    sky: npt.NDArray[np.bool_]
    cls: npt.NDArray[np.int8]
    texture: F32
    tau: F32
    path: F32
    elevation_deg: F32
    haze: F32
    mix_idx: npt.NDArray[np.intp]
    mix_cls: npt.NDArray[np.int8]
    mix_weight: F32
    mix_texture: F32
    specular_idx: npt.NDArray[np.intp]
    specular_cls: npt.NDArray[np.int8]
    specular_weight: F32
    visible_base: F32


@numba.njit(cache=True)
def _deposit(
    rad: F32,
    surf: F32,
    ground_range: F64,
    elems: F64,
    bank: F64,
    over: int,
    count: npt.NDArray[np.int64],
) -> None:
    """Add each sheet element's contrast, spread by the pixel-integrated PSF at its sub-pixel offset.

    elems rows: u, v, weight (area fraction × emissivity × τ), L_object, ground range, thing index.
    An element is hidden when its pixel's line of sight meets the ground nearer than it.
    """
    h, w = rad.shape
    k = bank.shape[2]
    r = k // 2
    for e in range(elems.shape[0]):
        u = elems[e, 0]
        v = elems[e, 1]
        iu = int(math.floor(u + 0.5))
        iv = int(math.floor(v + 0.5))
        if iu < 0 or iv < 0 or iu >= w or iv >= h:
            continue
        gr = ground_range[iv, iu]
        if gr >= 0.0 and gr < elems[e, 4] * 0.985 - 20.0:
            continue
        dl = elems[e, 2] * (elems[e, 3] - surf[iv, iu])
        ox = int(round((u - iu + 0.5) * over))
        oy = int(round((v - iv + 0.5) * over))
        count[int(elems[e, 5])] += 1
        for dy in range(k):
            yy = iv + dy - r
            if yy < 0 or yy >= h:
                continue
            for dx in range(k):
                xx = iu + dx - r
                if xx < 0 or xx >= w:
                    continue
                rad[yy, xx] += dl * bank[oy, ox, dy, dx]


def _shifted(image: F32, sway_deg: tuple[float, float], pose: Pose) -> F32:
    """The image as a line of sight turned by (pan, tilt) degrees sees it: turning right
    moves the scene left, turning up moves it down; the edges repeat what they show."""
    px_per_deg = pose.width_px / pose.hfov_deg
    shift = np.array(
        [[1.0, 0.0, -sway_deg[0] * px_per_deg], [0.0, 1.0, sway_deg[1] * px_per_deg]],
        dtype=np.float32,
    )
    size = (pose.width_px, pose.height_px)
    return np.asarray(
        cv2.warpAffine(image, shift, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
        dtype=np.float32,
    )


def _erfc(x: F64) -> F64:
    """Complementary error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7), x ≥ 0."""
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return np.asarray(poly * np.exp(-x * x), dtype=np.float64)


def _smith_lambda(mu: F64, slope_sigma: float) -> F64:
    """Smith's (1967) shadowing term Λ for a Gaussian sea seen or lit at cos(zenith) ``mu``."""
    mu = np.clip(mu, 1e-6, 1.0)
    nu = mu / (slope_sigma * np.sqrt(1.0 - mu * mu) + 1e-12)
    nu = np.clip(nu, 1e-6, None)
    return np.asarray(
        0.5 * (np.exp(-nu * nu) / (nu * math.sqrt(math.pi)) - _erfc(nu)), dtype=np.float64
    )


def _water_glint(d: F64, s: F64, wind_m_s: float, irradiance: float) -> F64:
    """Sun radiance (band, W m⁻² sr⁻¹) a wind-roughened water surface mirrors along rays ``d``.

    Cox & Munk (1954): L = ρ(ω)·E·p(β) / (4·μ_v·cos⁴β), with p the isotropic Gaussian
    slope density of variance 0.003 + 0.00512·U, β the tilt of the facet that mirrors
    the sun into the ray and ω its incidence angle. At grazing view (μ_v → 0) the
    1/μ_v gathers many facets per pixel, and Smith's shadowing G = 1/(1 + Λ_v + Λ_s)
    hides those behind wave crests, so low-sun glint is bright but finite.
    """
    view = -d  # from the water toward the camera
    h = view + s[None, :]
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    cos_b = np.clip(h[:, 2], 1e-3, 1.0)
    tan2_b = (1.0 - cos_b**2) / cos_b**2
    var = cox_munk_slope_variance(wind_m_s)
    density = np.exp(-tan2_b / var) / (math.pi * var)
    cos_w = np.clip(h @ s, 0.0, 1.0)
    rho = 0.02 + 0.98 * (1.0 - cos_w) ** 5  # Schlick's form of water's Fresnel reflectance
    mu_v = np.clip(view[:, 2], 1e-4, 1.0)
    sigma = math.sqrt(var)
    shadow = 1.0 / (
        1.0 + _smith_lambda(mu_v, sigma) + _smith_lambda(np.array([max(s[2], 1e-4)]), sigma)
    )
    out = rho * irradiance * density * shadow / (4.0 * mu_v * cos_b**4)
    return np.asarray(np.where(view[:, 2] > 0.0, out, 0.0), dtype=np.float64)


class SimWorld:
    """A scenario's world: build once, then :meth:`render` any pose at any time."""

    def __init__(self, scenario: sc.Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        t = scenario.tower
        self.frame = LocalFrame(t.lat, t.lon)
        self.eye_height_m = t.mast_height_m
        w = scenario.weather
        self.atmosphere = Atmosphere(
            w.air_temp_c, w.relative_humidity_pct, w.visibility_km, w.pressure_hpa
        )
        wd = scenario.world
        self.max_range_m = wd.extent_m
        self.grid = tr.HeightGrid.flat(wd.extent_m, wd.cell_m)
        rng = np.random.default_rng([self.seed, 0x7E44A1])
        self._roads: list[tuple[int, F64, float]] = []
        self._channels: list[tuple[F64, float]] = []
        self._patches: list[tuple[int, float, float, float]] = []
        self._objects: list[tuple[sc.SunlitObject, float, float]] = []
        self._build_layout(wd, rng)
        self._range_tab, self._tau_tab, self._path_tab = self.atmosphere.range_tables(
            self.max_range_m * 1.05, 25.0
        )
        self._tau_fire_tab = self.atmosphere.transmittance(self._range_tab, 1000.0, 300.0)
        cam = scenario.camera
        self.camera = cam
        self._bank = self._psf_bank(cam.pixel_pitch_um, cam.f_number)
        centre = psf_pixel_kernel(cam.pixel_pitch_um, cam.f_number, 0.0, 0.0, _PSF_RADIUS_PX)
        self._blur = (centre / centre.sum()).astype(np.float32)
        self.sensor = SensorModel(
            (cam.height_px, cam.width_px),
            self.seed,
            cam.netd_mk / 1000.0,
            cam.fixed_pattern_k,
            cam.drift_k_per_min,
            cam.nuc_interval_s,
            cam.nuc_duration_s,
            scenario.start_unix,
        )
        self._pose_cache: dict[tuple[float, float, float], _PoseCache] = {}
        self._l_sun = float(band_radiance([_SUN_K])[0])
        self._place_cache: dict[int, tuple[float, float]] = {}
        wind_to = (w.wind_from_deg + 180.0) % 360.0
        self._wind_to_rad = math.radians(wind_to)

    # ------------------------------------------------------------------ layout

    def xy(self, place: sc.Place) -> tuple[float, float]:
        """Tower-local ground coordinates (east, north) of a scenario place."""
        if place.lat is not None and place.lon is not None:
            return self.frame.to_local(place.lat, place.lon)
        assert place.bearing_deg is not None and place.range_m is not None
        return bearing_range_to_local(place.bearing_deg, place.range_m)

    def _polyline(self, places: list[sc.Place]) -> F64:
        return np.array([self.xy(p) for p in places], dtype=np.float64)

    def _build_layout(self, wd: sc.World, rng: np.random.Generator) -> None:
        for hill in wd.hills:
            self.grid.add_hill(*self.xy(hill.at), hill.height_m, hill.radius_m)
        for ridge in wd.ridges:
            self.grid.add_ridge(
                *self.xy(ridge.start), *self.xy(ridge.end), ridge.height_m, ridge.half_width_m
            )
        for road in wd.roads:
            cid = tr.ASPHALT if road.kind == "asphalt" else tr.DIRT_ROAD
            self._roads.append((cid, self._polyline(road.points), road.width_m))
        for ch in wd.channels:
            self._channels.append((self._polyline(ch.points), ch.width_m))
        for patch in wd.patches:
            self._patches.append((tr.CLASS_BY_NAME[patch.kind], *self.xy(patch.at), patch.radius_m))
        for b in wd.buildings:
            x, y = self.xy(b.at)
            self._patches.append(
                (tr.ROOF_METAL if b.roof == "metal" else tr.BARE_SOIL, x, y, b.width_m / 2.0)
            )
        pr = wd.procedural

        def rand_xy() -> tuple[float, float]:
            bearing = float(rng.uniform(pr.min_bearing_deg, pr.max_bearing_deg)) % 360.0
            return bearing_range_to_local(
                bearing, float(rng.uniform(pr.min_range_m, pr.max_range_m))
            )

        for _ in range(pr.hills):
            self.grid.add_hill(
                *rand_xy(), float(rng.uniform(10, 80)), float(rng.uniform(300, 1500))
            )
        for i in range(pr.roads):
            pts = np.array([rand_xy() for _ in range(3)], dtype=np.float64)
            self._roads.append(
                (tr.ASPHALT if i % 3 == 0 else tr.DIRT_ROAD, pts, float(rng.uniform(4, 8)))
            )
        for _ in range(pr.channels):
            pts = np.array([rand_xy() for _ in range(3)], dtype=np.float64)
            self._channels.append((pts, float(rng.uniform(5, 40))))
        kinds = (tr.WATER, tr.BARE_SOIL, tr.VEGETATION, tr.ROCK)
        for _ in range(pr.patches):
            self._patches.append((int(rng.choice(kinds)), *rand_xy(), float(rng.uniform(20, 300))))
        for o in wd.objects:
            self._objects.append((o, *self.xy(o.at)))
        object_kinds = ("rock", "rock", "metal", "shed", "car")
        for _ in range(pr.objects):
            x, y = rand_xy()
            kind = str(rng.choice(object_kinds))
            width = float(rng.uniform(1.0, 4.5 if kind != "shed" else 8.0))
            height = float(rng.uniform(0.8, 2.5 if kind != "shed" else 4.0))
            obj = sc.SunlitObject(
                kind=kind,
                at=sc.Place(lat=self.frame.to_wgs84(x, y)[0], lon=self.frame.to_wgs84(x, y)[1]),
                width_m=width,
                height_m=height,
            )
            self._objects.append((obj, x, y))

    def _classify(
        self, x: F64, y: F64, ground: npt.NDArray[np.bool_], reach_m: F64 | None = None
    ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_]]:
        """Land-cover class at ground points, and which points lie within ``reach_m`` of
        the edge of a patch, channel or road (all False without ``reach_m``)."""
        base = tr.CLASS_BY_NAME[self.scenario.world.base]
        cls = np.full(x.shape, base, dtype=np.int8)
        near = np.zeros(x.shape, dtype=bool)
        if not ground.any():
            return np.full(x.shape, tr.SKY, dtype=np.int8), near
        # Features wholly outside the box the ground points (and their reach) span are
        # skipped: most of a scenario lies outside any one narrow view. The box is aligned
        # with the view's mean bearing, so it stays narrow whatever way the camera points.
        gx, gy = x[ground], y[ground]
        bearing = math.atan2(float(gx.mean()), float(gy.mean()))
        sin_b, cos_b = math.sin(bearing), math.cos(bearing)
        margin = 0.0 if reach_m is None else reach_m[ground]
        along = gx * sin_b + gy * cos_b
        across = gx * cos_b - gy * sin_b
        lo_a, hi_a = float(np.min(along - margin)), float(np.max(along + margin))
        lo_c, hi_c = float(np.min(across - margin)), float(np.max(across + margin))

        def outside(xs: F64, ys: F64, radius: float) -> bool:
            fa = xs * sin_b + ys * cos_b
            fc = xs * cos_b - ys * sin_b
            return bool(
                fa.max() + radius < lo_a
                or fa.min() - radius > hi_a
                or fc.max() + radius < lo_c
                or fc.min() - radius > hi_c
            )

        def paint(dist: F64, radius: float, cid: int) -> None:
            cls[dist <= radius] = cid
            if reach_m is not None:
                near[np.abs(dist - radius) <= reach_m] = True

        hill_h = self.grid.sample(x, y)
        cls[hill_h > 15.0] = tr.VEGETATION
        for cid, px, py, radius in self._patches:
            if not outside(np.array([px]), np.array([py]), radius):
                paint(np.hypot(x - px, y - py), radius, cid)
        lines = [(tr.WATER, pts, width) for pts, width in self._channels] + self._roads
        for cid, pts, width in lines:
            for a, b in zip(pts[:-1], pts[1:], strict=True):
                if not outside(np.array([a[0], b[0]]), np.array([a[1], b[1]]), width / 2.0):
                    dist = tr.segment_distance(x, y, a[0], a[1], b[0], b[1])
                    paint(dist, width / 2.0, cid)
        cls[~ground] = tr.SKY
        return cls, near & ground

    @staticmethod
    def _footprint_reach_m(x: F64, y: F64, ground: npt.NDArray[np.bool_]) -> F64:
        """Bound (m) on the ground distance from a pixel's centre point to any point of its footprint.

        Half the spacing to the farther neighbour centre along each image axis bounds the
        half-footprint there (range grows convexly with depression); their sum bounds the
        corners. Where the pixel above sees sky the far half is guessed as twice the near.
        """

        def steps(axis: int) -> tuple[F64, F64]:
            n = x.shape[axis] - 1
            a = [slice(None)] * 2
            b = [slice(None)] * 2
            a[axis], b[axis] = slice(1, None), slice(0, n)
            ta, tb = tuple(a), tuple(b)
            d = np.where(ground[ta] & ground[tb], np.hypot(x[ta] - x[tb], y[ta] - y[tb]), np.nan)
            before = np.full(x.shape, np.nan)
            after = np.full(x.shape, np.nan)
            before[ta] = d  # to the neighbour at index − 1
            after[tb] = d  # to the neighbour at index + 1
            return before, after

        up, down = steps(0)
        left, right = steps(1)
        vert = np.where(np.isnan(up), 2.0 * np.nan_to_num(down), np.fmax(up, down))
        horiz = np.nan_to_num(np.fmax(left, right))
        return np.asarray(0.6 * (vert + horiz) + 0.5, dtype=np.float64)

    def _subpixel_cover(
        self,
        pose: Pose,
        rng_m: F64,
        rows: npt.NDArray[np.intp],
        cols: npt.NDArray[np.intp],
    ) -> tuple[npt.NDArray[np.int64], F64]:
        """Class fractions over the footprints of pixels (rows, cols): (classes, fractions), each (N, 3).

        Every sample ray marches out from the hits of the pixels below, which its line of
        sight is known to clear; samples that see sky past a ridge or the horizon are left
        out, so a pixel stays ground or sky as its centre says. Classes are ordered by
        fraction; unused slots have fraction 0.
        """
        n = rows.size
        ns = _SUB_DX.size
        d = pose.rays(
            (cols[:, None] + _SUB_DX[None, :]).ravel(), (rows[:, None] + _SUB_DY[None, :]).ravel()
        )
        az = np.arctan2(d[:, 0], d[:, 1])
        el = np.arcsin(np.clip(d[:, 2], -1, 1))
        # Start where the lowest of the three pixels below (a sample leans up to half a
        # pixel sideways) meets the ground: nothing of the terrain can be nearer.
        below_row = np.minimum(rows + 1, pose.height_px - 1)
        hit_m = np.where(rng_m >= 0, rng_m, np.inf)
        below = np.minimum.reduce(
            [hit_m[below_row, np.clip(cols + k, 0, pose.width_px - 1)] for k in (-1, 0, 1)]
        )
        start = np.where(rows + 1 < pose.height_px, np.maximum(2.0, 0.98 * below), 2.0)
        s = tr.ray_ranges(
            self.grid, self.eye_height_m, az, el, np.repeat(start, ns), self.max_range_m
        )
        ground = s >= 0
        s = np.where(ground, s, 0.0)
        sub_cls, _ = self._classify(s * np.sin(az), s * np.cos(az), ground)
        sub_cls = sub_cls.reshape(n, ns)
        hits = ground.reshape(n, ns)
        counts = np.zeros((n, tr.N_CLASSES), dtype=np.int64)
        every = np.arange(n)
        for j in range(ns):
            counts[every, sub_cls[:, j]] += hits[:, j]
        order = np.argsort(-counts, axis=1, kind="stable")[:, :_MIX_CLASSES]
        frac = np.take_along_axis(counts, order, axis=1) / np.maximum(
            counts.sum(axis=1, keepdims=True), 1
        )
        return order, np.asarray(frac, dtype=np.float64)

    @staticmethod
    def _psf_bank(pitch_um: float, f_number: float) -> F64:
        n = _PSF_OVERSAMPLE + 1
        k = 2 * _PSF_RADIUS_PX + 1
        bank = np.empty((n, n, k, k))
        for oy in range(n):
            for ox in range(n):
                bank[oy, ox] = psf_pixel_kernel(
                    pitch_um,
                    f_number,
                    ox / _PSF_OVERSAMPLE - 0.5,
                    oy / _PSF_OVERSAMPLE - 0.5,
                    _PSF_RADIUS_PX,
                )
        return bank

    # ------------------------------------------------------------------ per pose

    def pose_for(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None = None) -> Pose:
        cam = self.camera
        if hfov_deg is None:
            hfov_deg = 2.0 * math.degrees(
                math.atan(cam.width_px * cam.pixel_pitch_um * 1e-3 / (2.0 * cam.focal_length_mm))
            )
        return Pose(pan_deg % 360.0, tilt_deg, hfov_deg, cam.width_px, cam.height_px)

    def _cache(self, pose: Pose) -> _PoseCache:
        key = (round(pose.pan_deg, 6), round(pose.tilt_deg, 6), round(pose.hfov_deg, 6))
        hit = self._pose_cache.get(key)
        if hit is not None:
            return hit
        dirs = pose.directions()
        az = np.arctan2(dirs[..., 0], dirs[..., 1])
        el = np.arcsin(np.clip(dirs[..., 2], -1, 1))
        rng_m = tr.line_of_sight_ranges(self.grid, self.eye_height_m, az, el, self.max_range_m)
        ground = rng_m >= 0
        s = np.where(ground, rng_m, 0.0)
        x = s * np.sin(az)
        y = s * np.cos(az)
        cls, near_edge = self._classify(x, y, ground, self._footprint_reach_m(x, y, ground))
        # Boundaries no feature test sees (the vegetated hill tops) show as class changes
        # between neighbouring ground pixels.
        changes = np.zeros_like(near_edge)
        for axis in (0, 1):
            n = cls.shape[axis] - 1
            a = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
            b = (slice(0, n), slice(None)) if axis == 0 else (slice(None), slice(0, n))
            step = (cls[a] != cls[b]) & ground[a] & ground[b]
            changes[a] |= step
            changes[b] |= step
        rows, cols = np.nonzero(near_edge | changes)
        sub_cls, mix_frac = self._subpixel_cover(pose, rng_m, rows, cols)
        seen = mix_frac[:, 0] > 0.0
        cls[rows[seen], cols[seen]] = sub_cls[seen, 0]
        mixed = seen & (mix_frac[:, 1] > 0.0)
        mix_idx = (rows * pose.width_px + cols)[mixed].astype(np.intp)
        mix_cls = sub_cls[mixed].astype(np.int8)
        mix_w = mix_frac[mixed].astype(np.float32)
        clutter = self.scenario.world.clutter_k
        tex = (
            0.75 * tr.value_noise(x, y, 40.0, self.seed)
            + 0.45 * tr.value_noise(x, y, 9.0, self.seed + 1)
        ) * clutter
        tex32 = (tex * TEXTURE[cls]).astype(np.float32)
        mix_tex = (tex.ravel()[mix_idx][:, None] * TEXTURE[mix_cls]).astype(np.float32)
        slant = np.where(ground, s / np.maximum(np.cos(el), 1e-3), self.max_range_m)
        tau = np.interp(slant, self._range_tab, self._tau_tab).astype(np.float32)
        path = np.interp(slant, self._range_tab, self._path_tab).astype(np.float32)
        vis_ext_per_m = 3.912 / (self.scenario.weather.visibility_km * 1000.0)
        haze = (1.0 - np.exp(-vis_ext_per_m * slant)).astype(np.float32)
        whole = np.ones(cls.size, dtype=bool)
        whole[mix_idx] = False
        spec_pure = np.flatnonzero(SPECULAR[cls].ravel() & ground.ravel() & whole)
        spec_part = SPECULAR[mix_cls] & (mix_w > 0.0)
        spec_rows = np.nonzero(spec_part)
        spec = np.concatenate([spec_pure, mix_idx[spec_rows[0]]]).astype(np.intp)
        spec_cls = np.concatenate([cls.ravel()[spec_pure], mix_cls[spec_part]]).astype(np.int8)
        spec_w = np.concatenate(
            [np.ones(spec_pure.size, dtype=np.float32), mix_w[spec_part]]
        ).astype(np.float32)
        elev_deg = np.degrees(el).astype(np.float32)
        sky_col = _CLASS_BGR[tr.SKY]
        colour = _CLASS_BGR[cls]
        colour.reshape(-1, 3)[mix_idx] = np.einsum("nk,nkc->nc", mix_w, _CLASS_BGR[mix_cls])
        vis = colour * (1.0 + 0.08 * tex32[..., None])
        vis = vis * (1.0 - haze[..., None]) + sky_col * haze[..., None]
        sky_px = ~ground
        vis[sky_px] = sky_col * (1.0 - 0.3 * np.clip(elev_deg[sky_px, None] / 10.0, 0, 1))
        visible_base = vis.astype(np.float32)
        cache = _PoseCache(
            pose,
            dirs,
            rng_m,
            ~ground,
            cls,
            tex32,
            tau,
            path,
            elev_deg,
            haze,
            mix_idx,
            mix_cls,
            mix_w,
            mix_tex,
            spec,
            spec_cls,
            spec_w,
            visible_base,
        )
        if len(self._pose_cache) > 32:
            self._pose_cache.pop(next(iter(self._pose_cache)))
        self._pose_cache[key] = cache
        return cache

    # ------------------------------------------------------------------ per frame

    def things_at(self, t_unix: float) -> list[em.Thing]:
        """Every fire and distractor that exists at ``t_unix``."""
        scn = self.scenario
        t_rel = t_unix - scn.start_unix
        tw = scn.tower
        w = scn.weather
        air = air_temperature_k(w.air_temp_c, w.diurnal_range_k, t_unix, tw.lon)
        _, sun_el = sun_position(t_unix, tw.lat, tw.lon)
        forcing = max(0.0, math.sin(math.radians(sun_el))) * (1.0 - 0.75 * w.cloud_cover)
        night = min(1.0, max(0.0, (3.0 - sun_el) / 9.0))
        out: list[em.Thing] = []
        for f in scn.fires:
            thing = em.fire_things(f, *self.xy(f.at), t_rel, self.seed, self._wind_to_rad)
            if thing is not None:
                out.append(em.canopy_warming(thing, air) if f.occluded_below_m > 0 else thing)
        for v in scn.vehicles:
            vt = em.vehicle_thing(v, [self.xy(p) for p in v.route], t_rel, air, forcing)
            if vt is not None:
                out.append(vt)
        for p in scn.people:
            pt = em.person_thing(p, [self.xy(q) for q in p.route], t_rel, air)
            if pt is not None:
                out.append(pt)
        for s in scn.known_sources:
            end = self.xy(s.end) if s.end is not None else None
            out.append(em.source_thing(s, *self.xy(s.at), end, t_rel, air))
        for i, b in enumerate(scn.world.buildings):
            out.append(em.building_thing(b, f"building-{i}", *self.xy(b.at), air, forcing, night))
        for i, sp in enumerate(scn.world.solar_panels):
            out.append(em.panel_thing(sp, f"solar-{i}", *self.xy(sp.at), air, forcing))
        for i, (obj, ox, oy) in enumerate(self._objects):
            out.append(em.sunlit_object_thing(obj, f"object-{i}", ox, oy, air, forcing, night))
        return out

    # ------------------------------------------------------------------ commissioning maps

    def _ground_pixel(
        self, pose: Pose, x: float, y: float, height_m: float
    ) -> tuple[float, float] | None:
        gr = math.hypot(x, y)
        if gr < 1.0:
            return None
        ground = float(self.grid.sample(np.array([x]), np.array([y]))[0])
        drop = float(earth_drop_m(gr)) + self.eye_height_m - ground
        return pose.project(
            math.degrees(math.atan2(x, y)), math.degrees(math.atan2(height_m - drop, gr))
        )

    def road_mask(
        self, pose: Pose, vehicle_height_m: float = 4.5, buffer_px: int = 2
    ) -> npt.NDArray[np.bool_]:
        """The GIS road map drawn for a pose: every road from its surface up to a vehicle's roof.

        A vehicle's hot parts stand above the road line, so the mask covers the band a
        vehicle on the road can occupy, widened by ``buffer_px`` for pointing error.
        """
        mask = np.zeros((pose.height_px, pose.width_px), dtype=np.uint8)
        for _, pts, _width in self._roads:
            for a, b in zip(pts[:-1], pts[1:], strict=True):
                n = max(2, int(math.hypot(b[0] - a[0], b[1] - a[1]) / 10.0))
                prev: tuple[tuple[float, float], tuple[float, float]] | None = None
                for f in np.linspace(0.0, 1.0, n):
                    x = float(a[0] + f * (b[0] - a[0]))
                    y = float(a[1] + f * (b[1] - a[1]))
                    lo = self._ground_pixel(pose, x, y, 0.0)
                    hi = self._ground_pixel(pose, x, y, vehicle_height_m)
                    if lo is None or hi is None:
                        prev = None
                        continue
                    if prev is not None and (
                        -50 < lo[0] < pose.width_px + 50 or -50 < prev[0][0] < pose.width_px + 50
                    ):
                        quad = np.array([prev[0], lo, hi, prev[1]], dtype=np.float64)
                        cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 1)
                    prev = (lo, hi)
        if buffer_px > 0:
            k = 2 * buffer_px + 1
            mask = np.asarray(cv2.dilate(mask, np.ones((k, k), dtype=np.uint8)), dtype=np.uint8)
        return mask.astype(bool)

    def known_source_directions(
        self, step_m: float = 50.0
    ) -> list[tuple[str, float, float, float]]:
        """(name, azimuth, elevation, angular radius) of each known source's hot part.

        What a technician enters at commissioning: a point source at its hot height, a
        line source (pipeline) as points every ``step_m`` along it.
        """
        out = []
        for s in self.scenario.known_sources:
            x0, y0 = self.xy(s.at)
            hot_h = {"flare": s.height_m + 2.5, "chimney": s.height_m * 0.9}.get(
                s.kind, s.height_m / 2.0
            )
            pts = [(x0, y0)]
            if s.end is not None:
                x1, y1 = self.xy(s.end)
                n = max(1, int(math.hypot(x1 - x0, y1 - y0) / step_m))
                pts = [(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n) for k in range(n + 1)]
            for x, y in pts:
                gr = math.hypot(x, y)
                ground = float(self.grid.sample(np.array([x]), np.array([y]))[0])
                drop = float(earth_drop_m(gr)) + self.eye_height_m - ground
                az = math.degrees(math.atan2(x, y)) % 360.0
                el = math.degrees(math.atan2(hot_h - drop, gr))
                out.append((s.name, az, el, math.degrees(math.atan2(s.radius_m, gr))))
        return out

    def _elements(
        self, pose: Pose, things: list[em.Thing]
    ) -> tuple[F64, list[tuple[float, float, float] | None]]:
        rows: list[list[float]] = []
        centres: list[tuple[float, float, float] | None] = []
        a_px = 1.0 / pose.focal_px  # radians per pixel
        for ti, th in enumerate(things):
            centre = None
            for si, sh in enumerate(th.sheets):
                gr = math.hypot(sh.x_m, sh.y_m)
                if gr < 1.0:
                    continue
                az = math.degrees(math.atan2(sh.x_m, sh.y_m))
                drop = (
                    float(earth_drop_m(gr))
                    + self.eye_height_m
                    - float(self.grid.sample(np.array([sh.x_m]), np.array([sh.y_m]))[0])
                )
                el_base = math.degrees(math.atan2(sh.base_m - drop, gr))
                el_top = math.degrees(math.atan2(sh.base_m + sh.height_m - drop, gr))
                uv0 = pose.project(az, el_base)
                uv1 = pose.project(az, el_top)
                if uv0 is None or uv1 is None:
                    continue
                if si == 0:
                    centre = (uv0[0], 0.5 * (uv0[1] + uv1[1]), gr)
                w_px = sh.width_m / (gr * a_px)
                h_px = uv0[1] - uv1[1]
                if sh.emissivity <= 0.0 or h_px <= 0:
                    continue
                if (
                    uv0[0] + w_px < -3
                    or uv0[0] - w_px > pose.width_px + 3
                    or uv0[1] < -3
                    or uv1[1] > pose.height_px + 3
                ):
                    continue
                nx = max(1, math.ceil(w_px / 0.5))
                ny = max(1, math.ceil(h_px / 0.5))
                if nx * ny > 40000:
                    nx = max(1, int(nx * math.sqrt(40000 / (nx * ny))))
                    ny = max(1, int(ny * math.sqrt(40000 / (nx * ny))))
                hot = sh.temperature_k > 500.0
                tau = float(
                    np.interp(gr, self._range_tab, self._tau_fire_tab if hot else self._tau_tab)
                )
                l_obj = float(band_radiance([sh.temperature_k])[0])
                weight = (
                    (w_px / nx) * (h_px / ny) * sh.emissivity * tau * self.camera.lens_efficiency
                )
                for j in range(ny):
                    z_frac = (j + 0.5) / ny
                    if sh.base_m + z_frac * sh.height_m < sh.hidden_below_m:
                        continue
                    v = uv0[1] - z_frac * h_px
                    for i in range(nx):
                        u = uv0[0] + ((i + 0.5) / nx - 0.5) * w_px
                        rows.append([u, v, weight, l_obj, gr, ti])
            centres.append(centre)
        return np.array(rows, dtype=np.float64).reshape(-1, 6), centres

    def render(
        self,
        pan_deg: float,
        tilt_deg: float,
        hfov_deg: float | None,
        t_unix: float,
        *,
        sway_deg: tuple[float, float] = (0.0, 0.0),
    ) -> tuple[F32, npt.NDArray[np.uint8], list[dict[str, Any]]]:
        """(thermal Kelvin float32 (H, W), visible BGR uint8 (H, W, 3), ground truth in view).

        ``sway_deg`` (pan, tilt) turns the line of sight away from the head's pose, as a
        mast bending in the wind does: the optical image moves across the sensor, whose
        fixed pattern and noise stay put. For the few hundredths of a degree a mast sways
        a rotation is a translation of the image (sub-pixel, bilinear); the thermal frame
        moves, the visible frame and the truth stay at the pose.
        """
        pose = self.pose_for(pan_deg, tilt_deg, hfov_deg)
        c = self._cache(pose)
        scn = self.scenario
        tw, w = scn.tower, scn.weather
        temps = class_temperatures_k(
            t_unix, tw.lat, tw.lon, w.air_temp_c, w.diurnal_range_k, w.cloud_cover
        )
        air = temps[tr.SKY]
        sun_az, sun_el = sun_position(t_unix, tw.lat, tw.lon)

        surf_k = (temps[c.cls] + c.texture).astype(np.float32)
        surf = band_radiance(surf_k).astype(np.float32)
        sky_reflect = float(band_radiance([float(sky_brightness_k(air, 20.0, w.cloud_cover))])[0])
        eps = EMISSIVITY[c.cls]
        surf = eps * surf + (1.0 - eps) * np.float32(sky_reflect)
        if c.mix_idx.size:
            # A pixel part road, part reed sends the area-weighted sum of their radiances.
            part = band_radiance(temps[c.mix_cls] + c.mix_texture)
            eps_part = EMISSIVITY[c.mix_cls]
            mixed = (c.mix_weight * (eps_part * part + (1.0 - eps_part) * sky_reflect)).sum(axis=1)
            surf.reshape(-1)[c.mix_idx] = mixed.astype(np.float32)
        if sun_el > 0.0 and c.specular_idx.size:
            self._add_glint(c, surf, sun_az, sun_el, t_unix)
        obs = c.tau * surf + c.path
        if c.sky.any():
            sky_k = sky_brightness_k(air, c.elevation_deg[c.sky], w.cloud_cover)
            obs[c.sky] = band_radiance(sky_k).astype(np.float32)
            surf[c.sky] = obs[c.sky]
        obs = np.asarray(
            cv2.filter2D(obs, -1, self._blur, borderType=cv2.BORDER_REFLECT), dtype=np.float32
        )

        things = self.things_at(t_unix)
        elems, centres = self._elements(pose, things)
        counts = np.zeros(max(1, len(things)), dtype=np.int64)
        if elems.shape[0]:
            _deposit(obs, surf, c.ground_range, elems, self._bank, _PSF_OVERSAMPLE, counts)
        if sway_deg != (0.0, 0.0):
            obs = _shifted(obs, sway_deg, pose)
        scene_k = brightness_temperature(obs)
        shutter_k = air + 5.0
        thermal = self.sensor.apply(scene_k, t_unix, shutter_k)
        visible = self._visible(c, pose, things, centres, sun_el, t_unix)
        truth = self._truth(pose, things, centres, counts)
        return thermal, visible, truth

    def _sun_transmittance(self, sun_el: float) -> float:
        """Band transmittance of the sun's slant path through the water-vapour layer.

        The continuum's self-broadened part goes as ρ_w·e, so it falls off over half the
        vapour's ~2 km scale height; the foreign-broadened part over the full height. The
        slant factor is the Kasten–Young air mass, which stays finite at the horizon.
        """
        w = self.scenario.weather
        e_atm = saturation_vapour_pressure_hpa(w.air_temp_c) * w.relative_humidity_pct / 101325.0
        foreign = 0.002 * w.pressure_hpa / 1013.25
        vertical_m = (1000.0 * e_atm + 2000.0 * foreign) / (e_atm + foreign)
        el = max(sun_el, 0.0)
        air_mass = 1.0 / (math.sin(math.radians(el)) + 0.50572 * (el + 6.07995) ** -1.6364)
        return float(self.atmosphere.transmittance(vertical_m * air_mass, _SUN_K))

    def _add_glint(
        self, c: _PoseCache, surf: F32, sun_az: float, sun_el: float, t_unix: float
    ) -> None:
        idx = c.specular_idx
        d = c.dirs.reshape(-1, 3)[idx]
        s = np.array(direction_enu(sun_az, sun_el))
        cls = c.specular_cls
        water = cls == tr.WATER
        irradiance = self._l_sun * _SUN_SOLID_ANGLE_SR * self._sun_transmittance(sun_el)
        glint = np.zeros(idx.size, dtype=np.float64)
        if np.any(water):
            glint[water] = _water_glint(
                d[water], s, self.scenario.weather.wind_speed_m_s, irradiance
            )
        metal = ~water
        if np.any(metal):
            # Metal and glass: a flat mirror roughened by ~4°, reflecting what it does not emit.
            cos_g = d[metal, 0] * s[0] + d[metal, 1] * s[1] - d[metal, 2] * s[2]
            g = np.arccos(np.clip(cos_g, -1, 1))
            sigma = math.radians(4.0)
            lobe = np.exp(-(g**2) / (2 * sigma**2)) / (2 * math.pi * sigma**2)
            glint[metal] = (1.0 - EMISSIVITY[cls[metal]]) * irradiance * lobe
        lit = glint > 1e-3
        if np.any(lit):
            # A pixel's glint comes from the few wave facets tilted just right at that
            # instant: it sparkles from frame to frame (log-normal, ~40 % per frame).
            rng = np.random.default_rng([self.seed, 0x61147, int(round(t_unix * 1000.0))])
            glint[lit] *= np.exp(rng.normal(-0.08, 0.4, int(lit.sum())))
        # A mixed pixel glints in proportion to its mirroring fraction; one pixel may
        # hold two mirroring classes, so the sums go through add.at.
        np.add.at(surf.reshape(-1), idx, (glint * c.specular_weight).astype(np.float32))

    def _visible(
        self,
        c: _PoseCache,
        pose: Pose,
        things: list[em.Thing],
        centres: list[tuple[float, float, float] | None],
        sun_el: float,
        t_unix: float,
    ) -> npt.NDArray[np.uint8]:
        light = float(np.clip((sun_el + 6.0) / 20.0, 0.03, 1.0))
        # Daylight scales the whole precomputed view; convertScaleAbs saturates to uint8.
        img8: npt.NDArray[np.uint8] = np.ascontiguousarray(
            cv2.convertScaleAbs(c.visible_base, alpha=light), dtype=np.uint8
        )
        a_px = 1.0 / pose.focal_px
        smoke = img8.copy()
        any_smoke = False
        for th, centre in zip(things, centres, strict=True):
            if centre is None:
                continue
            u, v, gr = centre
            for sh in th.sheets:
                w_px = max(1.0, sh.width_m / (gr * a_px))
                h_px = max(1.0, sh.height_m / (gr * a_px))
                col = th.bgr if th.kind != "fire" else (60, 200, 255)
                p0 = (int(u - w_px / 2), int(v + h_px / 2))
                p1 = (int(u + w_px / 2), int(v - h_px / 2))
                cv2.rectangle(img8, p0, p1, col, -1)
                cv2.rectangle(smoke, p0, p1, col, -1)
            if th.kind == "fire":
                self._smoke(smoke, pose, th)
                any_smoke = True
        if not any_smoke:
            return img8
        # Smoke is semi-transparent: the scene shows through it.
        return np.asarray(cv2.addWeighted(smoke, 0.45, img8, 0.55, 0.0), dtype=np.uint8)

    def _smoke(self, overlay: npt.NDArray[np.uint8], pose: Pose, th: em.Thing) -> None:
        for z, dx, dy, radius in self._plume_points(th):
            x, y = th.x_m + dx, th.y_m + dy
            rr = math.hypot(x, y)
            drop = float(earth_drop_m(rr)) + self.eye_height_m
            uv = pose.project(
                math.degrees(math.atan2(x, y)), math.degrees(math.atan2(z - drop, rr))
            )
            if uv is None:
                continue
            r_px = int(max(1.0, radius * pose.focal_px / rr))
            cv2.circle(overlay, (int(uv[0]), int(uv[1])), r_px, (185, 185, 190), -1)

    def _plume_points(self, th: em.Thing) -> list[tuple[float, float, float, float]]:
        """Centre-line samples (height, east and north offsets, radius) of a fire's smoke plume."""
        width = th.sheets[0].width_m
        top = 30.0 + 25.0 * width
        wind = self.scenario.weather.wind_speed_m_s
        pts = []
        for i in range(12):
            z = top * (i + 0.5) / 12
            # Smoke rises at ~1.5 m/s and is carried downwind at the wind speed.
            drift = z * wind / 1.5
            pts.append(
                (
                    z,
                    drift * math.sin(self._wind_to_rad),
                    drift * math.cos(self._wind_to_rad),
                    0.5 * width + 0.25 * z,
                )
            )
        return pts

    def smoke_extinction_per_m(self, x_m: F64, y_m: F64, z_m: F64, t_unix: float) -> F64:
        """Smoke extinction (m⁻¹) at tower-local points, for the lidar simulator to integrate along a ray."""
        x = np.asarray(x_m, np.float64)
        y = np.asarray(y_m, np.float64)
        z = np.asarray(z_m, np.float64)
        out = np.zeros(np.broadcast(x, y, z).shape)
        for th in self.things_at(t_unix):
            if th.kind != "fire":
                continue
            width = th.sheets[0].width_m
            top = 30.0 + 25.0 * width
            wind = self.scenario.weather.wind_speed_m_s
            zc = np.clip(z, 0.0, top)
            drift = zc * wind / 1.5
            cx = th.x_m + drift * math.sin(self._wind_to_rad)
            cy = th.y_m + drift * math.cos(self._wind_to_rad)
            radius = 0.5 * width + 0.25 * zc
            d2 = (x - cx) ** 2 + (y - cy) ** 2
            above = np.exp(-np.maximum(z - top, 0.0) / 20.0) * (z >= 0)
            # Peak extinction ~5e−3 m⁻¹ in the core of a 2 m reed fire's plume, diluting as it widens.
            out += 5e-3 * width / 2.0 * (2.0 / radius) * np.exp(-d2 / (2 * radius**2)) * above
        return out

    def _truth(
        self,
        pose: Pose,
        things: list[em.Thing],
        centres: list[tuple[float, float, float] | None],
        counts: npt.NDArray[np.int64],
    ) -> list[dict[str, Any]]:
        out = []
        for i, (th, centre) in enumerate(zip(things, centres, strict=True)):
            if centre is None:
                continue
            u, v, gr = centre
            if not (-0.5 <= u < pose.width_px - 0.5 and -0.5 <= v < pose.height_px - 0.5):
                continue
            lat, lon = self.frame.to_wgs84(th.x_m, th.y_m)
            out.append(
                {
                    "id": th.id,
                    "kind": th.kind,
                    "x": round(u, 2),
                    "y": round(v, 2),
                    "range_m": round(gr, 1),
                    "bearing_deg": round(math.degrees(math.atan2(th.x_m, th.y_m)) % 360.0, 4),
                    "lat": round(lat, 7),
                    "lon": round(lon, 7),
                    "visible": bool(counts[i] > 0),
                }
            )
        return out

    def main_event_pose(self) -> tuple[float, float]:
        """(pan, tilt) pointing at the scenario's view, first fire, or first distractor."""
        scn = self.scenario
        if scn.view is not None:
            return scn.view.pan_deg, scn.view.tilt_deg
        targets = (
            [f.at for f in scn.fires]
            + [v.route[-1] for v in scn.vehicles]
            + [s.at for s in scn.known_sources]
        )
        targets += [b.at for b in scn.world.buildings] + [p.at for p in scn.world.solar_panels]
        targets += [o.at for o in scn.world.objects]
        if not targets:
            return 0.0, -0.3
        x, y = self.xy(targets[0])
        gr = math.hypot(x, y)
        drop = float(earth_drop_m(gr)) + self.eye_height_m
        return math.degrees(math.atan2(x, y)) % 360.0, math.degrees(math.atan2(-drop + 1.0, gr))


def render(
    world: SimWorld, pan_deg: float, tilt_deg: float, hfov_deg: float | None, t_unix: float
) -> tuple[F32, npt.NDArray[np.uint8], list[dict[str, Any]]]:
    """Module-level form of :meth:`SimWorld.render`."""
    return world.render(pan_deg, tilt_deg, hfov_deg, t_unix)
