"""Smoke in a scanning lidar: a plume is found at its range within a bin after a few shots;
a hill, a stable haze layer, fog and a passing bird are not smoke."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.lidar_smoke import LidarSmokeDetector, direction_key

BIN_M = 7.5
FIRST_BIN_M = 0.0
N_BINS = 2000  # 15 km
SHOTS = 100
R = FIRST_BIN_M + BIN_M * np.arange(N_BINS)


def profile(
    rng: np.random.Generator,
    *,
    plume_at_m: float | None = None,
    plume_beta: float = 0.0,
    plume_width_m: float = 40.0,
    hill_at_m: float | None = 12_000.0,
    haze_at_m: tuple[float, float] | None = None,
    alpha_per_m: float = 7e-5,
) -> np.ndarray:
    """Mean counts per shot from the elastic lidar equation, with Poisson noise."""
    beta = np.full(N_BINS, 2e-6)  # clean-air backscatter, m⁻¹ sr⁻¹
    alpha = np.full(N_BINS, alpha_per_m)
    if haze_at_m is not None:
        layer = (haze_at_m[0] <= R) & (haze_at_m[1] > R)
        beta[layer] *= 2.0
        alpha[layer] *= 2.0
    if plume_at_m is not None:
        bump = np.exp(-0.5 * ((R - plume_at_m) / (plume_width_m / 2.355)) ** 2)
        beta += plume_beta * bump
        alpha += 50.0 * plume_beta * bump  # lidar ratio of smoke ~50 sr
    overlap = 1.0 - np.exp(-R / 150.0)
    tau = np.cumsum(alpha) * BIN_M
    signal = 1e14 * overlap * beta * np.exp(-2.0 * tau) / np.maximum(R, 1.0) ** 2
    if hill_at_m is not None:
        wall = int(hill_at_m / BIN_M)
        signal[wall] += 50.0 * signal[wall - 1] / beta[wall - 1] * 1e-4
        signal[wall + 1 :] = 0.0
    mean = signal + 2.0  # background light
    return rng.poisson(mean * SHOTS) / SHOTS


def feed(detector: LidarSmokeDetector, bins: np.ndarray, az: float, el: float, t: float):
    return detector.add_profile(
        bins, first_bin_m=FIRST_BIN_M, bin_m=BIN_M, shots=SHOTS,
        azimuth_deg=az, elevation_deg=el, t_s=t,
    )  # fmt: skip


def learn_clean(detector: LidarSmokeDetector, rng, directions, shots=5, **kw) -> float:
    t = 0.0
    for _ in range(shots):
        for az, el in directions:
            assert feed(detector, profile(rng, **kw), az, el, t) is None
            t += 1.0
    return t


FAN = [(az, el) for el in (0.2, 0.7) for az in (134.9, 135.0, 135.1)]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_plume_is_located_within_one_bin_in_three_shots(seed: int) -> None:
    rng = np.random.default_rng(seed)
    detector = LidarSmokeDetector()
    t = learn_clean(detector, rng, FAN)
    fixes = []
    for shot in range(3):
        for az, el in FAN:
            bins = profile(rng, plume_at_m=6000.0, plume_beta=1.5e-6)
            fix = feed(detector, bins, az, el, t)
            t += 1.0
            if fix is not None:
                fixes.append((shot, fix))
    assert fixes, "a plume of z ≈ 6+ at 6 km was never confirmed"
    shot, fix = fixes[0]
    assert shot <= 2
    assert abs(fix.range_m - 6000.0) <= BIN_M
    assert fix.neighbours >= 1 and fix.shots >= 3
    assert fix.optical_depth >= 0.0


def test_a_dense_plume_states_its_optical_depth_from_the_step_behind_it() -> None:
    rng = np.random.default_rng(11)
    detector = LidarSmokeDetector()
    t = learn_clean(detector, rng, FAN)
    beta, width = 1e-5, 100.0
    expected_tau = 50.0 * beta * width / 2.355 * math.sqrt(2.0 * math.pi)  # ∫α dr
    fixes = []
    for _ in range(3):
        for az, el in FAN:
            bins = profile(rng, plume_at_m=4000.0, plume_beta=beta, plume_width_m=width)
            if (fix := feed(detector, bins, az, el, t)) is not None:
                fixes.append(fix)
            t += 1.0
    assert fixes
    assert fixes[-1].optical_depth == pytest.approx(expected_tau, rel=0.5)


def test_a_hill_in_the_reference_is_not_smoke() -> None:
    rng = np.random.default_rng(5)
    detector = LidarSmokeDetector()
    t = learn_clean(detector, rng, FAN, hill_at_m=8000.0)
    for _ in range(6):
        for az, el in FAN:
            assert feed(detector, profile(rng, hill_at_m=8000.0), az, el, t) is None
            t += 1.0


def test_a_stable_haze_layer_is_not_smoke() -> None:
    rng = np.random.default_rng(6)
    detector = LidarSmokeDetector()
    layer = (4000.0, 7000.0)
    t = learn_clean(detector, rng, FAN, haze_at_m=layer)
    for _ in range(6):
        for az, el in FAN:
            assert feed(detector, profile(rng, haze_at_m=layer), az, el, t) is None
            t += 1.0


def test_fog_over_everything_is_not_smoke() -> None:
    rng = np.random.default_rng(7)
    detector = LidarSmokeDetector()
    t = learn_clean(detector, rng, FAN)
    for _ in range(6):
        for az, el in FAN:
            fog = profile(rng, haze_at_m=(300.0, 15000.0), alpha_per_m=2e-4)
            assert feed(detector, fog, az, el, t) is None
            t += 1.0


def test_a_bird_crossing_one_shot_is_not_smoke() -> None:
    rng = np.random.default_rng(8)
    detector = LidarSmokeDetector()
    t = learn_clean(detector, rng, FAN)
    bins = profile(rng)
    bins[int(3000 / BIN_M)] *= 40.0  # one-bin echo
    for az, el in FAN:
        assert feed(detector, bins, az, el, t) is None
        t += 1.0


def test_a_plume_seen_in_one_direction_only_is_not_confirmed() -> None:
    rng = np.random.default_rng(9)
    detector = LidarSmokeDetector()
    t = learn_clean(detector, rng, [(90.0, 0.2)])
    for _ in range(6):
        bins = profile(rng, plume_at_m=5000.0, plume_beta=3e-6)
        assert feed(detector, bins, 90.0, 0.2, t) is None
        t += 1.0


def test_without_a_reference_the_profiles_own_trend_finds_the_plume() -> None:
    rng = np.random.default_rng(10)
    detector = LidarSmokeDetector()
    fixes = []
    t = 0.0
    for _ in range(3):
        for az, el in FAN:
            fix = feed(detector, profile(rng, plume_at_m=5000.0, plume_beta=4e-6), az, el, t)
            t += 1.0
            if fix is not None:
                fixes.append(fix)
    assert fixes and abs(fixes[0].range_m - 5000.0) <= 2 * BIN_M


def test_bad_profiles_are_refused_with_the_reason() -> None:
    detector = LidarSmokeDetector()
    with pytest.raises(ValueError, match="bin_m > 0"):
        detector.add_profile(np.ones(10), first_bin_m=0.0, bin_m=0.0, shots=10,
                             azimuth_deg=0.0, elevation_deg=0.0, t_s=0.0)  # fmt: skip


def test_directions_are_told_apart_to_a_hundredth_of_a_degree() -> None:
    assert direction_key(359.999, 0.2) == direction_key(0.0, 0.2)
    assert direction_key(135.0, 0.2) != direction_key(135.01, 0.2)
