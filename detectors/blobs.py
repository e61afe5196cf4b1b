"""Group hotspot candidate pixels into blobs: peak, sub-pixel centroid, area, excess radiance, A_eq."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from detectors.hotspot import CODE_ABSOLUTE, CODE_COMPACT, HotspotResult

# A fire's flame temperature for the fire-equivalent area (docs/physics/link-budget.md: T_f = 1000 K).
FIRE_REFERENCE_K = 1000.0


@dataclass(frozen=True)
class Blob:
    """One 8-connected group of candidate pixels.

    Pixel (row i, column j) has its centre at (x=j, y=i). ``excess_radiance`` is the sum
    of ΔL = L(T) − L(background) over the blob and its one-pixel rim (the PSF spills
    into pixels below threshold), in W m⁻² sr⁻¹ × pixels. ``a_eq_m2_per_range2`` is the
    fire-equivalent area divided by range² (τ = 1): multiply by R²/τ for m².
    """

    x: float
    y: float
    peak_x: int
    peak_y: int
    peak_k: float
    bg_k: float
    delta_t_k: float
    z: float
    area_px: int
    excess_radiance: float
    a_eq_m2_per_range2: float
    compact: bool
    saturated: bool
    absolute: bool


@njit(cache=True)
def _find(parent: np.ndarray, a: int) -> int:
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@njit(cache=True)
def label_candidates(rows: np.ndarray, cols: np.ndarray, width: int) -> np.ndarray:
    """8-connected component label (0..n-1, in order of first pixel) of each candidate.

    ``rows``/``cols`` must be in row-major order, as the kernel returns them; neighbours
    are found by binary search on the row-major key, so no frame-sized array is needed.
    """
    n = rows.size
    keys = rows.astype(np.int64) * width + cols
    parent = np.arange(n)
    for k in range(n):
        i = rows[k]
        j = cols[k]
        # earlier neighbours in row-major order: the row above (3) and the left one
        for di, dj in ((-1, -1), (-1, 0), (-1, 1), (0, -1)):
            jj = j + dj
            if jj < 0 or jj >= width or i + di < 0:
                continue
            key = np.int64(i + di) * width + jj
            m = np.searchsorted(keys, key)
            if m < n and keys[m] == key:
                ra = _find(parent, k)
                rb = _find(parent, m)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    labels = np.empty(n, dtype=np.int64)
    remap = np.full(n, -1, dtype=np.int64)
    next_label = 0
    for k in range(n):
        r = _find(parent, k)
        if remap[r] < 0:
            remap[r] = next_label
            next_label += 1
        labels[k] = remap[r]
    return labels


def make_blobs(
    frame: np.ndarray,
    result: HotspotResult,
    radiance: Callable[[np.ndarray], np.ndarray],
    ifov_rad: float,
    valid_mask: np.ndarray | None = None,
    saturation_k: float = math.inf,
    max_blobs: int = 64,
) -> list[Blob]:
    """Blobs of one frame, hottest excess first, at most ``max_blobs``.

    ``radiance`` maps frame values to band radiance (identity-like in relative mode);
    ``valid_mask`` (True = usable) keeps sky and masked pixels out of the rim sums.
    """
    if len(result) == 0:
        return []
    labels = label_candidates(result.rows, result.cols, frame.shape[1])
    n_blobs = int(labels.max()) + 1
    # Rank by peak excess over background so a frame full of clutter keeps its best.
    excess = np.asarray(frame[result.rows, result.cols], dtype=np.float64) - np.nan_to_num(
        result.bg_mean_k, nan=-np.inf
    )
    excess = np.where(np.isfinite(excess), excess, np.inf)
    best = np.full(n_blobs, -1, dtype=np.int64)
    for k in np.argsort(-excess, kind="stable"):
        lab = labels[k]
        if best[lab] < 0:
            best[lab] = k
    order = sorted(range(n_blobs), key=lambda b: -excess[best[b]])[:max_blobs]
    l_fire = float(radiance(np.asarray([FIRE_REFERENCE_K]))[0])
    h, w = frame.shape
    # members of every blob at once (a stable sort keeps row-major order inside a blob),
    # instead of one full scan of the labels per blob
    by_label = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[by_label], np.arange(n_blobs + 1))
    blobs = []
    for b in order:
        members = by_label[starts[b] : starts[b + 1]]
        r = result.rows[members]
        c = result.cols[members]
        r0, r1 = max(int(r.min()) - 1, 0), min(int(r.max()) + 2, h)
        c0, c1 = max(int(c.min()) - 1, 0), min(int(c.max()) + 2, w)
        crop = np.asarray(frame[r0:r1, c0:c1], dtype=np.float64)
        member_mask = np.zeros(crop.shape, dtype=bool)
        member_mask[r - r0, c - c0] = True
        rim = member_mask.copy()
        # one-pixel dilation of the member mask (the PSF spill ring)
        rim[1:, :] |= member_mask[:-1, :]
        rim[:-1, :] |= member_mask[1:, :]
        rim2 = rim.copy()
        rim2[:, 1:] |= rim[:, :-1]
        rim2[:, :-1] |= rim[:, 1:]
        usable = rim2 & np.isfinite(crop)
        if valid_mask is not None:
            usable &= valid_mask[r0:r1, c0:c1].astype(bool)
        usable |= member_mask & np.isfinite(crop)
        k_peak = members[int(np.argmax(frame[r, c]))]
        peak_y, peak_x = int(result.rows[k_peak]), int(result.cols[k_peak])
        peak_k = float(frame[peak_y, peak_x])
        bg_k = float(result.bg_mean_k[k_peak])
        if not math.isfinite(bg_k):
            outside = crop[usable & ~member_mask]
            bg_k = float(np.median(outside)) if outside.size else float(np.nanmin(crop))
        std_k = float(result.bg_std_k[k_peak])
        values = np.where(usable, crop, bg_k)
        l_bg = float(radiance(np.asarray([bg_k]))[0])
        delta_l = np.where(usable, radiance(values) - l_bg, 0.0)
        weights = np.clip(delta_l, 0.0, None)
        total = float(weights.sum())
        if total > 0.0:
            yy, xx = np.mgrid[r0:r1, c0:c1]
            x = float((weights * xx).sum() / total)
            y = float((weights * yy).sum() / total)
        else:
            x, y = float(peak_x), float(peak_y)
        a_eq = total * ifov_rad**2 / (l_fire - l_bg) if l_fire > l_bg else math.nan
        kinds = result.kinds[members]
        blobs.append(
            Blob(
                x=x,
                y=y,
                peak_x=peak_x,
                peak_y=peak_y,
                peak_k=peak_k,
                bg_k=bg_k,
                delta_t_k=peak_k - bg_k,
                z=(peak_k - bg_k) / std_k if std_k > 0 else math.inf,
                area_px=int(members.size),
                excess_radiance=total,
                a_eq_m2_per_range2=a_eq,
                compact=bool(np.any((kinds == CODE_COMPACT) | (kinds == CODE_ABSOLUTE))),
                saturated=bool(np.any(frame[r, c] >= saturation_k)),
                absolute=bool(np.any(kinds == CODE_ABSOLUTE)),
            )
        )
    return blobs
