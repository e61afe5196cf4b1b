"""Plumes and hard targets in single lidar profiles drawn from the lidar equation with shot noise."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.lidar_returns import analyse_profile
from simulators.lidar import HardTarget, LidarAtmosphere, SmokePlume

AZ = 40.0


def draw(
    atmosphere: LidarAtmosphere, shots: int, seed: int, el: float = 0.5
) -> tuple[float, float, np.ndarray]:
    first, step, expected = atmosphere(AZ, el, 0.0)
    rng = np.random.default_rng(seed)
    return first, step, rng.poisson(expected.astype(np.float64) * shots) / shots


@pytest.mark.parametrize("extinction", [5e-5, 1e-4, 4e-4])
@pytest.mark.parametrize("shots", [20, 1000])
def test_clean_air_has_no_returns_and_gives_back_its_extinction(
    extinction: float, shots: int
) -> None:
    atmosphere = LidarAtmosphere(extinction_per_m=extinction)
    for seed in range(5):
        first, step, bins = draw(atmosphere, shots, seed)
        analysis = analyse_profile(bins, first, step, shots=shots)
        assert analysis.returns == ()
        assert analysis.plume is None and analysis.blocked_at_m is None
        assert analysis.background_counts == pytest.approx(5.0, abs=0.5)
        assert analysis.extinction_per_m == pytest.approx(extinction, rel=0.3, abs=2.5e-5)


def test_clean_air_z_scores_are_shot_noise() -> None:
    first, step, bins = draw(LidarAtmosphere(), 200, 7)
    analysis = analyse_profile(bins, first, step, shots=200)
    z = analysis.z[np.isfinite(analysis.z)]
    assert z.size > 1500
    assert abs(float(np.mean(z))) < 0.2
    assert 0.7 < float(np.std(z)) < 1.4
    # Nothing nearer than the overlap range is analysed.
    assert np.all(np.isnan(analysis.z[analysis.range_m < 500.0]))


@pytest.mark.parametrize("plume_range_m", [1500.0, 4000.0, 9000.0])
def test_a_plume_is_found_at_its_range(plume_range_m: float) -> None:
    atmosphere = LidarAtmosphere(plumes=[SmokePlume(AZ, plume_range_m, depth_m=40.0)])
    for seed in range(3):
        first, step, bins = draw(atmosphere, 1000, seed)
        analysis = analyse_profile(bins, first, step, shots=1000)
        plume = analysis.plume
        assert plume is not None, analysis.returns
        assert plume.range_m == pytest.approx(plume_range_m, abs=step)
        assert 15.0 <= plume.width_m <= 500.0 and plume.bins >= 2
        assert plume.peak_z > 5.0 and not plume.blocks_beam
        assert [r.kind for r in analysis.returns] == ["plume"]


def test_a_plume_in_the_shot_noise_is_not_reported_until_enough_shots_are_averaged() -> None:
    faint = SmokePlume(AZ, 9000.0, depth_m=30.0, backscatter_per_m_sr=2.0e-6)
    atmosphere = LidarAtmosphere(plumes=[faint])
    few = [analyse_profile(draw(atmosphere, 5, s)[2], 7.5, 7.5, shots=5).plume for s in range(5)]
    assert few == [None] * 5
    many = analyse_profile(draw(atmosphere, 20000, 1)[2], 7.5, 7.5, shots=20000).plume
    assert many is not None and many.range_m == pytest.approx(9000.0, abs=7.5)


def test_a_surface_blocks_the_beam_and_is_a_hard_target() -> None:
    atmosphere = LidarAtmosphere(hard_targets=[HardTarget(AZ, 3000.0)])
    first, step, bins = draw(atmosphere, 200, 3)
    analysis = analyse_profile(bins, first, step, shots=200)
    assert len(analysis.returns) == 1
    (wall,) = analysis.returns
    assert wall.kind == "hard_target" and wall.blocks_beam
    assert wall.range_m == pytest.approx(3000.0, abs=step)
    assert analysis.blocked_at_m == wall.range_m
    assert analysis.plume is None
    # The trend is fitted in front of the surface, with the background from behind it.
    assert analysis.analysed_to_m < 3000.0
    assert analysis.background_counts == pytest.approx(5.0, abs=0.1)


def test_smoke_in_front_of_a_ridge() -> None:
    atmosphere = LidarAtmosphere(
        plumes=[SmokePlume(AZ, 6000.0)], hard_targets=[HardTarget(AZ, 6500.0)]
    )
    first, step, bins = draw(atmosphere, 500, 4)
    analysis = analyse_profile(bins, first, step, shots=500)
    assert [(r.kind, r.blocks_beam) for r in analysis.returns] == [
        ("plume", False),
        ("hard_target", True),
    ]
    assert analysis.plume is not None
    assert analysis.plume.range_m == pytest.approx(6000.0, abs=step)


def test_a_one_bin_echo_is_a_hard_target_not_a_plume() -> None:
    first, step, bins = draw(LidarAtmosphere(), 500, 5)
    i = int((5000.0 - first) / step)
    bins = bins.copy()
    bins[i] += 50.0  # a bird or a mast in the beam: one bin, the signal goes on behind it
    analysis = analyse_profile(bins, first, step, shots=500)
    assert len(analysis.returns) == 1
    echo = analysis.returns[0]
    assert echo.kind == "hard_target" and not echo.blocks_beam and echo.bins == 1
    assert echo.range_m == pytest.approx(first + i * step)
    assert analysis.plume is None


def test_a_layer_wider_than_a_plume_is_extended() -> None:
    haze = SmokePlume(AZ, 5000.0, depth_m=1500.0, backscatter_per_m_sr=3.0e-6, lidar_ratio_sr=20.0)
    first, step, bins = draw(LidarAtmosphere(plumes=[haze]), 1000, 6)
    analysis = analyse_profile(bins, first, step, shots=1000)
    assert analysis.plume is None
    strongest = analysis.strongest
    assert strongest is not None and strongest.kind == "extended"
    assert strongest.width_m > 500.0


def test_bad_parameters_are_refused() -> None:
    bins = np.ones(100)
    with pytest.raises(ValueError):
        analyse_profile(bins, 7.5, 0.0, shots=10)
    with pytest.raises(ValueError):
        analyse_profile(bins, 7.5, 7.5, shots=0)
    with pytest.raises(ValueError):
        analyse_profile(bins, 7.5, 7.5, shots=10, min_width_m=600.0, max_width_m=500.0)


def test_a_profile_too_short_to_fit_gives_no_returns() -> None:
    analysis = analyse_profile(np.full(30, 5.0), 7.5, 7.5, shots=10)
    assert analysis.returns == ()
    assert np.all(np.isnan(analysis.z))
