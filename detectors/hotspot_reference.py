"""Reference implementation of the contextual hotspot test with OpenCV and numpy.

The same algorithm as :mod:`detectors.hotspot`, written the textbook way: every
statistic for every pixel from summed-area tables (``cv2.integral``), thresholds as
whole-frame array expressions, candidates grouped by ``cv2.connectedComponents``. It
exists to check the numba kernel (same candidates, bit for bit) and to time it
against a good conventional pipeline.
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
    top = lut.size - 1
    x = np.clip(np.nan_to_num(mean, nan=0.0), 0.0, float(top))
    k = np.minimum(np.floor(x).astype(np.int64), top - 1)
    f = x - k
    l_lo = lut[k].astype(np.float64)
    l_hi = lut[k + 1].astype(np.float64)
    l_bg = np.where(
        x >= top, float(lut[top]), np.where(x <= 0.0, float(lut[0]), l_lo + f * (l_hi - l_lo))
    )
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


def label_candidates(codes: np.ndarray) -> tuple[int, np.ndarray]:
    """8-connected components of the candidate map: (number of blobs, label image)."""
    count, labels = cv2.connectedComponents((codes != CODE_NONE).astype(np.uint8), connectivity=8)
    return count - 1, labels
