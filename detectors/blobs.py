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


@njit(cache=True)
def _footprints(
    frame: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    kinds: np.ndarray,
    by_label: np.ndarray,
    starts: np.ndarray,
    order: np.ndarray,
    saturation_k: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pixel of each blob in ``order`` with its one-pixel rim (the PSF spill ring).

    Returns (slot, y, x, is_member) per pixel, slot being the blob's place in ``order``,
    then per slot the index of its hottest member (the first NaN, as ``np.argmax``) and
    its flags (bit 0 compact, 1 saturated, 2 absolute). One pass instead of a dozen small
    numpy calls per blob: a cluttered noon frame has dozens of blobs.
    """
    h, w = frame.shape
    # each blob's box with its rim, clipped to the frame: rows r0:r1, columns c0:c1
    boxes = np.empty((order.size, 4), dtype=np.int64)
    size = 0
    for slot in range(order.size):
        members = by_label[starts[order[slot]] : starts[order[slot] + 1]]
        r0, r1 = max(rows[members].min() - 1, 0), min(rows[members].max() + 2, h)
        c0, c1 = max(cols[members].min() - 1, 0), min(cols[members].max() + 2, w)
        boxes[slot] = (r0, r1, c0, c1)
        size += (r1 - r0) * (c1 - c0)
    slot_of = np.empty(size, dtype=np.int64)
    ys = np.empty(size, dtype=np.int64)
    xs = np.empty(size, dtype=np.int64)
    is_member = np.empty(size, dtype=np.bool_)
    peaks = np.empty(order.size, dtype=np.int64)
    flags = np.zeros(order.size, dtype=np.int64)
    n = 0
    for slot in range(order.size):
        b = order[slot]
        members = by_label[starts[b] : starts[b + 1]]
        r0, r1, c0, c1 = boxes[slot, 0], boxes[slot, 1], boxes[slot, 2], boxes[slot, 3]
        mask = np.zeros((r1 - r0, c1 - c0), dtype=np.bool_)
        best = members[0]
        best_value = -np.inf
        for m in members:
            mask[rows[m] - r0, cols[m] - c0] = True
            value = frame[rows[m], cols[m]]
            if best_value == best_value and (value != value or value > best_value):
                best, best_value = m, value  # NaN compares false: the first NaN stays
            if value >= saturation_k:
                flags[slot] |= 2
            if kinds[m] == CODE_COMPACT or kinds[m] == CODE_ABSOLUTE:
                flags[slot] |= 1
            if kinds[m] == CODE_ABSOLUTE:
                flags[slot] |= 4
        peaks[slot] = best
        for i in range(r1 - r0):
            for j in range(c1 - c0):
                near = False
                for di in range(max(i - 1, 0), min(i + 2, r1 - r0)):
                    for dj in range(max(j - 1, 0), min(j + 2, c1 - c0)):
                        near |= mask[di, dj]
                if near:
                    slot_of[n] = slot
                    ys[n] = r0 + i
                    xs[n] = c0 + j
                    is_member[n] = mask[i, j]
                    n += 1
    return slot_of[:n], ys[:n], xs[:n], is_member[:n], peaks, flags


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
    order = np.asarray(
        sorted(range(n_blobs), key=lambda b: -excess[best[b]])[:max_blobs], dtype=np.int64
    )
    # members of every blob at once (a stable sort keeps row-major order inside a blob)
    by_label = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[by_label], np.arange(n_blobs + 1))
    slot_of, ys, xs, is_member, peaks, flags = _footprints(
        frame, result.rows, result.cols, result.kinds, by_label, starts, order,
        float(saturation_k),
    )  # fmt: skip
    values = np.asarray(frame[ys, xs], dtype=np.float64)
    usable = np.isfinite(values)
    if valid_mask is not None:
        usable &= is_member | valid_mask[ys, xs].astype(bool)
    bg = np.asarray(result.bg_mean_k[peaks], dtype=np.float64)
    for lost in np.flatnonzero(~np.isfinite(bg)):
        # no background from the kernel (an absolute pixel): the rim's median, else the
        # coolest pixel of the blob's box
        rim = values[(slot_of == lost) & usable & ~is_member]
        if rim.size:
            bg[lost] = float(np.median(rim))
        else:
            b = order[lost]
            members = by_label[starts[b] : starts[b + 1]]
            r, c = result.rows[members], result.cols[members]
            box = frame[max(int(r.min()) - 1, 0) : int(r.max()) + 2,
                        max(int(c.min()) - 1, 0) : int(c.max()) + 2]  # fmt: skip
            bg[lost] = float(np.nanmin(box))
    l_bg = radiance(bg)
    l_fire = float(radiance(np.asarray([FIRE_REFERENCE_K]))[0])
    used = slot_of[usable]
    weights = np.clip(radiance(values[usable]) - l_bg[used], 0.0, None)
    totals = np.bincount(used, weights, minlength=order.size)
    sum_x = np.bincount(used, weights * xs[usable], minlength=order.size)
    sum_y = np.bincount(used, weights * ys[usable], minlength=order.size)
    blobs = []
    for slot, b in enumerate(order.tolist()):
        k_peak = int(peaks[slot])
        peak_y, peak_x = int(result.rows[k_peak]), int(result.cols[k_peak])
        peak_k = float(frame[peak_y, peak_x])
        bg_k = float(bg[slot])
        std_k = float(result.bg_std_k[k_peak])
        total = float(totals[slot])
        if total > 0.0:
            x, y = float(sum_x[slot] / total), float(sum_y[slot] / total)
        else:
            x, y = float(peak_x), float(peak_y)
        l_bg_slot = float(l_bg[slot])
        a_eq = total * ifov_rad**2 / (l_fire - l_bg_slot) if l_fire > l_bg_slot else math.nan
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
                area_px=int(starts[b + 1] - starts[b]),
                excess_radiance=total,
                a_eq_m2_per_range2=a_eq,
                compact=bool(flags[slot] & 1),
                saturated=bool(flags[slot] & 2),
                absolute=bool(flags[slot] & 4),
            )
        )
    return blobs
