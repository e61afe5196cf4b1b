"""Head calibration: north/tilt offsets and pan-axis levelling from landmarks; horizon dip check."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detectors.geometry import DEFAULT_REFRACTION_K, horizon_dip_deg
from drivers.ptz_calibration import PtzCalibration
from edge.geodesy import geodesic_inverse
from edge.geolocation import Pose, TowerSite, bearing_elevation_to

# Acceptance limit for the landmark fit (docs/physics/geolocation.md): 0.02° is 3.5 m at 10 km,
# well inside the lateral error budget of a 0.05° head.
ACCEPT_RESIDUAL_RMS_DEG = 0.02

# Landmark geometry advice (docs/physics/geolocation.md): nearer than 2 km, a few metres of
# survey or mounting error become a sizeable angle; less than 90° of azimuth spread
# leaves the levelling terms a·cos ψ and b·sin ψ nearly collinear with θ0.
MIN_LANDMARK_DISTANCE_M = 2000.0
MIN_AZIMUTH_SPREAD_DEG = 90.0

# Below this condition number the 3-parameter tilt fit is trustworthy; above it the
# landmarks' azimuths cannot separate θ0, a and b.
_MAX_TILT_CONDITION = 1e6


def _wrap180(angle_deg: float) -> float:
    return (angle_deg + 180.0) % 360.0 - 180.0


def true_pose(calibration: PtzCalibration, pan_raw_deg: float, tilt_raw_deg: float) -> Pose:
    """Calibrated pose (true azimuth, elevation, the camera's roll) of a raw head reading."""
    pan, tilt = calibration.to_true(pan_raw_deg, tilt_raw_deg)
    return Pose(pan_deg=pan, tilt_deg=tilt, roll_deg=calibration.roll_deg)


@dataclass(frozen=True)
class Landmark:
    """A surveyed point visible in thermal: WGS-84 lat/lon and height above MSL."""

    name: str
    lat: float
    lon: float
    height_m: float


@dataclass(frozen=True)
class Sighting:
    """Raw head angles read while the image centre sat on a landmark."""

    landmark: Landmark
    pan_raw_deg: float
    tilt_raw_deg: float


@dataclass(frozen=True)
class CalibrationResult:
    """A landmark fit: the calibration, its residuals and whether it meets the acceptance limit.

    parameter_sigma_deg holds the 1-σ errors of (ψ0, θ0, a, b) from the
    residual scatter, None when the fit has no redundancy to estimate them.
    warnings name landmarks or geometry that weaken the fit.
    """

    calibration: PtzCalibration
    residual_rms_deg: float
    pan_residuals_deg: tuple[float, ...]
    tilt_residuals_deg: tuple[float, ...]
    parameter_sigma_deg: tuple[float, float, float, float] | None
    accepted: bool
    warnings: tuple[str, ...]


def _azimuth_spread_deg(azimuths_deg: Sequence[float]) -> float:
    """Smallest arc of the compass that holds all azimuths."""
    ordered = sorted(a % 360.0 for a in azimuths_deg)
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    gaps.append(ordered[0] + 360.0 - ordered[-1])
    return 360.0 - max(gaps)


def solve_landmark_calibration(
    tower: TowerSite,
    sightings: Sequence[Sighting],
    *,
    k: float = DEFAULT_REFRACTION_K,
    roll_deg: float = 0.0,
    accept_rms_deg: float = ACCEPT_RESIDUAL_RMS_DEG,
) -> CalibrationResult:
    """Solve ψ0, θ0, a, b by linear least squares from ≥ 3 landmark sightings of a head
    whose raw angles grow clockwise and upward (pan_sign = tilt_sign = +1).

    Each landmark's true azimuth and apparent elevation come from the tower's
    position with curvature and refraction k. The pan equations ψ_true − ψr = ψ0
    and the tilt equations θ_true − θr = θ0 + a·cos ψ + b·sin ψ are linear in
    the unknowns; the fit is accepted when the RMS of all residuals is at most
    accept_rms_deg.
    """
    if len(sightings) < 3:
        raise ValueError(
            f"landmark calibration needs at least 3 sightings (6 preferred), got {len(sightings)}"
        )
    names = [s.landmark.name for s in sightings]
    if len(set(names)) != len(names):
        raise ValueError(f"each landmark must be sighted once; duplicates in {names}")
    warnings: list[str] = []
    true_pan: list[float] = []
    true_tilt: list[float] = []
    for s in sightings:
        distance, _, _ = geodesic_inverse(tower.lat, tower.lon, s.landmark.lat, s.landmark.lon)
        if float(distance) < MIN_LANDMARK_DISTANCE_M:
            warnings.append(
                f"landmark {s.landmark.name!r} is {float(distance):.0f} m away; "
                f"prefer >= {MIN_LANDMARK_DISTANCE_M:.0f} m"
            )
        pan, tilt = bearing_elevation_to(
            tower, s.landmark.lat, s.landmark.lon, s.landmark.height_m, k
        )
        true_pan.append(pan)
        true_tilt.append(tilt)
    spread = _azimuth_spread_deg(true_pan)
    if spread < MIN_AZIMUTH_SPREAD_DEG:
        warnings.append(
            f"landmarks span only {spread:.0f}° of azimuth; prefer >= {MIN_AZIMUTH_SPREAD_DEG:.0f}° "
            "to separate the levelling terms"
        )

    # Pan: differences are averaged about the first one so a wrap at 0/360 between
    # landmarks cannot bias the mean.
    pan_diff = np.array(
        [_wrap180(tp - s.pan_raw_deg) for tp, s in zip(true_pan, sightings, strict=True)]
    )
    ref = pan_diff[0]
    pan_diff = ref + np.array([_wrap180(d - ref) for d in pan_diff])
    pan_offset = float(np.mean(pan_diff))
    pan_res = pan_diff - pan_offset

    psi = np.radians(np.array(true_pan))
    design = np.column_stack([np.ones_like(psi), np.cos(psi), np.sin(psi)])
    tilt_diff = np.array([tt - s.tilt_raw_deg for tt, s in zip(true_tilt, sightings, strict=True)])
    if np.linalg.cond(design) > _MAX_TILT_CONDITION:
        raise ValueError(
            "landmark azimuths cannot separate tilt offset and pan-axis levelling; "
            "sight landmarks spread around the horizon (>= 90° apart)"
        )
    (tilt_offset, level_a, level_b), *_ = np.linalg.lstsq(design, tilt_diff, rcond=None)
    tilt_res = tilt_diff - design @ np.array([tilt_offset, level_a, level_b])

    residuals = np.concatenate([pan_res, tilt_res])
    rms = float(np.sqrt(np.mean(residuals**2)))
    n = len(sightings)
    sigma: tuple[float, float, float, float] | None = None
    if n > 3:
        # Pan and tilt equations are independent: each block's scatter sets its own
        # parameter errors (pan n − 1 and tilt n − 3 degrees of freedom).
        pan_var = float(np.sum(pan_res**2)) / (n - 1)
        tilt_var = float(np.sum(tilt_res**2)) / (n - 3)
        tilt_cov = tilt_var * np.linalg.inv(design.T @ design)
        sigma = (
            math.sqrt(pan_var / n),
            math.sqrt(float(tilt_cov[0, 0])),
            math.sqrt(float(tilt_cov[1, 1])),
            math.sqrt(float(tilt_cov[2, 2])),
        )
    calibration = PtzCalibration(
        pan_offset_deg=_wrap180(pan_offset),
        tilt_offset_deg=float(tilt_offset),
        level_a_deg=float(level_a),
        level_b_deg=float(level_b),
        roll_deg=roll_deg,
    )
    return CalibrationResult(
        calibration=calibration,
        residual_rms_deg=rms,
        pan_residuals_deg=tuple(float(r) for r in pan_res),
        tilt_residuals_deg=tuple(float(r) for r in tilt_res),
        parameter_sigma_deg=sigma,
        accepted=rms <= accept_rms_deg,
        warnings=tuple(warnings),
    )


def solve_north_offset(
    tower: TowerSite,
    sighting: Sighting,
    *,
    k: float = DEFAULT_REFRACTION_K,
    base: PtzCalibration | None = None,
) -> PtzCalibration:
    """Pan (north) and tilt offsets from one landmark, keeping base's senses, levelling
    and roll.

    The quick field fix after a head was remounted: one surveyed landmark sets
    ψ0 exactly and θ0 given the existing levelling terms.
    """
    base = base if base is not None else PtzCalibration()
    lm = sighting.landmark
    pan, tilt = bearing_elevation_to(tower, lm.lat, lm.lon, lm.height_m, k)
    return PtzCalibration.model_validate(
        base.model_dump()
        | {
            "pan_offset_deg": _wrap180(pan - base.pan_sign * sighting.pan_raw_deg),
            "tilt_offset_deg": tilt
            - base.tilt_sign * sighting.tilt_raw_deg
            - base.levelling_deg(pan),
        }
    )


@dataclass(frozen=True)
class HorizonCheck:
    """Observed versus expected lake-horizon elevation; error > 0 means the head reads high."""

    expected_tilt_deg: float
    observed_tilt_deg: float
    error_deg: float
    ok: bool


def check_horizon(
    observed_tilt_deg: float,
    height_above_surface_m: float,
    *,
    k: float = DEFAULT_REFRACTION_K,
    tolerance_deg: float = 0.05,
) -> HorizonCheck:
    """Coarse tilt check against a lake horizon seen at a calibrated tilt.

    The default tolerance allows for k varying by ±0.3 (±0.03° at 40 m).
    """
    expected = -horizon_dip_deg(height_above_surface_m, k)
    error = observed_tilt_deg - expected
    return HorizonCheck(
        expected_tilt_deg=expected,
        observed_tilt_deg=observed_tilt_deg,
        error_deg=error,
        ok=abs(error) <= tolerance_deg,
    )
