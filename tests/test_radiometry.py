"""Radiometry against the hand-worked numbers of docs/physics/link-budget.md."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.radiometry import (
    Atmosphere,
    Optics,
    band_radiance,
    band_radiance_derivative,
    band_radiance_exact,
    brightness_temperature,
    case_c_effective_area_m2,
    link_budget,
    max_detectable_range_m,
    peak_pixel_fraction,
    psf_pixel_kernel,
    water_vapour_density_g_m3,
)

DRY = Atmosphere(10.0, 50.0)
TEMPERATE = Atmosphere(20.0, 60.0)
HUMID = Atmosphere(25.0, 60.0)
TROPICAL = Atmosphere(30.0, 70.0)


@pytest.mark.parametrize(
    ("t_k", "expected"),
    [
        (290, 46.9),
        (300, 54.9),
        (320, 73.2),
        (340, 94.6),
        (360, 119.1),
        (600, 617),
        (800, 1224),
        (1000, 1924),
        (1200, 2677),
    ],
)
def test_band_radiance_matches_the_reference_table(t_k: float, expected: float) -> None:
    assert band_radiance_exact(t_k) == pytest.approx(expected, rel=2e-3)
    assert float(band_radiance([t_k])[0]) == pytest.approx(expected, rel=2e-3)


def test_radiance_slope_at_300_k_makes_50_mk_netd_a_0042_radiance_step() -> None:
    slope = band_radiance_derivative(300.0)
    assert slope == pytest.approx(0.84, abs=0.01)
    assert 0.050 * slope == pytest.approx(0.042, abs=0.001)


def test_table_lookup_and_inverse_round_trip_far_below_netd() -> None:
    temps = np.linspace(200.0, 1500.0, 2001).astype(np.float32)
    back = brightness_temperature(band_radiance(temps))
    assert back.dtype == np.float32
    assert np.max(np.abs(back - temps)) < 5e-3
    # Between table nodes the linear interpolation still honours the exact integral.
    assert float(band_radiance([300.5])[0]) == pytest.approx(band_radiance_exact(300.5), rel=5e-5)


@pytest.mark.parametrize(
    ("atm", "rho", "beta", "tau10", "tau20"),
    [
        (DRY, 4.7, 0.07, 0.51, 0.27),
        (TEMPERATE, 10.4, 0.15, 0.23, 0.06),
        (HUMID, 13.8, 0.20, 0.13, 0.02),
        (TROPICAL, 21.2, 0.36, 0.025, 0.001),
    ],
)
def test_atmosphere_reproduces_the_reference_table(
    atm: Atmosphere, rho: float, beta: float, tau10: float, tau20: float
) -> None:
    assert atm.water_vapour_g_m3 == pytest.approx(rho, rel=0.02)
    assert atm.effective_extinction_per_km() == pytest.approx(beta, rel=0.10)
    assert float(atm.transmittance(10_000.0)) == pytest.approx(tau10, rel=0.10)
    assert float(atm.transmittance(20_000.0)) == pytest.approx(tau20, rel=0.15, abs=2e-4)


def test_transmittance_falls_with_range_humidity_and_haze() -> None:
    ranges = np.array([1_000.0, 5_000.0, 10_000.0, 20_000.0])
    taus = TEMPERATE.transmittance(ranges)
    assert np.all(np.diff(taus) < 0)
    by_humidity = [
        float(Atmosphere(20.0, rh).transmittance(10_000.0)) for rh in (20, 40, 60, 80, 100)
    ]
    assert all(a > b for a, b in zip(by_humidity, by_humidity[1:], strict=False))
    hazy = Atmosphere(20.0, 60.0, visibility_km=5.0)
    assert float(hazy.transmittance(10_000.0)) < 0.4 * float(TEMPERATE.transmittance(10_000.0))


def test_transmittance_stays_positive_at_long_range_unlike_the_camera_fit() -> None:
    assert 0.0 < float(TROPICAL.transmittance(30_000.0)) < 1e-3


def test_path_radiance_tends_to_the_air_blackbody() -> None:
    air = band_radiance_exact(TEMPERATE.air_temp_k)
    assert float(TEMPERATE.path_radiance(0.0)) == pytest.approx(0.0, abs=1e-9)
    assert float(TEMPERATE.path_radiance(200_000.0)) == pytest.approx(air, rel=1e-3)
    assert water_vapour_density_g_m3(20.0, 0.0) == 0.0


def test_peak_pixel_fraction_of_a_diffraction_limited_12um_f1_lens() -> None:
    # Reference: centred 0.63, mean 0.47, corner 0.24. The Airy tails put the corner
    # value 0.21 (four pixels share ≈ 0.85 of the flux), so the corner tolerance is wider.
    eta = peak_pixel_fraction(12.0, 1.0)
    assert eta.centred == pytest.approx(0.63, rel=0.08)
    assert eta.mean == pytest.approx(0.47, rel=0.05)
    assert eta.corner == pytest.approx(0.24, rel=0.15)
    assert eta.corner < 0.25 < eta.mean < eta.centred
    assert peak_pixel_fraction(17.0, 1.0).centred > eta.centred


def test_psf_kernel_spreads_a_point_source_over_its_neighbours() -> None:
    centred = psf_pixel_kernel(12.0, 1.0)
    assert centred.shape == (5, 5)
    assert centred[2, 2] == pytest.approx(peak_pixel_fraction(12.0, 1.0).centred, rel=0.02)
    assert 0.9 < centred.sum() < 1.0
    corner = psf_pixel_kernel(12.0, 1.0, 0.5, 0.5)
    block = corner[2:4, 2:4]
    assert np.allclose(block, block[0, 0], rtol=1e-6)
    assert block.sum() > 0.8


# ΔT_app, worst sub-pixel position, Case C (A_eff = 1 m² and 9 m²), 12 µm / 75 mm f/1.0:
# dry / temperate / humid (docs/physics/link-budget.md). The worked table is diffraction-only.
DEFAULT_LENS = Optics(pixel_pitch_um=12.0, focal_length_mm=75.0, f_number=1.0, lens_efficiency=1.0)


@pytest.mark.parametrize(
    ("atm", "two_m_at_10km", "six_m_at_20km"),
    [(DRY, 75.9, 80.7), (TEMPERATE, 39.5, 23.5), (HUMID, 23.7, 8.6)],
)
def test_mission_fires_apparent_rise_matches_the_worked_table(
    atm: Atmosphere, two_m_at_10km: float, six_m_at_20km: float
) -> None:
    small = link_budget(DEFAULT_LENS, atm, case_c_effective_area_m2(2.0), 10_000.0)
    large = link_budget(DEFAULT_LENS, atm, case_c_effective_area_m2(6.0), 20_000.0)
    assert small.delta_t_worst_k == pytest.approx(two_m_at_10km, rel=0.10)
    assert large.delta_t_worst_k == pytest.approx(six_m_at_20km, rel=0.10)
    assert small.delta_t_worst_k < small.delta_t_mean_k < small.delta_t_centred_k


def test_footprint_and_ifov_of_the_default_lens() -> None:
    assert DEFAULT_LENS.ifov_mrad == pytest.approx(0.16)
    assert DEFAULT_LENS.footprint_m(10_000.0) == pytest.approx(1.6)
    assert case_c_effective_area_m2(6.0) == pytest.approx(9.0)


def test_max_range_is_where_the_worst_rise_meets_the_criterion() -> None:
    area = case_c_effective_area_m2(2.0)
    r = max_detectable_range_m(DEFAULT_LENS, TEMPERATE, area, 10.0)
    assert 10_000.0 < r < 20_000.0
    assert link_budget(DEFAULT_LENS, TEMPERATE, area, r).delta_t_worst_k == pytest.approx(
        10.0, abs=0.05
    )
    # The night criterion (6 K) reaches further; humid air shortens it.
    assert max_detectable_range_m(DEFAULT_LENS, TEMPERATE, area, 6.0) > r
    assert max_detectable_range_m(DEFAULT_LENS, HUMID, area, 10.0) < r


def test_invalid_atmosphere_is_refused_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="relative_humidity_pct"):
        Atmosphere(20.0, 120.0)
    with pytest.raises(ValueError, match="visibility_km"):
        Atmosphere(20.0, 50.0, visibility_km=0.0)
