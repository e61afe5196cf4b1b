"""Reference implementation of the contextual hotspot test with OpenCV and numpy.

The same algorithm as :mod:`detectors.hotspot`, written the textbook way: every
statistic for every pixel from summed-area tables (``cv2.integral``), thresholds as
whole-frame array expressions, candidates grouped by ``cv2.connectedComponents``. It
exists to check the numba kernel (same candidates, bit for bit) and to time it
against a good conventional pipeline. :func:`detect_hotspots_prefiltered` is that
pipeline written for speed: an exact prefilter, then statistics only at its survivors.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from detectors.hotspot import (
    CODE_ABSOLUTE,
    CODE_COMPACT,
    CODE_EXTENDED,
    CODE_NONE,
    HotspotParams,
    HotspotResult,
    quantised_thresholds,
)


def _states(frame: np.ndarray, valid_mask: np.ndarray | None, params: HotspotParams) -> np.ndarray:
    """0 = unusable (masked, NaN, dead), 1 = valid, 2 = saturated, per pixel."""
    t = frame.astype(np.float64)
    with np.errstate(invalid="ignore"):
        alive = t >= params.dead_below_k
        sat = alive & (t >= params.saturation_k)
    if valid_mask is not None:
        alive &= valid_mask.astype(bool)
        sat &= valid_mask.astype(bool)
    state = np.zeros(frame.shape, dtype=np.uint8)
    state[alive] = 1
    state[sat] = 2
    return state


def _quantise(frame: np.ndarray, state: np.ndarray, params: HotspotParams) -> np.ndarray:
    t = frame.astype(np.float64)
    with np.errstate(invalid="ignore"):
        v = np.floor(t * params.scale_per_k + 0.5)
    v = np.where(state == 1, v, 0.0)
    q = np.clip(v, 0, params.q_max).astype(np.int64)
    q[state == 2] = params.q_max
    return q


class _BoxSums:
    """Box sums of any odd size for every pixel from one zero-padded integral image."""

    def __init__(self, values: np.ndarray, pad: int) -> None:
        padded = cv2.copyMakeBorder(
            values.astype(np.float64), pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0.0
        )
        self._sat = cv2.integral(padded, sdepth=cv2.CV_64F)
        self._pad = pad
        self._shape = values.shape

    def box(self, r: int) -> np.ndarray:
        h, w = self._shape
        p = self._pad
        s = self._sat
        top, bot = p - r, p + r + 1
        return (
            s[bot : bot + h, bot : bot + w]
            - s[top : top + h, bot : bot + w]
            - (s[bot : bot + h, top : top + w] - s[top : top + h, top : top + w])
        )


def _annulus_stats(
    q: np.ndarray, use: np.ndarray, params: HotspotParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ok, sum, sum of squares, count) of the first annulus with enough valid pixels."""
    pad = max(params.window_radii_px)
    qf = np.where(use, q, 0).astype(np.float64)
    # Sums stay exact: integer values, totals far below 2**53.
    sums = _BoxSums(qf, pad)
    sqs = _BoxSums(qf * qf, pad)
    cnts = _BoxSums(use.astype(np.float64), pad)
    g = params.guard_radius_px
    g_s, g_ss, g_n = sums.box(g), sqs.box(g), cnts.box(g)
    shape = q.shape
    ok = np.zeros(shape, dtype=bool)
    s = np.zeros(shape)
    ss = np.zeros(shape)
    n = np.zeros(shape)
    for r, need in zip(params.window_radii_px, params.required_counts(), strict=True):
        n_r = cnts.box(r) - g_n
        take = ~ok & (n_r >= need)
        s = np.where(take, sums.box(r) - g_s, s)
        ss = np.where(take, sqs.box(r) - g_ss, ss)
        n = np.where(take, n_r, n)
        ok |= take
    return ok, s, ss, n


