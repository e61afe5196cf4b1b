"""Head angles ↔ true azimuth/elevation through the calibration."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ptz_calibration import PtzCalibration


def test_identity_calibration_keeps_angles() -> None:
    cal = PtzCalibration()
    assert cal.to_true(123.4, -0.5) == pytest.approx((123.4, -0.5))


def test_offset_and_sense_map_to_true_north() -> None:
    cal = PtzCalibration(pan_offset_deg=10.0, pan_sign=-1, tilt_offset_deg=0.2)
    azimuth, elevation = cal.to_true(20.0, -1.0)
    assert azimuth == pytest.approx(350.0)
    assert elevation == pytest.approx(-0.8)


def test_tiny_negative_azimuth_wraps_into_0_360() -> None:
    azimuth, _ = PtzCalibration().to_true(-1e-14, 0.0)
    assert 0.0 <= azimuth < 360.0


@given(
    pan=st.floats(0.0, 359.999),
    tilt=st.floats(-10.0, 10.0),
    offset=st.floats(-360.0, 360.0),
    sign=st.sampled_from([1, -1]),
    a=st.floats(-0.5, 0.5),
    b=st.floats(-0.5, 0.5),
)
def test_to_device_inverts_to_true(
    pan: float, tilt: float, offset: float, sign: int, a: float, b: float
) -> None:
    cal = PtzCalibration(pan_offset_deg=offset, pan_sign=sign, level_a_deg=a, level_b_deg=b)
    azimuth, elevation = cal.to_true(pan, tilt)
    assert 0.0 <= azimuth < 360.0
    raw_pan, raw_tilt = cal.to_device(azimuth, elevation)
    assert min(abs(raw_pan - pan), 360.0 - abs(raw_pan - pan)) == pytest.approx(0.0, abs=1e-9)
    assert raw_tilt == pytest.approx(tilt, abs=1e-9)
