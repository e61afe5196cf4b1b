"""Returns in one smoke-lidar backscatter profile: plumes and hard targets above the clean-air trend.

Pure: arrays and numbers in, results out (docs/physics/smoke-lidar.md). A profile of mean counts
per shot P(R) is compared with the clean-air lidar equation
P(R) = A·R⁻²·exp(−2αR) + P_bg, fitted robustly to the profile itself, i.e. a straight
line in the range-corrected log signal S = ln(R²(P − P_bg)). The z-score of a bin is its
excess over that trend in units of the shot noise (Poisson on the sum of the shots,
plus a relative tolerance for everything the simple model leaves out); because the
range-corrected signal differs from P only by the factor R², the z-scores are those of
X = R²(P − P_bg). A return is a run of bins with z > ``z_min``; runs of width
``min_width_m``…``max_width_m`` (and at least ``min_bins`` bins) are plume-like, narrower
ones are hard targets (a surface echo fills about one bin), and a narrow echo after
which the signal falls to the background for good is a hard target that blocks the beam
(terrain, a building): the trend is fitted only in front of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

ReturnKind = Literal["plume", "hard_target", "extended"]

# Far-end bins that set the background floor, as a fraction of the profile (at least 20).
_TAIL_FRACTION = 0.05
# Running-mean length (bins) used to decide where the signal has faded into the floor.
_FADE_SMOOTH_BINS = 16
# An echo is a blocking surface when it stands this many times above the volume signal
# just in front of it (a diffuse surface returns ~ρ/(πΔr) against β ≈ 1e−6…1e−4 m⁻¹sr⁻¹).
_WALL_CONTRAST = 10.0
# Trial clean-air extinctions for the fit: clear air to ~4 km visibility.
_ALPHA_STEPS = 48
# Robust refit: bins this far from the trend (in z) are left out, with this many neighbours.
_OUTLIER_Z = 4.0
_OUTLIER_PAD_BINS = 2
_FIT_ITERATIONS = 4
# Fewer usable bins than this and no trend is fitted.
_MIN_FIT_BINS = 20


@dataclass(frozen=True)
class LidarReturn:
    """One return above the clean-air trend. ``range_m`` is the z-weighted centroid."""

    kind: ReturnKind
    range_m: float
    start_m: float
    end_m: float
    width_m: float
    bins: int
    peak_z: float
    peak_range_m: float
    blocks_beam: bool = False  # nothing comes back from beyond it

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "range_m": round(self.range_m, 1),
            "width_m": round(self.width_m, 1),
            "z": round(self.peak_z, 1),
            "blocks_beam": self.blocks_beam,
        }


@dataclass(frozen=True)
class ProfileAnalysis:
    """What one profile shows: its returns (nearest first) and the clean-air trend found."""

    returns: tuple[LidarReturn, ...]
    range_m: F64
    z: F64  # NaN outside the analysed stretch
    trend_counts: F64  # NaN outside the analysed stretch
    background_counts: float
    extinction_per_m: float
    noise_scale: float  # robust spread of z in clean air; 1 means shot noise alone
    analysed_from_m: float
    analysed_to_m: float

    @property
    def plume(self) -> LidarReturn | None:
        """The strongest plume-like return, or None."""
        plumes = [r for r in self.returns if r.kind == "plume"]
        return max(plumes, key=lambda r: r.peak_z) if plumes else None

    @property
    def strongest(self) -> LidarReturn | None:
        return max(self.returns, key=lambda r: r.peak_z) if self.returns else None

    @property
    def blocked_at_m(self) -> float | None:
        for r in self.returns:
            if r.blocks_beam:
                return r.range_m
        return None


def _running_mean(x: F64, n: int) -> F64:
    if x.size < n:
        return np.full_like(x, float(np.mean(x)) if x.size else 0.0)
    kernel = np.ones(n) / n
    return np.convolve(x, kernel, mode="same")


def _find_wall(p: F64, first: int, shots: int) -> tuple[int | None, float, float]:
    """(index of a beam-blocking echo or None, background floor, floor noise per bin)."""
    n = p.size
    tail = max(20, int(n * _TAIL_FRACTION))
    floor = float(np.median(p[-tail:]))
    mad = float(np.median(np.abs(p[-tail:] - floor))) * 1.4826
    sigma = max(math.sqrt(max(floor, 1.0 / shots) / shots), mad)
    smooth = _running_mean(p, _FADE_SMOOTH_BINS)
    # Highest smoothed level from each bin to the end: where it first sits on the floor,
    # the signal has faded (slowly, in clean air) or stopped (behind a surface).
    suffix_max = np.maximum.accumulate(smooth[::-1])[::-1]
    on_floor = suffix_max <= floor + 5.0 * sigma / math.sqrt(_FADE_SMOOTH_BINS)
    on_floor[:first] = False
    faded = np.flatnonzero(on_floor)
    if faded.size == 0:
        return None, floor, sigma
    f = int(faded[0])
    lo = max(first, f - _FADE_SMOOTH_BINS)
    if lo > f:
        return None, floor, sigma
    j = lo + int(np.argmax(p[lo : f + 1]))
    before = p[max(first, j - 12) : max(first, j - 2)]
    volume = float(np.median(before)) - floor if before.size else 0.0
    echo = float(p[j]) - floor
    if echo > max(_WALL_CONTRAST * max(volume, 0.0), 10.0 * sigma):
        return j, floor, sigma
    return None, floor, sigma


def _fit_trend(
    r: F64, p: F64, shots: int, tolerance: float, max_alpha: float, c_fixed: float | None
) -> tuple[F64, float, float, npt.NDArray[np.bool_]]:
    """Robust weighted fit of A·(r0/r)²·exp(−2α(r − r0)) + c; (trend, α, c, outlier mask)."""
    r0 = float(r[0])
    alphas = np.linspace(0.0, max_alpha, _ALPHA_STEPS)
    g = (r0 / r)[None, :] ** 2 * np.exp(-2.0 * alphas[:, None] * (r - r0)[None, :])
    var = np.maximum(p, 1.0 / shots) / shots
    keep = np.ones(r.size, dtype=bool)
    trend = np.zeros_like(p)
    alpha = 0.0
    c = 0.0 if c_fixed is None else c_fixed
    for _ in range(_FIT_ITERATIONS):
        w = np.where(keep, 1.0 / var, 0.0)[None, :]
        if c_fixed is None:
            s_gg = np.sum(w * g * g, axis=1)
            s_g = np.sum(w * g, axis=1)
            s_1 = float(np.sum(w))
            s_gy = np.sum(w * g * p, axis=1)
            s_y = float(np.sum(w * p))
            det = s_gg * s_1 - s_g * s_g
            det = np.where(np.abs(det) > 0.0, det, np.inf)
            amp = (s_gy * s_1 - s_g * s_y) / det
            off = (s_gg * s_y - s_g * s_gy) / det
        else:
            s_gg = np.sum(w * g * g, axis=1)
            amp = np.sum(w * g * (p - c_fixed), axis=1) / np.where(s_gg > 0, s_gg, np.inf)
            off = np.full_like(amp, c_fixed)
        model = amp[:, None] * g + off[:, None]
        chi2 = np.sum(w * (p[None, :] - model) ** 2, axis=1)
        chi2 = np.where(amp > 0.0, chi2, np.inf)
        best = int(np.argmin(chi2))
        if not math.isfinite(float(chi2[best])):
            best = 0
        trend = model[best]
        alpha, c = float(alphas[best]), float(off[best])
        volume = np.maximum(trend - c, 0.0)
        var = np.maximum(trend, 1.0 / shots) / shots + (tolerance * volume) ** 2
        z = (p - trend) / np.sqrt(var)
        outlier = np.abs(z) > _OUTLIER_Z
        if _OUTLIER_PAD_BINS:
            padded = np.convolve(
                outlier.astype(np.float64), np.ones(2 * _OUTLIER_PAD_BINS + 1), mode="same"
            )
            outlier = padded > 0.0
        new_keep = ~outlier
        if np.count_nonzero(new_keep) < _MIN_FIT_BINS or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return trend, alpha, c, ~keep


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, end) of every run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def analyse_profile(
    bins: npt.ArrayLike,
    first_bin_m: float,
    bin_m: float,
    *,
    shots: int,
    min_range_m: float = 500.0,
    z_min: float = 5.0,
    min_bins: int = 2,
    min_width_m: float = 15.0,
    max_width_m: float = 500.0,
    model_tolerance: float = 0.02,
    max_extinction_per_m: float = 1.0e-3,
) -> ProfileAnalysis:
    """Find the returns of one profile of mean counts per shot (background included).

    ``shots`` is how many shots were averaged (sets the Poisson noise); bins nearer than
    ``min_range_m`` (incomplete overlap of laser and telescope) are ignored.
    """
    if bin_m <= 0.0 or shots < 1 or z_min <= 0.0 or min_bins < 1:
        raise ValueError("lidar analysis: need bin_m > 0, shots ≥ 1, z_min > 0 and min_bins ≥ 1")
    if not 0.0 < min_width_m <= max_width_m:
        raise ValueError("lidar analysis: need 0 < min_width_m ≤ max_width_m")
    p = np.asarray(bins, dtype=np.float64).ravel()
    p = np.where(np.isfinite(p), p, 0.0)
    r = first_bin_m + bin_m * np.arange(p.size, dtype=np.float64)
    z_all = np.full(p.size, np.nan)
    trend_all = np.full(p.size, np.nan)
    first = int(np.searchsorted(r, min_range_m))
    empty = ProfileAnalysis((), r, z_all, trend_all, 0.0, 0.0, 1.0, min_range_m, min_range_m)
    if p.size - first < _MIN_FIT_BINS:
        return empty

    wall, floor, floor_sigma = _find_wall(p, first, shots)
    end = p.size if wall is None else wall - 1
    c_fixed: float | None = None
    if wall is not None and p.size - (wall + 2) >= _MIN_FIT_BINS:
        c_fixed = float(np.mean(p[wall + 2 :]))
    if end - first < _MIN_FIT_BINS:
        returns: tuple[LidarReturn, ...] = ()
        if wall is not None:
            z_wall = (p[wall] - floor) / floor_sigma
            returns = (_wall_return(r, wall, bin_m, float(z_wall)),)
        return ProfileAnalysis(returns, r, z_all, trend_all, floor, 0.0, 1.0, r[first], r[first])

    # Behind a plume the signal steps down by its two-way transmission, so the trend is
    # fitted again beyond each return (same background, new amplitude and slope), and
    # the trend in front of a return comes from the bins in front of it alone.
    found: list[LidarReturn] = []
    noise_scales: list[float] = []
    alpha, background = 0.0, floor
    seg = first
    while end - seg >= _MIN_FIT_BINS:
        rr, pp = r[seg:end], p[seg:end]
        trend, alpha_s, c_s, outliers = _fit_trend(
            rr, pp, shots, model_tolerance, max_extinction_per_m, c_fixed
        )
        z = _z_scores(pp, trend, c_s, shots, model_tolerance)
        runs = [(a, b) for a, b in _runs(z > z_min) if b - a >= min_bins]
        stop_at = end - seg
        skip = 0
        if runs:
            a, b = runs[0]
            front = a - _OUTLIER_PAD_BINS
            if front >= _MIN_FIT_BINS:
                trend_f, alpha_f, _, outliers_f = _fit_trend(
                    rr[:front], pp[:front], shots, model_tolerance, max_extinction_per_m, c_s
                )
                trend = _extend_trend(rr, trend_f, alpha_f, c_s)
                outliers = np.concatenate((outliers_f, np.ones(rr.size - front, dtype=bool)))
                alpha_s = alpha_f
                z = _z_scores(pp, trend, c_s, shots, model_tolerance)
            runs_all = _runs(z > z_min)
            a, b = next(((s, e) for s, e in runs_all if s <= a < e), (a, b))
            # Its trailing edge, where smoke still adds backscatter while the light that
            # comes back has already crossed most of it, is left out of every trend.
            stop_at = min(rr.size, b + _OUTLIER_PAD_BINS)
            skip = max(_OUTLIER_PAD_BINS, b - a)
        if seg == first:
            alpha, background = alpha_s, c_s
        scale = _noise_scale(z[:stop_at], outliers[:stop_at])
        noise_scales.append(scale)
        z = z[:stop_at] / scale
        z_all[seg : seg + stop_at] = z
        trend_all[seg : seg + stop_at] = trend[:stop_at]
        found += _classify_runs(z, rr[:stop_at], bin_m, z_min, min_bins, min_width_m, max_width_m)
        seg += stop_at + skip
    noise_scale = noise_scales[0] if noise_scales else 1.0
    if wall is not None:
        known = np.flatnonzero(np.isfinite(trend_all[:wall]))
        expected = float(trend_all[known[-1]]) if known.size else floor
        z_wall = (p[wall] - expected) / math.sqrt(max(expected, 1.0 / shots) / shots)
        found.append(_wall_return(r, wall, bin_m, float(z_wall) / noise_scale))
    return ProfileAnalysis(
        tuple(sorted(found, key=lambda x: x.range_m)),
        r,
        z_all,
        trend_all,
        background,
        alpha,
        noise_scale,
        float(r[first]),
        float(r[end - 1]),
    )


def _z_scores(p: F64, trend: F64, background: float, shots: int, tolerance: float) -> F64:
    volume = np.maximum(trend - background, 0.0)
    sigma = np.sqrt(np.maximum(trend, 1.0 / shots) / shots + (tolerance * volume) ** 2)
    return np.asarray((p - trend) / sigma, dtype=np.float64)


def _extend_trend(r: F64, trend_front: F64, alpha: float, background: float) -> F64:
    """The front's trend carried on over the whole stretch with its own amplitude and slope."""
    n = trend_front.size
    r0 = float(r[0])
    amp = float(trend_front[0]) - background
    out = background + amp * (r0 / r) ** 2 * np.exp(-2.0 * alpha * (r - r0))
    out[:n] = trend_front
    return np.asarray(out, dtype=np.float64)


