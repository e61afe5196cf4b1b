"""Head calibration from surveyed landmarks and the lake-horizon dip check (docs/physics/geolocation.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.ptz_calibration import PtzCalibration
from edge.calibration import (
    Landmark,
    Sighting,
    check_horizon,
    horizon_dip_deg,
    solve_landmark_calibration,
    solve_north_offset,
    true_pose,
)
from edge.geodesy import destination
from edge.geolocation import TowerSite, bearing_elevation_to

TOWER = TowerSite(47.0, 19.0, 160.0)
INJECTED = PtzCalibration(
    pan_offset_deg=1.234, tilt_offset_deg=-0.3, level_a_deg=0.05, level_b_deg=-0.03
)


def landmark(name: str, bearing_deg: float, distance_m: float, height_m: float) -> Landmark:
    lat, lon = destination(TOWER.lat, TOWER.lon, bearing_deg, distance_m)
    return Landmark(name, lat, lon, height_m)


# Masts and chimneys 3–8 km out, spread all round the tower.
FOUR_LANDMARKS = (
    landmark("mast-ne", 20.0, 4200.0, 210.0),
    landmark("chimney-se", 115.0, 7800.0, 140.0),
    landmark("turbine-sw", 205.0, 3100.0, 230.0),
    landmark("mast-nw", 290.0, 6500.0, 180.0),
)


def sightings_for(
    landmarks: tuple[Landmark, ...],
    head: PtzCalibration,
    noise_deg: float,
    rng: np.random.Generator,
) -> list[Sighting]:
    """What a technician reads off a head with calibration `head` when centring each landmark."""
    out = []
    for lm in landmarks:
        pan, tilt = bearing_elevation_to(TOWER, lm.lat, lm.lon, lm.height_m)
        pan_raw, tilt_raw = head.to_device(pan, tilt)
        out.append(
            Sighting(
                lm,
                pan_raw + float(rng.normal(0.0, noise_deg)),
                tilt_raw + float(rng.normal(0.0, noise_deg)),
            )
        )
    return out


def parameters(c: PtzCalibration) -> np.ndarray:
    return np.array([c.pan_offset_deg, c.tilt_offset_deg, c.level_a_deg, c.level_b_deg])


def test_raw_and_true_pose_are_inverse() -> None:
    for pan, tilt in [(0.0, -1.0), (123.0, 2.0), (359.9, -8.0)]:
        pan_raw, tilt_raw = INJECTED.to_device(pan, tilt)
        pose = true_pose(INJECTED, pan_raw, tilt_raw)
        assert (pose.pan_deg - pan + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=1e-12)
        assert pose.tilt_deg == pytest.approx(tilt, abs=1e-12)


def test_levelling_tilts_the_horizon_sinusoidally_with_pan() -> None:
    level = PtzCalibration(level_a_deg=0.05, level_b_deg=-0.03)
    assert true_pose(level, 0.0, 0.0).tilt_deg == pytest.approx(0.05)
    assert true_pose(level, 90.0, 0.0).tilt_deg == pytest.approx(-0.03)
    assert true_pose(level, 180.0, 0.0).tilt_deg == pytest.approx(-0.05)


def test_scenario_20_four_landmarks_recover_the_injected_calibration() -> None:
    # One survey with Gaussian 0.01° reading noise. The levelling terms' 1σ is 0.007°
    # with four landmarks, so about two surveys in three land all four parameters
    # within 0.01°; the guarantee proper is the 1σ bound tested over many surveys below.
    sightings = sightings_for(FOUR_LANDMARKS, INJECTED, 0.01, np.random.default_rng(20))
    result = solve_landmark_calibration(TOWER, sightings)
    error = parameters(result.calibration) - parameters(INJECTED)
    assert np.all(np.abs(error) <= 0.01), error
    assert result.accepted and result.residual_rms_deg <= 0.02
    assert result.warnings == ()


def test_noise_free_sightings_are_recovered_exactly() -> None:
    sightings = sightings_for(FOUR_LANDMARKS, INJECTED, 0.0, np.random.default_rng(0))
    result = solve_landmark_calibration(TOWER, sightings)
    assert np.allclose(parameters(result.calibration), parameters(INJECTED), atol=1e-9)
    assert result.residual_rms_deg < 1e-9


def test_reported_parameter_errors_match_the_scatter_over_many_surveys() -> None:
    rng = np.random.default_rng(7)
    errors, sigmas = [], []
    for _ in range(300):
        result = solve_landmark_calibration(
            TOWER, sightings_for(FOUR_LANDMARKS, INJECTED, 0.01, rng)
        )
        assert result.parameter_sigma_deg is not None
        errors.append(parameters(result.calibration) - parameters(INJECTED))
        sigmas.append(result.parameter_sigma_deg)
    empirical = np.std(np.array(errors), axis=0)
    # With 0.01° noise and four landmarks, every parameter is known to better than 0.01° (1σ).
    assert np.all(empirical < 0.0085)
    # The reported σ is an honest estimate of the real spread (its RMS over surveys).
    reported = np.sqrt(np.mean(np.array(sigmas) ** 2, axis=0))
    assert np.allclose(reported, empirical, rtol=0.2)


def test_bad_sighting_fails_the_acceptance_limit() -> None:
    sightings = sightings_for(FOUR_LANDMARKS, INJECTED, 0.0, np.random.default_rng(0))
    wrong = sightings[2]
    sightings[2] = Sighting(wrong.landmark, wrong.pan_raw_deg + 0.2, wrong.tilt_raw_deg)
    result = solve_landmark_calibration(TOWER, sightings)
    assert not result.accepted
    assert result.residual_rms_deg > 0.02
    # The misread landmark carries the largest pan residual.
    assert int(np.argmax(np.abs(result.pan_residuals_deg))) == 2


def test_pan_offsets_across_north_are_averaged_without_a_wrap_error() -> None:
    head = PtzCalibration(pan_offset_deg=-179.5)
    sightings = sightings_for(FOUR_LANDMARKS, head, 0.0, np.random.default_rng(0))
    result = solve_landmark_calibration(TOWER, sightings)
    assert result.calibration.pan_offset_deg == pytest.approx(-179.5, abs=1e-9)


def test_fewer_than_three_landmarks_are_refused() -> None:
    sightings = sightings_for(FOUR_LANDMARKS[:2], INJECTED, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 3"):
        solve_landmark_calibration(TOWER, sightings)


def test_clustered_or_close_landmarks_are_warned_about() -> None:
    clustered = (
        landmark("a", 10.0, 5000.0, 150.0),
        landmark("b", 30.0, 1200.0, 150.0),
        landmark("c", 50.0, 6000.0, 150.0),
    )
    sightings = sightings_for(clustered, INJECTED, 0.0, np.random.default_rng(0))
    result = solve_landmark_calibration(TOWER, sightings)
    assert any("'b'" in w and "m away" in w for w in result.warnings)
    assert any("span only 40°" in w for w in result.warnings)


def test_landmarks_on_one_bearing_cannot_separate_levelling() -> None:
    same_bearing = (
        landmark("a", 45.0, 3000.0, 150.0),
        landmark("b", 45.0, 5000.0, 200.0),
        landmark("c", 45.0, 7000.0, 250.0),
    )
    sightings = sightings_for(same_bearing, INJECTED, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="spread around the horizon"):
        solve_landmark_calibration(TOWER, sightings)


def test_north_offset_from_one_landmark_keeps_the_levelling() -> None:
    base = PtzCalibration(level_a_deg=0.05, level_b_deg=-0.03, roll_deg=0.2)
    head = PtzCalibration(
        pan_offset_deg=1.234,
        tilt_offset_deg=-0.3,
        level_a_deg=0.05,
        level_b_deg=-0.03,
        roll_deg=0.2,
    )
    (sighting,) = sightings_for(FOUR_LANDMARKS[1:2], head, 0.0, np.random.default_rng(0))
    solved = solve_north_offset(TOWER, sighting, base=base)
    assert solved.pan_offset_deg == pytest.approx(1.234, abs=1e-9)
    assert solved.tilt_offset_deg == pytest.approx(-0.3, abs=1e-9)
    assert (solved.level_a_deg, solved.level_b_deg, solved.roll_deg) == (0.05, -0.03, 0.2)


def test_horizon_dip_from_40_m() -> None:
    assert horizon_dip_deg(40.0, k=0.13) == pytest.approx(0.19, abs=0.005)
    assert horizon_dip_deg(40.0, k=0.13) == pytest.approx(
        math.degrees(math.sqrt(2 * 40.0 * 0.87 / 6_371_000.0))
    )
    # Stronger refraction lifts the horizon.
    assert horizon_dip_deg(40.0, k=0.5) < horizon_dip_deg(40.0, k=0.13)


def test_horizon_check_flags_a_tilt_offset() -> None:
    good = check_horizon(-0.20, 40.0)
    assert good.ok and good.error_deg == pytest.approx(-0.20 + 0.1894, abs=1e-3)
    high = check_horizon(-0.05, 40.0)
    assert not high.ok and high.error_deg > 0.1


def test_horizon_check_needs_a_height_above_the_water() -> None:
    with pytest.raises(ValueError, match="height above the water"):
        horizon_dip_deg(0.0)
