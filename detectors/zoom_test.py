"""Zoom-scaling test: a sub-pixel source keeps its fire-equivalent area, a warm surface its ΔT."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# A_eq ratio band within which the candidate counts as compact (docs/algorithms/suppression.md).
COMPACT_RATIO_MIN = 0.5
COMPACT_RATIO_MAX = 2.0
# Below this zoom factor the two hypotheses predict ratios too close to tell apart.
MIN_ZOOM_FACTOR = 1.5


@dataclass(frozen=True)
class BlobMeasurement:
    """The candidate at one field of view, measured over a fixed 3×3 pixel window.

    ``excess_radiance`` is Σ(L − L_bg) over the 3×3 pixels around the peak (W m⁻² sr⁻¹
    × pixels): a fixed pixel window, so an extended surface's sum scales with the
    pixel footprint while a sub-pixel source's does not.
    """

    excess_radiance: float
    delta_t_k: float


@dataclass(frozen=True)
class ZoomVerdict:
    compact: bool
    ratio: float  # A_eq(narrow) / A_eq(wide): ≈ 1 for a sub-pixel source
    delta_t_ratio: float  # ΔT(narrow) / ΔT(wide): ≈ 1 for an extended surface
    expected_extended_ratio: float  # (IFOV_narrow / IFOV_wide)²: the A_eq ratio of a surface
    decisive: bool  # the zoom factor was large enough to tell the two apart


def measure(
    frame: np.ndarray,
    x: float,
    y: float,
    bg_k: float,
    radiance: Callable[[np.ndarray], np.ndarray],
) -> BlobMeasurement:
    """Measure a candidate at (x, y): ΔL over the 3×3 around its hottest nearby pixel."""
    h, w = frame.shape
    i, j = int(round(y)), int(round(x))
    if not (0 <= i < h and 0 <= j < w):
        raise ValueError(f"position ({x:.1f}, {y:.1f}) is outside the {w}×{h} frame")
    # The hottest pixel within one pixel of the position is the peak the window centres on.
    i0, i1, j0, j1 = max(i - 1, 0), min(i + 2, h), max(j - 1, 0), min(j + 2, w)
    patch = np.where(np.isfinite(frame[i0:i1, j0:j1]), frame[i0:i1, j0:j1], -np.inf)
    di, dj = np.unravel_index(int(np.argmax(patch)), patch.shape)
    pi, pj = i0 + int(di), j0 + int(dj)
    window = np.asarray(frame[max(pi - 1, 0) : pi + 2, max(pj - 1, 0) : pj + 2], dtype=np.float64)
    window = np.where(np.isfinite(window), window, bg_k)
    l_bg = float(radiance(np.asarray([bg_k]))[0])
    excess = float(np.sum(radiance(window) - l_bg))
    return BlobMeasurement(excess_radiance=excess, delta_t_k=float(frame[pi, pj]) - bg_k)


def zoom_test(
    wide: BlobMeasurement,
    narrow: BlobMeasurement,
    ifov_wide_mrad: float,
    ifov_narrow_mrad: float,
) -> ZoomVerdict:
    """Compare a candidate measured at a wide and a narrow field of view.

    A sub-pixel source's ΔL scales as IFOV⁻², so ΔL·IFOV² (∝ A_eq) is unchanged; an
    extended warm surface fills the pixels at both zooms, so its ΔT is unchanged and
    its ΔL·IFOV² falls as IFOV². Compact when the A_eq ratio lies in [0.5, 2].
    """
    if ifov_wide_mrad <= 0 or ifov_narrow_mrad <= 0:
        raise ValueError(
            f"IFOVs must be > 0 mrad, got wide={ifov_wide_mrad}, narrow={ifov_narrow_mrad}"
        )
    a_wide = wide.excess_radiance * ifov_wide_mrad**2
    a_narrow = narrow.excess_radiance * ifov_narrow_mrad**2
    ratio = a_narrow / a_wide if a_wide > 0 else math.nan
    dt_ratio = narrow.delta_t_k / wide.delta_t_k if wide.delta_t_k > 0 else math.nan
    expected_extended = (ifov_narrow_mrad / ifov_wide_mrad) ** 2
    compact = math.isfinite(ratio) and COMPACT_RATIO_MIN <= ratio <= COMPACT_RATIO_MAX
    return ZoomVerdict(
        compact=compact,
        ratio=ratio,
        delta_t_ratio=dt_ratio,
        expected_extended_ratio=expected_extended,
        decisive=ifov_wide_mrad / ifov_narrow_mrad >= MIN_ZOOM_FACTOR,
    )