def _mean_var(
    ok: np.ndarray, s: np.ndarray, ss: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    safe_n = np.where(ok, n, 1.0)
    mean = np.where(ok, s / safe_n, np.nan)
    var = np.where(ok, ss / safe_n - mean * mean, np.nan)
    return mean, var


def _background_radiance(lut: np.ndarray, mean_q: np.ndarray) -> np.ndarray:
    """Table radiance at the (fractional) background mean, linearly interpolated."""
    top = lut.size - 1
    x = np.clip(np.nan_to_num(mean_q, nan=0.0), 0.0, float(top))
    k = np.minimum(np.floor(x).astype(np.int64), top - 1)
    f = x - k
    l_lo = lut[k].astype(np.float64)
    l_hi = lut[k + 1].astype(np.float64)
    return np.where(
        x >= top, float(lut[top]), np.where(x <= 0.0, float(lut[0]), l_lo + f * (l_hi - l_lo))
    )


def reference_codes(
    frame: np.ndarray,
    params: HotspotParams,
    lut: np.ndarray,
    valid_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel (codes, mean_q, var_q, count) of the contextual test, whole frame at once."""
    state = _states(frame, valid_mask, params)
    q = _quantise(frame, state, params)
    abs_q, dt_min_q, bgfire_dq = quantised_thresholds(params)
    valid = state == 1

    ok1, s1, ss1, n1 = _annulus_stats(q, valid, params)
    mean1, _ = _mean_var(ok1, s1, ss1, n1)
    with np.errstate(invalid="ignore"):
        hot = valid & ok1 & (q - mean1 > bgfire_dq)

    ok, s, ss, n = _annulus_stats(q, valid & ~hot, params)
    mean, var = _mean_var(ok, s, ss, n)
    std = np.sqrt(np.where(var > 0.0, var, 0.0))
    with np.errstate(invalid="ignore"):
        c1 = (state != 0) & ok & (q - mean > np.maximum(params.k_sigma * std, dt_min_q))

    # C2 on the table radiance of usable pixels (saturated ones read as the top entry).
    usable = state != 0
    lq = np.where(usable, lut[q], 0).astype(np.float64)
    l_sums = _BoxSums(lq, 2)
    u_sums = _BoxSums(usable.astype(np.float64), 2)
    s3, n3 = l_sums.box(1), u_sums.box(1)
    s5, n5 = l_sums.box(2), u_sums.box(2)
    l_bg = _background_radiance(lut, mean)
    c2 = s3 - n3 * l_bg >= params.compact_ratio * (s5 - n5 * l_bg)

    codes = np.full(frame.shape, CODE_NONE, dtype=np.uint8)
    codes[c1 & c2] = CODE_COMPACT
    codes[c1 & ~c2] = CODE_EXTENDED
    codes[(state == 2) | ((state == 1) & (q > abs_q))] = CODE_ABSOLUTE
    return codes, mean, var, n


def detect_hotspots_reference(
    frame: np.ndarray,
    params: HotspotParams,
    lut: np.ndarray,
    valid_mask: np.ndarray | None = None,
) -> HotspotResult:
    """Same output as :func:`detectors.hotspot.detect_hotspots`, computed with OpenCV."""
    codes, mean, var, n = reference_codes(frame, params, lut, valid_mask)
    rows, cols = np.nonzero(codes)
    mean_c = mean[rows, cols]
    var_c = var[rows, cols]
    std_c = np.sqrt(np.maximum(var_c, 0.0))
    std_c[np.isnan(var_c)] = math.nan
    return HotspotResult(
        codes=codes,
        rows=rows.astype(np.int32),
        cols=cols.astype(np.int32),
        kinds=codes[rows, cols],
        bg_mean_k=mean_c / params.scale_per_k,
        bg_std_k=std_c / params.scale_per_k,
        bg_count=n[rows, cols].astype(np.int64),
    )


class _PointTables:
    """Annulus sums at chosen pixels from integral images of the whole frame, built once.

    Box corners are clipped to the frame, which reads the frame as zero-padded.
    """

    def __init__(self, q: np.ndarray, use: np.ndarray, params: HotspotParams) -> None:
        values = np.where(use, q, 0)
        # Sums stay exact: integer values, totals far below 2**53. OpenCV sums uint16
        # faster than float64, and the usual 0.01 K scale fits it.
        exact = np.uint16 if params.q_max <= np.iinfo(np.uint16).max else np.float64
        self.sum = cv2.integral(values.astype(exact), sdepth=cv2.CV_64F)
        squares = values.astype(np.float64)
        np.multiply(squares, squares, out=squares)
        self.sq = cv2.integral(squares, sdepth=cv2.CV_64F)
        self.count = cv2.integral(use.astype(np.uint8), sdepth=cv2.CV_32S)
        self._h, self._w = q.shape

    def boxes(
        self, rows: np.ndarray, cols: np.ndarray, r: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i0, i1 = np.clip(rows - r, 0, self._h), np.clip(rows + r + 1, 0, self._h)
        j0, j1 = np.clip(cols - r, 0, self._w), np.clip(cols + r + 1, 0, self._w)
        return tuple(
            (t[i1, j1] - t[i0, j1] - (t[i1, j0] - t[i0, j0])).astype(np.float64)
            for t in (self.sum, self.sq, self.count)
        )


def _point_stats(
    tables: _PointTables,
    rows: np.ndarray,
    cols: np.ndarray,
    params: HotspotParams,
    excluded: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ok, sum, sum of squares, count) of the first annulus with enough usable pixels, at
    the given pixels only. ``excluded`` = (rows, cols, q) of a few pixels taken out of the
    background after the tables were built (the first pass's hot pixels): their share is
    subtracted per pixel instead of building the tables again."""
    g = params.guard_radius_px
    if excluded is not None:
        drows, dcols, dq = excluded
        ring = np.maximum(
            np.abs(rows[:, None] - drows[None, :]), np.abs(cols[:, None] - dcols[None, :])
        )
        dq = dq.astype(np.float64)[None, :]

    def annulus(r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s, ss, n = (a - b for a, b in zip(tables.boxes(rows, cols, r), guard, strict=True))
        if excluded is not None:
            inside = (ring <= r) & (ring > g)
            s = s - (inside * dq).sum(axis=1)
            ss = ss - (inside * dq * dq).sum(axis=1)
            n = n - inside.sum(axis=1)
        return s, ss, n

    guard = tables.boxes(rows, cols, g)
    ok = np.zeros(rows.size, dtype=bool)
    s = np.zeros(rows.size)
    ss = np.zeros(rows.size)
    n = np.zeros(rows.size)
    for r, need in zip(params.window_radii_px, params.required_counts(), strict=True):
        s_r, ss_r, n_r = annulus(r)
        take = ~ok & (n_r >= need)
        s = np.where(take, s_r, s)
        ss = np.where(take, ss_r, ss)
        n = np.where(take, n_r, n)
        ok |= take
    return ok, s, ss, n


def _compact_at(
    q: np.ndarray,
    state: np.ndarray,
    lut: np.ndarray,
    mean: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    params: HotspotParams,
) -> np.ndarray:
    """C2 (the excess is concentrated in the 3×3 core of the 5×5 box) at the given pixels.

    The 5×5 boxes are gathered from the frame itself; positions outside it are unusable.
    """
    h, w = q.shape
    d = np.arange(-2, 3)
    ii = rows[:, None, None] + d[None, :, None]
    jj = cols[:, None, None] + d[None, None, :]
    inside = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
    ii, jj = np.clip(ii, 0, h - 1), np.clip(jj, 0, w - 1)
    usable = inside & (state[ii, jj] != 0)
    lq = np.where(usable, lut[q[ii, jj]], 0).astype(np.float64)
    s5 = lq.sum(axis=(1, 2))
    s3 = lq[:, 1:4, 1:4].sum(axis=(1, 2))
    n5 = usable.sum(axis=(1, 2)).astype(np.float64)
    n3 = usable[:, 1:4, 1:4].sum(axis=(1, 2)).astype(np.float64)
    l_bg = _background_radiance(lut, mean)
    return np.asarray(s3 - n3 * l_bg >= params.compact_ratio * (s5 - n5 * l_bg))


# Above this many (pixel, hot pixel) pairs the second pass builds its tables again.
_MAX_SPARSE_PAIRS = 100_000


def detect_hotspots_prefiltered(
    frame: np.ndarray,
    params: HotspotParams,
    lut: np.ndarray,
    valid_mask: np.ndarray | None = None,
) -> HotspotResult:
    """Same output as :func:`detectors.hotspot.detect_hotspots`, the way a careful OpenCV
    pipeline computes it: an exact prefilter, then statistics only where it lets a pixel by.

    Every annulus lies inside the pixel's (2·r_max+1)² box, so its mean is at least the
    box's smallest valid value. A pixel that does not exceed that minimum by the smaller of
    the hot-pixel and C1 margins passes neither test, so the prefilter drops no candidate.
    """
    state = _states(frame, valid_mask, params)
    q = _quantise(frame, state, params)
    abs_q, dt_min_q, bgfire_dq = quantised_thresholds(params)
    valid = state == 1
    box = 2 * max(params.window_radii_px) + 1
    # q is an integer far below 2**24, exact in float32; erode's default border is +inf.
    q_valid = np.where(valid, q, np.inf).astype(np.float32)
    local_min = cv2.erode(q_valid, cv2.getStructuringElement(cv2.MORPH_RECT, (box, box)))
    survives = valid & (q - local_min > min(dt_min_q, bgfire_dq))
    absolute = (state == 2) | (valid & (q > abs_q))
    rows, cols = np.nonzero(survives | absolute)
    q_at = q[rows, cols].astype(np.float64)
    is_survivor = survives[rows, cols]

    # Pass 1: hot pixels (an excess over the plain annulus mean) leave the background.
    tables = _PointTables(q, valid, params)
    sr, sc = rows[is_survivor], cols[is_survivor]
    ok1, s1, ss1, n1 = _point_stats(tables, sr, sc, params)
    mean1, _ = _mean_var(ok1, s1, ss1, n1)
    with np.errstate(invalid="ignore"):
        hot = ok1 & (q_at[is_survivor] - mean1 > bgfire_dq)
    hr, hc = sr[hot], sc[hot]
    if hr.size == 0:
        excluded = None
    elif hr.size * rows.size <= _MAX_SPARSE_PAIRS:
        excluded = (hr, hc, q[hr, hc])
    else:  # many hot pixels: building the tables again is cheaper than the pairs
        use = valid.copy()
        use[hr, hc] = False
        tables, excluded = _PointTables(q, use, params), None
    ok, s, ss, n = _point_stats(tables, rows, cols, params, excluded)
    mean, var = _mean_var(ok, s, ss, n)
    std = np.sqrt(np.where(var > 0.0, var, 0.0))
    with np.errstate(invalid="ignore"):
        c1 = is_survivor & ok & (q_at - mean > np.maximum(params.k_sigma * std, dt_min_q))
    code_at = np.zeros(rows.size, dtype=np.uint8)
    c2 = _compact_at(q, state, lut, mean[c1], rows[c1], cols[c1], params)
    code_at[c1] = np.where(c2, CODE_COMPACT, CODE_EXTENDED)
    code_at[absolute[rows, cols]] = CODE_ABSOLUTE

    keep = code_at != CODE_NONE
    codes = np.full(frame.shape, CODE_NONE, dtype=np.uint8)
    codes[rows[keep], cols[keep]] = code_at[keep]
    var_c = var[keep]
    std_c = np.sqrt(np.maximum(var_c, 0.0))
    std_c[np.isnan(var_c)] = math.nan
    return HotspotResult(
        codes=codes,
        rows=rows[keep].astype(np.int32),
        cols=cols[keep].astype(np.int32),
        kinds=code_at[keep],
        bg_mean_k=mean[keep] / params.scale_per_k,
        bg_std_k=std_c / params.scale_per_k,
        bg_count=n[keep].astype(np.int64),
    )


def label_candidates(codes: np.ndarray) -> tuple[int, np.ndarray]:
    """8-connected components of the candidate map: (number of blobs, label image)."""
    count, labels = cv2.connectedComponents((codes != CODE_NONE).astype(np.uint8), connectivity=8)
    return count - 1, labels
