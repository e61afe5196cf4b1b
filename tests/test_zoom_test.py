"""Zoom-scaling test: sub-pixel sources keep A_eq, extended surfaces keep ΔT."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import radiometry
from detectors.zoom_test import BlobMeasurement, measure, zoom_test


def render(ifov_mrad: float, source: str) -> np.ndarray:
    """A 41×41 view centred on a 1 m² 1000 K source or on a 40 m wide 320 K surface, at 5 km."""
    frame = np.full((41, 41), 290.0, dtype=np.float32)
    footprint_m = ifov_mrad * 1e-3 * 5000.0
    l_bg = radiometry.band_radiance(np.array([290.0]))[0]
    if source == "point":
        fraction = 1.0 / footprint_m**2  # sub-pixel: all the flux in the centre pixel
        l_pix = fraction * radiometry.band_radiance(np.array([1000.0]))[0] + (1 - fraction) * l_bg
        frame[20, 20] = radiometry.brightness_temperature(np.array([l_pix]))[0]
    else:
        half_px = int(20.0 / footprint_m)
        lo = max(20 - half_px, 0)
        frame[lo : 21 + half_px, lo : 21 + half_px] = 320.0
    return frame


@pytest.mark.parametrize(("wide", "narrow"), [(0.32, 0.16), (0.48, 0.16)])
def test_sub_pixel_source_keeps_its_fire_equivalent_area(wide: float, narrow: float) -> None:
    m_wide = measure(render(wide, "point"), 20, 20, 290.0, radiometry.band_radiance)
    m_narrow = measure(render(narrow, "point"), 20, 20, 290.0, radiometry.band_radiance)
    verdict = zoom_test(m_wide, m_narrow, wide, narrow)
    assert verdict.compact and verdict.decisive
    assert verdict.ratio == pytest.approx(1.0, abs=0.05)
    assert verdict.delta_t_ratio > 2.0


def test_extended_surface_keeps_its_temperature() -> None:
    m_wide = measure(render(0.32, "surface"), 20, 20, 290.0, radiometry.band_radiance)
    m_narrow = measure(render(0.16, "surface"), 20, 20, 290.0, radiometry.band_radiance)
    verdict = zoom_test(m_wide, m_narrow, 0.32, 0.16)
    assert not verdict.compact
    assert verdict.ratio == pytest.approx(verdict.expected_extended_ratio, rel=0.05)
    assert verdict.delta_t_ratio == pytest.approx(1.0, abs=0.01)


def test_small_zoom_is_not_decisive_and_bad_ifov_is_refused() -> None:
    m = BlobMeasurement(excess_radiance=5.0, delta_t_k=20.0)
    assert not zoom_test(m, m, 0.2, 0.18).decisive
    with pytest.raises(ValueError, match="IFOV"):
        zoom_test(m, m, 0.0, 0.1)
