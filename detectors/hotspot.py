"""Contextual single-band hotspot kernel (numba): MODIS/VIIRS-style tests adapted to LWIR.

A pixel is a candidate when it stands out against the statistics of its own
neighbourhood (an annulus 7×7 … 21×21 minus a 5×5 guard, grown until enough valid
pixels, first-pass hot pixels excluded), or when it is very hot or saturated (the
absolute branch). A compactness test (ΔL over 3×3 against ΔL over 5×5) separates a
sub-pixel hot spot from the edge of a warm extended surface.

The algorithm is defined on quantised values (``round(T·scale)``, 0.01 K for Kelvin
frames, 1 count for 8-bit AGC frames) and on an integer radiance table, so every sum
is exact and the OpenCV reference (:mod:`detectors.hotspot_reference`) reproduces the
kernel's candidates bit for bit. Speed comes from a prefilter that is a *necessary*
condition: the background mean of a pixel is never below the minimum valid value of
the 8×8 blocks that cover its largest window, so only pixels hotter than that minimum
plus the smallest threshold are ever given statistics. Those come from summed-area
tables of the quantised values (count, sum, sum of squares; integers, so exact) built
over each run of surviving blocks with a margin of the largest window: any annulus is
then a few table look-ups, however many pixels survive (a warm road across the view
puts thousands next to cold ground). Runs near a first-pass hot pixel get a second
table with the hot pixels left out. The kernel is serial: the daemon gives numba one
thread, and a ``prange`` only adds its launch cost there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

CODE_NONE = 0
CODE_COMPACT = 1  # C1 and C2: contextual, sub-pixel-like
CODE_EXTENDED = 2  # C1 without C2: edge of a warm extended surface
CODE_ABSOLUTE = 3  # A1: very hot or saturated

# Prefilter block edge in pixels: 8 keeps the covering neighbourhood (5×5 blocks =
# 40×40 px) close to the 21×21 window while the block tables stay tiny.
_BLOCK_PX = 8

# Radiance table resolution: 1e-4 W m⁻² sr⁻¹ per count keeps 5×5 sums of the hottest
# representable pixel (~7e6 counts each) far inside the exact range of float64.
RADIANCE_LUT_SCALE = 1.0e4


@dataclass(frozen=True)
class HotspotParams:
    """One resolved parameter set of the contextual test (day or night already chosen).

    Temperatures are in Kelvin for radiometric frames, in counts for relative (AGC) mode.
    """

    k_sigma: float = 4.0  # C1: excess must exceed k_sigma × background standard deviation
    dt_min_k: float = 10.0  # C1: ... and at least this many kelvin (day 10, night 6)
    abs_k: float = 360.0  # A1: brighter than this is a candidate whatever its context
    bgfire_dk: float = 10.0  # first pass: hotter than mean + this is kept out of backgrounds
    compact_ratio: float = 0.8  # C2: ΔL(3×3) ≥ compact_ratio × ΔL(5×5)
    window_radii_px: tuple[int, ...] = (3, 5, 7, 10)  # 7×7, 11×11, 15×15, 21×21
    guard_radius_px: int = 2  # 5×5 guard around the pixel
    min_valid_count: int = 8
    min_valid_fraction: float = 0.25
    dead_below_k: float = 150.0  # a bolometer reading below this is a dead pixel
    saturation_k: float = 655.0  # at or above: saturated (the 16-bit recording clips at 655.35)
    scale_per_k: float = 100.0  # quantisation: counts per kelvin (0.01 K steps)

    def __post_init__(self) -> None:
        radii = self.window_radii_px
        if not radii or any(b <= a for a, b in zip(radii, radii[1:], strict=False)):
            raise ValueError(f"window_radii_px must be increasing, got {radii}")
        if radii[0] <= self.guard_radius_px:
            raise ValueError(
                f"window_radii_px[0]={radii[0]} must exceed guard_radius_px={self.guard_radius_px}"
            )
        if not 0.0 < self.compact_ratio <= 1.0:
            raise ValueError(f"compact_ratio must be in (0, 1], got {self.compact_ratio}")
        if self.scale_per_k <= 0:
            raise ValueError(f"scale_per_k must be > 0, got {self.scale_per_k}")

    @property
    def q_max(self) -> int:
        """Largest quantised value; saturated pixels read as this."""
        if math.isfinite(self.saturation_k):
            return int(math.floor(self.saturation_k * self.scale_per_k + 0.5))
        return 65535

    def required_counts(self) -> np.ndarray:
        """Valid pixels each annulus needs before its statistics are trusted."""
        g = 2 * self.guard_radius_px + 1
        need = []
        for r in self.window_radii_px:
            area = (2 * r + 1) ** 2 - g * g
            need.append(max(self.min_valid_count, int(math.ceil(self.min_valid_fraction * area))))
        return np.asarray(need, dtype=np.int64)


def relative_params(dt_min_counts: float = 12.0, k_sigma: float = 4.0) -> HotspotParams:
    """Parameters for non-radiometric 8-bit AGC frames: contrast only, no absolute branch.

    AGC rescales every frame, so a count says nothing absolute: 255 is merely the
    brightest thing in view. Saturation and the absolute branch are therefore off.
    """
    return HotspotParams(
        k_sigma=k_sigma,
        dt_min_k=dt_min_counts,
        abs_k=math.inf,
        bgfire_dk=dt_min_counts,
        dead_below_k=-math.inf,
        saturation_k=math.inf,
        scale_per_k=1.0,
    )


def radiance_lut(
    band_radiance: Callable[[np.ndarray], np.ndarray], params: HotspotParams
) -> np.ndarray:
    """Integer radiance table indexed by quantised value: round(L(q/scale) × 1e4).

    ``band_radiance`` maps Kelvin to 8–14 µm band radiance (W m⁻² sr⁻¹).
    """
    kelvin = np.arange(params.q_max + 1, dtype=np.float64) / params.scale_per_k
    radiance = np.asarray(band_radiance(kelvin), dtype=np.float64)
    return np.round(radiance * RADIANCE_LUT_SCALE).astype(np.int64)


def identity_lut(params: HotspotParams) -> np.ndarray:
    """Table for relative mode: AGC counts are taken as proportional to radiance."""
    return np.arange(params.q_max + 1, dtype=np.int64) * int(RADIANCE_LUT_SCALE)


@dataclass(frozen=True)
class HotspotResult:
    """Candidate pixels of one frame (row-major order) and the code map."""

    codes: np.ndarray  # (H, W) uint8, CODE_*
    rows: np.ndarray  # int32
    cols: np.ndarray  # int32
    kinds: np.ndarray  # uint8 CODE_* per candidate
    bg_mean_k: np.ndarray  # float64, NaN when the window never had enough valid pixels
    bg_std_k: np.ndarray  # float64
    bg_count: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.rows.size)


# --------------------------------------------------------------------------- kernel


@njit(cache=True)
def _state(t, m, dead_k, sat_k):
    """0 = unusable (masked, NaN, dead), 1 = valid, 2 = saturated."""
    if m == 0:
        return 0
    if not t >= dead_k:  # NaN fails every comparison
        return 0
    if t >= sat_k:
        return 2
    return 1


@njit(cache=True)
def _quant(t, scale, q_max):
    v = math.floor(np.float64(t) * scale + 0.5)
    if v < 0.0:
        return 0
    if v > q_max:
        return q_max
    return int(v)


@njit(cache=True)
def _fill_table(
    table,
    qrow,
    nrow,
    kelvin,
    mask,
    has_mask,
    hot,
    use_hot,
    i0,
    i1,
    j0,
    j1,
    dead_k,
    sat_k,
    scale,
    q_max,
):
    """Summed-area table of background pixels over rows i0..i1-1 and columns j0..j1-1.

    table[a, b] holds (count, sum, sum of squares) of the quantised values of the valid
    pixels (hot ones left out when ``use_hot``) in the a rows and b columns before
    (i0 + a, j0 + b); row 0 and column 0 are zero. Integer sums, so every box is exact.
    ``qrow`` and ``nrow`` are int32 scratch rows of at least j1 - j0 entries.
    """
    nc = j1 - j0
    qm = np.float64(q_max)
    table[0, : nc + 1, :] = 0
    for a in range(i1 - i0):
        ii = i0 + a
        # One row's quantised values and validity, branch-free over row slices so that
        # it vectorises. An unusable pixel is zeroed before quantising (NaN never
        # reaches the integer conversion); the clipping matches _quant.
        krow = kelvin[ii, j0:j1]
        for b in range(nc):
            t = np.float64(krow[b])
            ok = (t >= dead_k) & (t < sat_k)
            v = np.floor((t if ok else 0.0) * scale + 0.5)
            v = v if v > 0.0 else 0.0
            v = v if v < qm else qm
            qrow[b] = np.int32(v)
            nrow[b] = np.int32(ok)
        if has_mask:
            mrow = mask[ii, j0:j1]
            for b in range(nc):
                keep = mrow[b] != 0
                qrow[b] = qrow[b] if keep else 0
                nrow[b] = nrow[b] if keep else 0
        if use_hot:
            hrow = hot[ii, j0:j1]
            for b in range(nc):
                keep = hrow[b] == 0
                qrow[b] = qrow[b] if keep else 0
                nrow[b] = nrow[b] if keep else 0
        table[a + 1, 0, 0] = 0
        table[a + 1, 0, 1] = 0
        table[a + 1, 0, 2] = 0
        rn = 0
        rs = np.int64(0)
        rss = np.int64(0)
        for b in range(nc):
            q = np.int64(qrow[b])
            rn += nrow[b]
            rs += q
            rss += q * q
            table[a + 1, b + 1, 0] = table[a, b + 1, 0] + rn
            table[a + 1, b + 1, 1] = table[a, b + 1, 1] + rs
            table[a + 1, b + 1, 2] = table[a, b + 1, 2] + rss


@njit(cache=True)
def _background(table, a, b, na, nb, radii, guard, need):
    """(ok, sum, sum of squares, count) over the first annulus with enough valid pixels.

    (a, b) is the pixel in table coordinates and na × nb the table's extent in pixels.
    The table reaches radii[-1] beyond the pixel wherever the frame does, so clipping a
    window to the table is clipping it to the frame.
    """
    ga0 = max(a - guard, 0)
    ga1 = min(a + guard + 1, na)
    gb0 = max(b - guard, 0)
    gb1 = min(b + guard + 1, nb)
    g_n = table[ga1, gb1, 0] - table[ga0, gb1, 0] - table[ga1, gb0, 0] + table[ga0, gb0, 0]
    n = 0
    for k in range(radii.size):
        r = radii[k]
        a0 = max(a - r, 0)
        a1 = min(a + r + 1, na)
        b0 = max(b - r, 0)
        b1 = min(b + r + 1, nb)
        n = table[a1, b1, 0] - table[a0, b1, 0] - table[a1, b0, 0] + table[a0, b0, 0] - g_n
        if n >= need[k]:
            s = (
                table[a1, b1, 1]
                - table[a0, b1, 1]
                - table[a1, b0, 1]
                + table[a0, b0, 1]
                - (
                    table[ga1, gb1, 1]
                    - table[ga0, gb1, 1]
                    - table[ga1, gb0, 1]
                    + table[ga0, gb0, 1]
                )
            )
            ss = (
                table[a1, b1, 2]
                - table[a0, b1, 2]
                - table[a1, b0, 2]
                + table[a0, b0, 2]
                - (
                    table[ga1, gb1, 2]
                    - table[ga0, gb1, 2]
                    - table[ga1, gb0, 2]
                    + table[ga0, gb0, 2]
                )
            )
            return True, s, ss, n
    return False, np.int64(0), np.int64(0), n


@njit(cache=True)
def _box_radiance(kelvin, mask, has_mask, lut, i, j, r, dead_k, sat_k, scale, q_max):
    """Sum of table radiance and count of usable (valid or saturated) pixels in a box."""
    h, w = kelvin.shape
    s = 0
    n = 0
    for ii in range(max(i - r, 0), min(i + r + 1, h)):
        for jj in range(max(j - r, 0), min(j + r + 1, w)):
            m = mask[ii, jj] if has_mask else 1
            st = _state(kelvin[ii, jj], m, dead_k, sat_k)
            if st == 0:
                continue
            q = q_max if st == 2 else _quant(kelvin[ii, jj], scale, q_max)
            s += lut[q]
            n += 1
    return s, n


@njit(cache=True)
def _lut_interp(lut, x):
    """Table radiance at a fractional quantised value (linear between entries)."""
    top = lut.size - 1
    if x <= 0.0:
        return np.float64(lut[0])
    if x >= top:
        return np.float64(lut[top])
    k = int(math.floor(x))
    f = x - k
    return lut[k] + f * (lut[k + 1] - lut[k])


@njit(cache=True)
def contextual_kernel(
    kelvin,
    mask,
    has_mask,
    lut,
    scale,
    q_max,
    dead_k,
    sat_k,
    abs_q,
    dt_min_q,
    k_sigma,
    bgfire_dq,
    compact_ratio,
    radii,
    guard,
    need,
):
    """Candidate code map and per-candidate background statistics (quantised units).

    Returns (codes, rows, cols, kinds, mean_q, var_q, count).
    """
    h, w = kelvin.shape
    bs = _BLOCK_PX
    nby = (h + bs - 1) // bs
    nbx = (w + bs - 1) // bs
    r_max = radii[radii.size - 1]
    reach = max((r_max + bs - 1) // bs, (bs - 1 + r_max) // bs)
    big = np.int64(1) << 40
    d_pre = min(dt_min_q, bgfire_dq)

    # Pass A: per block, min and max of valid values and whether anything saturated.
    # Column-wise running extremes over the block's rows keep the inner loop branch-free
    # (it vectorises); the per-block reduction then touches one value in eight.
    bmin = np.empty((nby, nbx), dtype=np.int64)
    bmax = np.empty((nby, nbx), dtype=np.int64)
    bsat = np.zeros((nby, nbx), dtype=np.uint8)
    dead32 = np.float32(dead_k)
    sat32 = np.float32(sat_k)
    inf32 = np.float32(np.inf)
    ninf32 = np.float32(-np.inf)
    lo = np.empty(w, dtype=np.float32)
    hi = np.empty(w, dtype=np.float32)
    top = np.empty(w, dtype=np.float32)
    for by in range(nby):
        lo[:] = inf32
        hi[:] = ninf32
        top[:] = ninf32
        for i in range(by * bs, min(by * bs + bs, h)):
            row = kelvin[i]
            if has_mask:
                mrow = mask[i]
                for j in range(w):
                    tv = np.float32(row[j])
                    used = mrow[j] != 0
                    ok = (tv >= dead32) & (tv < sat32) & used
                    lo_v = tv if ok else inf32
                    hi_v = tv if ok else ninf32
                    cv = tv if used else ninf32
                    lo[j] = lo_v if lo_v < lo[j] else lo[j]
                    hi[j] = hi_v if hi_v > hi[j] else hi[j]
                    top[j] = cv if cv > top[j] else top[j]
            else:
                for j in range(w):
                    tv = np.float32(row[j])
                    ok = (tv >= dead32) & (tv < sat32)
                    lo_v = tv if ok else inf32
                    hi_v = tv if ok else ninf32
                    lo[j] = lo_v if lo_v < lo[j] else lo[j]
                    hi[j] = hi_v if hi_v > hi[j] else hi[j]
                    top[j] = tv if tv > top[j] else top[j]
        for bx in range(nbx):
            lmin = inf32
            lmax = ninf32
            tmax = ninf32
            for j in range(bx * bs, min(bx * bs + bs, w)):
                lmin = lo[j] if lo[j] < lmin else lmin
                lmax = hi[j] if hi[j] > lmax else lmax
                tmax = top[j] if top[j] > tmax else tmax
            # quantisation is monotonic, so quantising the extremes gives the extreme quanta
            if lmin <= lmax:
                bmin[by, bx] = _quant(lmin, scale, q_max)
                bmax[by, bx] = _quant(lmax, scale, q_max)
            else:
                bmin[by, bx] = big
                bmax[by, bx] = -big
            bsat[by, bx] = 1 if tmax >= sat32 else 0

    # Minimum over the blocks covering any pixel's largest window (separable).
    tmp = np.empty((nby, nbx), dtype=np.int64)
    for by in range(nby):
        for bx in range(nbx):
            v = big
            for b in range(max(bx - reach, 0), min(bx + reach + 1, nbx)):
                v = min(v, bmin[by, b])
            tmp[by, bx] = v
    nmin = np.empty((nby, nbx), dtype=np.int64)
    for by in range(nby):
        for bx in range(nbx):
            v = big
            for b in range(max(by - reach, 0), min(by + reach + 1, nby)):
                v = min(v, tmp[b, bx])
            nmin[by, bx] = v

    # Blocks that may hold a pixel passing the prefilter, grouped per block row into runs;
    # runs whose tables would overlap (gap ≤ 2·r_max) share one table.
    floor_blk = nmin + d_pre
    cand = np.zeros((nby, nbx), dtype=np.uint8)
    run_by = np.empty(nby * nbx, dtype=np.int64)
    run_x0 = np.empty(nby * nbx, dtype=np.int64)
    run_x1 = np.empty(nby * nbx, dtype=np.int64)
    n_runs = 0
    n_cap = 0
    for by in range(nby):
        last = -1
        for bx in range(nbx):
            b_max = bmax[by, bx]
            if bsat[by, bx] == 0 and b_max <= floor_blk[by, bx] and b_max <= abs_q:
                continue
            cand[by, bx] = 1
            n_cap += bs * bs
            if n_runs > 0 and run_by[n_runs - 1] == by and (bx - last - 1) * bs <= 2 * r_max:
                run_x1[n_runs - 1] = bx + 1
            else:
                run_by[n_runs] = by
                run_x0[n_runs] = bx
                run_x1[n_runs] = bx + 1
                n_runs += 1
            last = bx

    # Pass B: first-pass statistics of every survivor from its run's summed-area table
    # (O(1) per pixel and window); the hot ones are marked.
    surv_i = np.empty(n_cap, dtype=np.int32)
    surv_j = np.empty(n_cap, dtype=np.int32)
    surv_ok = np.empty(n_cap, dtype=np.uint8)
    surv_s = np.empty(n_cap, dtype=np.int64)
    surv_ss = np.empty(n_cap, dtype=np.int64)
    surv_n = np.empty(n_cap, dtype=np.int64)
    run_k = np.zeros(n_runs + 1, dtype=np.int64)
    hot = np.zeros((h, w), dtype=np.uint8)
    hot_blk = np.zeros((nby, nbx), dtype=np.uint8)
    table = np.empty((min(bs + 2 * r_max, h) + 1, w + 1, 3), dtype=np.int64)
    qrow = np.empty(w, dtype=np.int32)
    nrow = np.empty(w, dtype=np.int32)
    k = 0
    for rn in range(n_runs):
        by = run_by[rn]
        i0 = max(by * bs - r_max, 0)
        i1 = min(by * bs + bs + r_max, h)
        j0 = max(run_x0[rn] * bs - r_max, 0)
        j1 = min(run_x1[rn] * bs + r_max, w)
        _fill_table(
            table,
            qrow,
            nrow,
            kelvin,
            mask,
            has_mask,
            hot,
            False,
            i0,
            i1,
            j0,
            j1,
            dead_k,
            sat_k,
            scale,
            q_max,
        )
        run_k[rn] = k
        for bx in range(run_x0[rn], run_x1[rn]):
            if cand[by, bx] == 0:
                continue
            floor_q = floor_blk[by, bx]
            for i in range(by * bs, min(by * bs + bs, h)):
                for j in range(bx * bs, min(bx * bs + bs, w)):
                    m = mask[i, j] if has_mask else 1
                    t = kelvin[i, j]
                    st = _state(t, m, dead_k, sat_k)
                    if st == 0:
                        continue
                    q = q_max if st == 2 else _quant(t, scale, q_max)
                    if st == 1 and q <= floor_q and q <= abs_q:
                        continue
                    ok, s, ss, n = _background(
                        table, i - i0, j - j0, i1 - i0, j1 - j0, radii, guard, need
                    )
                    surv_i[k] = i
                    surv_j[k] = j
                    surv_ok[k] = 1 if ok else 0
                    surv_s[k] = s
                    surv_ss[k] = ss
                    surv_n[k] = n
                    k += 1
                    if ok and st == 1:
                        mean = s / n
                        if q - mean > bgfire_dq:
                            hot[i, j] = 1
                            hot_blk[by, bx] = 1
    run_k[n_runs] = k
    n_all = k

    # Blocks whose covering neighbourhood holds a hot pixel must redo their statistics.
    hot_near = np.zeros((nby, nbx), dtype=np.uint8)
    for by in range(nby):
        for bx in range(nbx):
            if hot_blk[by, bx] == 0:
                continue
            for a in range(max(by - reach, 0), min(by + reach + 1, nby)):
                for b in range(max(bx - reach, 0), min(bx + reach + 1, nbx)):
                    hot_near[a, b] = 1

    # Pass C: second-pass statistics (hot pixels excluded) for runs near a hot pixel.
    for rn in range(n_runs):
        by = run_by[rn]
        near = False
        for bx in range(run_x0[rn], run_x1[rn]):
            if hot_near[by, bx] != 0:
                near = True
        if not near:
            continue
        i0 = max(by * bs - r_max, 0)
        i1 = min(by * bs + bs + r_max, h)
        j0 = max(run_x0[rn] * bs - r_max, 0)
        j1 = min(run_x1[rn] * bs + r_max, w)
        _fill_table(
            table,
            qrow,
            nrow,
            kelvin,
            mask,
            has_mask,
            hot,
            True,
            i0,
            i1,
            j0,
            j1,
            dead_k,
            sat_k,
            scale,
            q_max,
        )
        for k in range(run_k[rn], run_k[rn + 1]):
            ok, s, ss, n = _background(
                table, surv_i[k] - i0, surv_j[k] - j0, i1 - i0, j1 - j0, radii, guard, need
            )
            surv_ok[k] = 1 if ok else 0
            surv_s[k] = s
            surv_ss[k] = ss
            surv_n[k] = n

    # The tests.
    codes = np.zeros((h, w), dtype=np.uint8)
    out_mean = np.empty(n_all, dtype=np.float64)
    out_var = np.empty(n_all, dtype=np.float64)
    for k in range(n_all):
        i = surv_i[k]
        j = surv_j[k]
        ok = surv_ok[k] != 0
        s = surv_s[k]
        ss = surv_ss[k]
        n = surv_n[k]
        surv_n[k] = n if ok else 0
        m = mask[i, j] if has_mask else 1
        st = _state(kelvin[i, j], m, dead_k, sat_k)
        q = q_max if st == 2 else _quant(kelvin[i, j], scale, q_max)
        code = CODE_NONE
        mean = np.nan
        var = np.nan
        if ok:
            mean = s / n
            var = ss / n - mean * mean
            std = math.sqrt(var) if var > 0.0 else 0.0
            excess = q - mean
            if excess > max(k_sigma * std, dt_min_q):
                s3, n3 = _box_radiance(
                    kelvin, mask, has_mask, lut, i, j, 1, dead_k, sat_k, scale, q_max
                )
                s5, n5 = _box_radiance(
                    kelvin, mask, has_mask, lut, i, j, 2, dead_k, sat_k, scale, q_max
                )
                l_bg = _lut_interp(lut, mean)
                if s3 - n3 * l_bg >= compact_ratio * (s5 - n5 * l_bg):
                    code = CODE_COMPACT
                else:
                    code = CODE_EXTENDED
        if st == 2 or q > abs_q:
            code = CODE_ABSOLUTE
        codes[i, j] = code
        out_mean[k] = mean
        out_var[k] = var

    # Gather the candidates; survivors are in block order, so sort to row-major order.
    total = 0
    for k in range(n_all):
        if codes[surv_i[k], surv_j[k]] != CODE_NONE:
            total += 1
    rows = np.empty(total, dtype=np.int32)
    cols = np.empty(total, dtype=np.int32)
    kinds = np.empty(total, dtype=np.uint8)
    mean_q = np.empty(total, dtype=np.float64)
    var_q = np.empty(total, dtype=np.float64)
    count = np.empty(total, dtype=np.int64)
    keys = np.empty(total, dtype=np.int64)
    n_out = 0
    for k in range(n_all):
        i = surv_i[k]
        j = surv_j[k]
        if codes[i, j] == CODE_NONE:
            continue
        keys[n_out] = np.int64(i) * w + j
        rows[n_out] = i
        cols[n_out] = j
        kinds[n_out] = codes[i, j]
        mean_q[n_out] = out_mean[k]
        var_q[n_out] = out_var[k]
        count[n_out] = surv_n[k]
        n_out += 1
    order = np.argsort(keys, kind="mergesort")
    return codes, rows[order], cols[order], kinds[order], mean_q[order], var_q[order], count[order]


# --------------------------------------------------------------------------- wrapper


def prepare_mask(valid_mask: np.ndarray | None, shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    """The kernel's (uint8 mask, has_mask) pair; True/nonzero marks a usable pixel."""
    if valid_mask is None:
        return np.ones((1, 1), dtype=np.uint8), False
    if valid_mask.shape != shape:
        raise ValueError(f"valid_mask shape {valid_mask.shape} does not match frame {shape}")
    if valid_mask.dtype == np.bool_:
        # a bool array is stored as 0/1 bytes: viewing it as uint8 saves a frame-sized copy
        return np.ascontiguousarray(valid_mask).view(np.uint8), True
    return np.ascontiguousarray(valid_mask, dtype=np.uint8), True


