"""Shared view maths: angle wrapping, the curved earth, the horizon dip, detection criteria."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detectors.geometry import (
    CRITERION_DAY_K,
    CRITERION_NIGHT_K,
    angle_diff_deg,
    criterion_k,
    earth_drop_m,
    horizon_dip_deg,
    signed_delta_deg,
    wrap_deg,
)

angles = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)


@given(angles, angles)
def test_signed_delta_is_the_shortest_turn(a: float, b: float) -> None:
    d = signed_delta_deg(a, b)
    assert -180.0 < d <= 180.0
    assert math.isclose(wrap_deg(a + d), wrap_deg(b), abs_tol=1e-6) or math.isclose(
        abs(wrap_deg(a + d) - wrap_deg(b)), 360.0, abs_tol=1e-6
    )
    assert angle_diff_deg(a, b) == pytest.approx(abs(d))


def test_wrapping_edges() -> None:
    assert wrap_deg(-10.0) == 350.0
    assert signed_delta_deg(350.0, 10.0) == 20.0
    assert signed_delta_deg(10.0, 350.0) == -20.0
    assert signed_delta_deg(0.0, 180.0) == 180.0
    assert signed_delta_deg(180.0, 0.0) == 180.0
    assert angle_diff_deg(359.0, 1.0) == 2.0


def test_earth_drop_and_horizon_dip() -> None:
    # 10 km: 7.85 m without refraction, 6.83 m with k = 0.13
    assert float(earth_drop_m(10_000.0, k=0.0)) == pytest.approx(7.848, abs=1e-3)
    assert float(earth_drop_m(10_000.0)) == pytest.approx(6.828, abs=1e-3)
    assert horizon_dip_deg(40.0) == pytest.approx(0.1894, abs=5e-4)
    with pytest.raises(ValueError, match="must be positive"):
        horizon_dip_deg(0.0)
    with pytest.raises(ValueError, match="k must be < 1"):
        horizon_dip_deg(40.0, k=1.0)


def test_detection_criteria() -> None:
    assert (criterion_k(True), criterion_k(False)) == (CRITERION_DAY_K, CRITERION_NIGHT_K)
    assert (CRITERION_DAY_K, CRITERION_NIGHT_K) == (10.0, 6.0)
