"""Contextual hotspot kernel: hand-built frames pin each test; numba equals the references."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from detectors import hotspot_reference, radiometry
from detectors.blobs import label_candidates, make_blobs
from detectors.hotspot import (
    CODE_ABSOLUTE,
    CODE_COMPACT,
    CODE_EXTENDED,
    HotspotParams,
    HotspotResult,
    detect_hotspots,
    identity_lut,
    quantised_thresholds,
    radiance_lut,
    relative_params,
)
from detectors.hotspot_reference import detect_hotspots_prefiltered, detect_hotspots_reference
from detectors.hotspot_reference import label_candidates as cv_labels

DAY = HotspotParams()
NIGHT = HotspotParams(k_sigma=3.5, dt_min_k=6.0, abs_k=330.0, bgfire_dk=6.0)
LUT = radiance_lut(radiometry.band_radiance, DAY)
Reference = Callable[[np.ndarray, HotspotParams, np.ndarray, np.ndarray | None], HotspotResult]
# Both OpenCV pipelines: every pixel's statistics, and an exact prefilter with statistics
# at its survivors only. The kernel must equal each of them bit for bit.
REFERENCES = pytest.mark.parametrize(
    "reference",
    [detect_hotspots_reference, detect_hotspots_prefiltered],
    ids=["dense", "prefiltered"],
)


def background(h: int = 64, w: int = 80, seed: int = 0, level_k: float = 290.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level_k + rng.normal(0.0, 0.3, (h, w))).astype(np.float32)


def add_point(frame: np.ndarray, x: float, y: float, amplitude_k: float) -> None:
    """A sub-pixel source split bilinearly over the four pixels around (x, y)."""
    j, i = int(math.floor(x)), int(math.floor(y))
    fx, fy = x - j, y - i
    for di, dj, w in (
        (0, 0, (1 - fx) * (1 - fy)),
        (0, 1, fx * (1 - fy)),
        (1, 0, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        frame[i + di, j + dj] += np.float32(amplitude_k * w)


def test_one_hot_pixel_is_one_compact_blob_at_its_sub_pixel_position() -> None:
    f = background()
    add_point(f, 40.3, 30.7, 60.0)
    res = detect_hotspots(f, DAY, LUT)
    assert set(res.kinds.tolist()) == {CODE_COMPACT}
    blobs = make_blobs(f, res, radiometry.band_radiance, ifov_rad=1.6e-4)
    assert len(blobs) == 1
    b = blobs[0]
    assert b.compact and not b.absolute
    # radiance-weighted centroid of a bilinear split: within a few hundredths of a pixel
    assert abs(b.x - 40.3) < 0.08 and abs(b.y - 30.7) < 0.08
    assert 280.0 < b.bg_k < 300.0 and b.delta_t_k > 20.0
    assert b.a_eq_m2_per_range2 > 0.0


def test_warm_extended_patch_gives_no_compact_candidate() -> None:
    f = background()
    f[20:40, 20:45] += 25.0  # a sunlit roof, 20 × 25 px
    res = detect_hotspots(f, DAY, LUT)
    assert CODE_COMPACT not in res.kinds.tolist()
    assert CODE_ABSOLUTE not in res.kinds.tolist()


def test_sharp_horizon_edge_is_not_a_fire() -> None:
    f = background()
    f[:25, :] = 240.0  # cold sky above a warm ground
    res = detect_hotspots(f, DAY, LUT)
    assert len(res) == 0


def test_nan_and_dead_pixels_are_never_candidates_nor_background() -> None:
    f = background()
    add_point(f, 40.0, 30.0, 40.0)
    f[28:33, 36] = np.nan  # a dead column segment inside the fire's background window
    f[10, 10] = 0.0  # a dead pixel reading zero
    res = detect_hotspots(f, DAY, LUT)
    assert [(int(r), int(c)) for r, c in zip(res.rows, res.cols, strict=True)] == [(30, 40)]
    assert np.isfinite(res.bg_mean_k).all()


def test_saturated_pixel_takes_the_absolute_branch_and_stays_out_of_backgrounds() -> None:
    f = background()
    f[30, 40] = 700.0  # above the 655 K saturation
    f[30, 46] += 30.0  # a fire 6 px away: the saturated pixel sits in its annulus
    res = detect_hotspots(f, DAY, LUT)
    kinds = {
        (int(r), int(c)): int(k) for r, c, k in zip(res.rows, res.cols, res.kinds, strict=True)
    }
    assert kinds[(30, 40)] == CODE_ABSOLUTE
    assert kinds[(30, 46)] == CODE_COMPACT
    blobs = make_blobs(f, res, radiometry.band_radiance, 1.6e-4, saturation_k=DAY.saturation_k)
    assert any(b.saturated and b.absolute for b in blobs)


def test_very_hot_pixel_without_context_is_absolute() -> None:
    f = np.full((40, 40), 250.0, dtype=np.float32)
    mask = np.zeros(f.shape, dtype=bool)
    mask[20, 20] = True  # only the pixel itself is usable: no background at all
    f[20, 20] = 400.0
    res = detect_hotspots(f, DAY, LUT, mask)
    assert res.kinds.tolist() == [CODE_ABSOLUTE]
    assert math.isnan(res.bg_mean_k[0])


def test_a_blob_without_kernel_background_takes_its_rim_median_else_its_box_minimum() -> None:
    f = np.full((40, 40), 250.0, dtype=np.float32)
    f[19:22, 19:22] = 260.0
    f[21, 21] = 255.0
    f[20, 20] = 400.0
    mask = np.zeros(f.shape, dtype=bool)
    mask[20, 20] = True
    res = detect_hotspots(f, DAY, LUT, mask)
    assert math.isnan(res.bg_mean_k[0])
    (rim_blob,) = make_blobs(f, res, radiometry.band_radiance, 1.6e-4)
    assert rim_blob.bg_k == 260.0  # the median of the eight rim pixels
    (masked_blob,) = make_blobs(f, res, radiometry.band_radiance, 1.6e-4, valid_mask=mask)
    assert masked_blob.bg_k == 255.0  # no usable rim: the coolest pixel of its box
    assert masked_blob.delta_t_k == 145.0


def test_masked_pixels_are_never_candidates() -> None:
    f = background()
    add_point(f, 40.0, 30.0, 50.0)
    mask = np.ones(f.shape, dtype=bool)
    mask[28:33, 38:43] = False  # a chimney on the static mask
    assert len(detect_hotspots(f, DAY, LUT, mask)) == 0


def test_night_thresholds_find_what_day_thresholds_ignore() -> None:
    f = background()
    f[30, 40] += 8.0  # between the night (6 K) and day (10 K) minimum excess
    lut_night = radiance_lut(radiometry.band_radiance, NIGHT)
    assert len(detect_hotspots(f, DAY, LUT)) == 0
    assert len(detect_hotspots(f, NIGHT, lut_night)) == 1


def test_relative_mode_on_agc_counts() -> None:
    rng = np.random.default_rng(3)
    f = np.clip(rng.normal(90, 2, (64, 80)), 0, 255).astype(np.uint8)
    f[30, 40] = 160
    f[0:5, 0:5] = 255  # AGC clipping is not saturation: no absolute branch
    p = relative_params()
    res = detect_hotspots(f, p, identity_lut(p))
    assert (30, 40) in set(zip(res.rows.tolist(), res.cols.tolist(), strict=True))
    assert CODE_ABSOLUTE not in res.kinds.tolist()


def brute_force_codes(
    frame: np.ndarray, p: HotspotParams, lut: np.ndarray, valid: np.ndarray | None
) -> np.ndarray:
    """The algorithm written pixel by pixel with plain numpy: the definition itself."""
    h, w = frame.shape
    t = frame.astype(np.float64)
    usable = np.ones((h, w), bool) if valid is None else valid.astype(bool)
    with np.errstate(invalid="ignore"):
        alive = usable & (t >= p.dead_below_k)
        sat = alive & (t >= p.saturation_k)
    good = alive & ~sat
    q = np.where(
        good, np.clip(np.floor(np.nan_to_num(t) * p.scale_per_k + 0.5), 0, p.q_max), 0
    ).astype(np.int64)
    q[sat] = p.q_max
    abs_q, dt_q, bg_q = quantised_thresholds(p)
    need = p.required_counts()
    g = p.guard_radius_px

    def stats(i: int, j: int, use: np.ndarray) -> tuple[float, float] | None:
        for r, nd in zip(p.window_radii_px, need, strict=True):
            sel = np.zeros((h, w), bool)
            sel[max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1] = True
            sel[max(i - g, 0) : i + g + 1, max(j - g, 0) : j + g + 1] = False
            vals = q[sel & use]
            if vals.size >= nd:
                s, ss, n = int(vals.sum()), int((vals * vals).sum()), vals.size
                mean = s / n
                return mean, ss / n - mean * mean
        return None

    def box(i: int, j: int, r: int) -> tuple[int, int]:
        sl = (slice(max(i - r, 0), i + r + 1), slice(max(j - r, 0), j + r + 1))
        m = alive[sl]
        return int(lut[q[sl][m]].sum()), int(m.sum())

    hot = np.zeros((h, w), bool)
    for i in range(h):
        for j in range(w):
            st = stats(i, j, good) if good[i, j] else None
            hot[i, j] = st is not None and q[i, j] - st[0] > bg_q
    codes = np.zeros((h, w), np.uint8)
    for i in range(h):
        for j in range(w):
            if not alive[i, j]:
                continue
            st = stats(i, j, good & ~hot)
            if st is not None:
                mean, var = st
                std = math.sqrt(var) if var > 0 else 0.0
                if q[i, j] - mean > max(p.k_sigma * std, dt_q):
                    s3, n3 = box(i, j, 1)
                    s5, n5 = box(i, j, 2)
                    top = lut.size - 1
                    k = min(int(math.floor(mean)), top - 1)
                    l_bg = lut[k] + (mean - k) * (lut[k + 1] - lut[k])
                    codes[i, j] = (
                        CODE_COMPACT
                        if s3 - n3 * l_bg >= p.compact_ratio * (s5 - n5 * l_bg)
                        else CODE_EXTENDED
                    )
            if sat[i, j] or (good[i, j] and q[i, j] > abs_q):
                codes[i, j] = CODE_ABSOLUTE
    return codes


def cluttered_frame(seed: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = (295 + rng.normal(0, 1.0, (h, w))).astype(np.float32)
    f[h // 3 : h // 3 + 9, w // 4 : w // 4 + 15] += 20.0  # warm roof
    for _ in range(max(h * w // 400, 3)):
        i, j = rng.integers(0, h), rng.integers(0, w)
        f[i, j] += np.float32(rng.uniform(4, 90))
    f[rng.integers(0, h, 5), rng.integers(0, w, 5)] = np.nan
    f[rng.integers(0, h, 2), rng.integers(0, w, 2)] = 800.0
    mask = np.ones((h, w), bool)
    mask[: h // 8, :] = False  # sky
    f[: h // 8, :] = 230.0
    return f, mask


def test_kernel_matches_brute_force_definition_on_a_small_frame() -> None:
    f, mask = cluttered_frame(11, 36, 44)
    expected = brute_force_codes(f, DAY, LUT, mask)
    got = detect_hotspots(f, DAY, LUT, mask)
    assert np.array_equal(got.codes, expected)
    assert np.count_nonzero(expected) >= 3


@REFERENCES
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("params", [DAY, NIGHT], ids=["day", "night"])
def test_numba_kernel_equals_opencv_reference(
    seed: int, params: HotspotParams, reference: Reference
) -> None:
    f, mask = cluttered_frame(seed, 256, 320)
    lut = radiance_lut(radiometry.band_radiance, params)
    a = detect_hotspots(f, params, lut, mask)
    b = reference(f, params, lut, mask)
    assert len(a) > 10
    assert np.array_equal(a.codes, b.codes)
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.cols, b.cols)
    assert np.array_equal(a.bg_count, b.bg_count)
    np.testing.assert_array_equal(a.bg_mean_k, b.bg_mean_k)
    np.testing.assert_array_equal(a.bg_std_k, b.bg_std_k)


def test_candidate_grouping_matches_opencv_connected_components() -> None:
    f, mask = cluttered_frame(5, 128, 160)
    res = detect_hotspots(f, DAY, LUT, mask)
    labels = label_candidates(res.rows, res.cols, f.shape[1])
    n_cv, cv_img = cv_labels(res.codes)
    assert int(labels.max()) + 1 == n_cv
    # same partition: two candidates share a label in one exactly when they do in the other
    cv_of = cv_img[res.rows, res.cols]
    pairs = {(int(a), int(b)) for a, b in zip(labels, cv_of, strict=True)}
    assert len(pairs) == n_cv


def test_params_reject_inconsistent_windows() -> None:
    with pytest.raises(ValueError, match="guard_radius_px"):
        HotspotParams(window_radii_px=(2, 5), guard_radius_px=2)
    with pytest.raises(ValueError, match="increasing"):
        HotspotParams(window_radii_px=(5, 3))


@REFERENCES
@pytest.mark.parametrize("masked_fraction", [0.0, 0.6, 0.9])
def test_numba_kernel_equals_reference_when_windows_must_grow(
    masked_fraction: float, reference: Reference
) -> None:
    # A sparse valid mask makes the 7×7 annulus too thin, so the larger windows (and the
    # "never enough valid pixels" case) are used; a roof on the frame edge and hot pixels
    # next to each other exercise the second pass near the borders.
    f, mask = cluttered_frame(7, 200, 264)
    rng = np.random.default_rng(8)
    mask &= rng.random(f.shape) >= masked_fraction
    f[150:170, 250:] += 25.0
    f[100, 100:104] += 40.0
    a = detect_hotspots(f, DAY, LUT, mask)
    b = reference(f, DAY, LUT, mask)
    assert len(a) > 0
    assert np.array_equal(a.codes, b.codes)
    assert np.array_equal(a.bg_count, b.bg_count)
    np.testing.assert_array_equal(a.bg_mean_k, b.bg_mean_k)
    np.testing.assert_array_equal(a.bg_std_k, b.bg_std_k)


def test_prefiltered_reference_rebuilds_its_tables_for_many_hot_pixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    f, mask = cluttered_frame(7, 200, 264)
    f[100, 100:104] += 40.0
    sparse = detect_hotspots_prefiltered(f, DAY, LUT, mask)
    monkeypatch.setattr(hotspot_reference, "_MAX_SPARSE_PAIRS", 0)
    rebuilt = detect_hotspots_prefiltered(f, DAY, LUT, mask)
    kernel = detect_hotspots(f, DAY, LUT, mask)
    assert len(kernel) > 0
    for got in (sparse, rebuilt):
        assert np.array_equal(got.codes, kernel.codes)
        assert np.array_equal(got.bg_count, kernel.bg_count)
        np.testing.assert_array_equal(got.bg_mean_k, kernel.bg_mean_k)
        np.testing.assert_array_equal(got.bg_std_k, kernel.bg_std_k)


@REFERENCES
def test_numba_kernel_equals_reference_in_relative_mode_without_mask(reference: Reference) -> None:
    rng = np.random.default_rng(4)
    f = np.clip(rng.normal(90, 3, (120, 150)), 0, 255).astype(np.uint8)
    f[40:52, 60:85] = 120  # a warm roof in AGC counts
    f[rng.integers(0, 120, 30), rng.integers(0, 150, 30)] = 200
    p = relative_params()
    lut = identity_lut(p)
    a = detect_hotspots(f, p, lut)
    b = reference(f, p, lut)
    assert len(a) > 10
    assert np.array_equal(a.codes, b.codes)
    assert np.array_equal(a.bg_count, b.bg_count)
    np.testing.assert_array_equal(a.bg_mean_k, b.bg_mean_k)