def _noise_scale(z: F64, outliers: npt.NDArray[np.bool_]) -> float:
    """Robust spread of z over the clean bins, never below 1 (the shot noise itself)."""
    clean = z[~outliers[: z.size]]
    if clean.size < _MIN_FIT_BINS:
        return 1.0
    spread = float(np.median(np.abs(clean - np.median(clean)))) * 1.4826
    return max(1.0, spread)


def _classify_runs(
    z: F64,
    r: F64,
    bin_m: float,
    z_min: float,
    min_bins: int,
    min_width_m: float,
    max_width_m: float,
) -> list[LidarReturn]:
    found = []
    for a, b in _runs(z > z_min):
        seg_z = z[a:b]
        width = (b - a) * bin_m
        kind: ReturnKind
        if (b - a) >= min_bins and min_width_m <= width <= max_width_m:
            kind = "plume"
        elif width < min_width_m or (b - a) < min_bins:
            kind = "hard_target"
        else:
            kind = "extended"
        k = int(np.argmax(seg_z))
        found.append(
            LidarReturn(
                kind=kind,
                range_m=float(np.sum(seg_z * r[a:b]) / np.sum(seg_z)),
                start_m=float(r[a] - 0.5 * bin_m),
                end_m=float(r[b - 1] + 0.5 * bin_m),
                width_m=width,
                bins=b - a,
                peak_z=float(seg_z[k]),
                peak_range_m=float(r[a + k]),
            )
        )
    return found


def _wall_return(r: F64, index: int, bin_m: float, z: float) -> LidarReturn:
    return LidarReturn(
        kind="hard_target",
        range_m=float(r[index]),
        start_m=float(r[index] - 0.5 * bin_m),
        end_m=float(r[index] + 0.5 * bin_m),
        width_m=bin_m,
        bins=1,
        peak_z=z,
        peak_range_m=float(r[index]),
        blocks_beam=True,
    )