def quantised_thresholds(params: HotspotParams) -> tuple[float, float, float]:
    """(abs_q, dt_min_q, bgfire_dq): the thresholds in quantised units."""
    abs_q = (
        math.floor(params.abs_k * params.scale_per_k + 0.5)
        if math.isfinite(params.abs_k)
        else float(params.q_max + 1)
    )
    return (
        float(abs_q),
        params.dt_min_k * params.scale_per_k,
        params.bgfire_dk * params.scale_per_k,
    )


def detect_hotspots(
    frame: np.ndarray,
    params: HotspotParams,
    lut: np.ndarray,
    valid_mask: np.ndarray | None = None,
) -> HotspotResult:
    """Run the contextual kernel on one frame (float32 Kelvin, or uint8 in relative mode).

    ``valid_mask`` is True where a pixel may be used: False for sky above the horizon,
    the static-hot mask and known-dead pixels. ``lut`` comes from :func:`radiance_lut`
    (or :func:`identity_lut` in relative mode) built with the same ``params``.
    """
    if frame.ndim != 2:
        raise ValueError(f"frame must be 2-D (H, W), got shape {frame.shape}")
    if lut.shape != (params.q_max + 1,):
        raise ValueError(f"radiance table has {lut.shape} entries, params need {params.q_max + 1}")
    image = np.ascontiguousarray(frame)
    mask, has_mask = prepare_mask(valid_mask, image.shape)
    abs_q, dt_min_q, bgfire_dq = quantised_thresholds(params)
    codes, rows, cols, kinds, mean_q, var_q, count = contextual_kernel(
        image,
        mask,
        has_mask,
        lut,
        params.scale_per_k,
        params.q_max,
        params.dead_below_k,
        params.saturation_k,
        abs_q,
        dt_min_q,
        params.k_sigma,
        bgfire_dq,
        params.compact_ratio,
        np.asarray(params.window_radii_px, dtype=np.int64),
        params.guard_radius_px,
        params.required_counts(),
    )
    std_q = np.sqrt(np.maximum(var_q, 0.0))
    std_q[np.isnan(var_q)] = np.nan
    return HotspotResult(
        codes=codes,
        rows=rows,
        cols=cols,
        kinds=kinds,
        bg_mean_k=mean_q / params.scale_per_k,
        bg_std_k=std_q / params.scale_per_k,
        bg_count=count,
    )
