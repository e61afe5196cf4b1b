"""A swaying mast moves the whole scene: a static fire stays a fire, a moving car a car.

At a 75 mm lens one pixel is 0.009°. A 40 m lattice mast bending in the wind turns the
line of sight by a few hundredths of a degree at its first mode (about 1 Hz), so a fire
at 10 km wanders by two pixels and more between frames. The simulated world turns the
line of sight (``SimWorld.render(..., sway_deg=...)``); the thermal stage measures the
scene's shift from the frame itself (detectors.registration).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.geometry import horizon_dip_deg
from detectors.pipeline import Decision, DetectionParams, FramePipeline
from detectors.registration import VerticalRegistration
from detectors.solar import sun_position
from simulators.scenario import load_scenario
from simulators.world import SimWorld

FPS = 5.0
SWAY_PERIOD_S = 1.1  # first bending mode of a 40 m lattice mast
SWAY_TILT_DEG = 0.02  # ≈ 2 px at the 75 mm lens
JITTER_DEG = 0.002  # the head's gears and servo, per frame


def tilt_sway_deg(t: float, rng: np.random.Generator) -> float:
    return SWAY_TILT_DEG * math.sin(2.0 * math.pi * t / SWAY_PERIOD_S) + rng.normal(0.0, JITTER_DEG)


def run_visits(scenario: str, sway: bool, *, seconds: float = 12.0, seed: int = 4) -> list[Decision]:
    """One visit at the scenario's main event, frames at FPS, the line of sight swaying."""
    scn = load_scenario(f"benchmarks/scenarios/{scenario}.yaml")
    world = SimWorld(scn, seed=seed)
    pan, tilt = world.main_event_pose()
    pose = world.pose_for(pan, tilt)
    tower = scn.tower
    pipe = FramePipeline(
        DetectionParams(),
        pose.width_px,
        pose.height_px,
        horizon_elevation_deg=-horizon_dip_deg(tower.mast_height_m),
    )
    rng = np.random.default_rng(seed)
    decisions: list[Decision] = []
    t0 = scn.start_unix + 120.0
    t = t0
    for i in range(int(seconds * FPS)):
        t = t0 + i / FPS
        offset = (0.0, tilt_sway_deg(t, rng)) if sway else (0.0, 0.0)
        thermal, _, _ = world.render(pose.pan_deg, pose.tilt_deg, pose.hfov_deg, t, sway_deg=offset)
        sun_az, sun_el = sun_position(t, tower.lat, tower.lon)
        decisions += pipe.process(
            thermal,
            t,
            pose.pan_deg,
            pose.tilt_deg,
            pose.hfov_deg,
            sun_az_deg=sun_az,
            sun_el_deg=sun_el,
            is_day=sun_el > 0.0,
        )
    decisions += pipe.end_visit(t + 1.0 / FPS)
    return decisions


def candidates(decisions: list[Decision]) -> list[Decision]:
    return [d for d in decisions if d.event == "candidate"]


@pytest.mark.parametrize("scenario", ["mission-2m-10km", "smoulder"])
def test_a_static_fire_seen_from_a_swaying_mast_is_a_candidate_not_a_vehicle(
    scenario: str,
) -> None:
    still = candidates(run_visits(scenario, sway=False))
    swaying = run_visits(scenario, sway=True)
    assert [d.reason for d in swaying if d.event == "rejected"] == []
    assert len(still) == 1 and len(candidates(swaying)) == 1
    # its direction is taken at the pose's mean pointing: the sway averages out
    deg_per_px = 5.86 / 640
    assert candidates(swaying)[0].tilt_deg == pytest.approx(still[0].tilt_deg, abs=0.5 * deg_per_px)
    assert candidates(swaying)[0].pan_deg == pytest.approx(still[0].pan_deg, abs=0.5 * deg_per_px)


def test_a_car_seen_from_a_swaying_mast_is_still_a_vehicle_and_the_fire_beside_it_a_fire() -> None:
    decisions = run_visits("traffic-night", sway=True)
    assert [d.reason for d in decisions if d.event == "rejected"] == ["vehicle"]
    assert len(candidates(decisions)) == 1


@pytest.mark.parametrize("scenario", ["mission-2m-10km", "night-6m-20km", "sun-noon", "glint-low-sun"])
def test_the_scene_shift_is_measured_to_a_fraction_of_a_pixel(scenario: str) -> None:
    scn = load_scenario(f"benchmarks/scenarios/{scenario}.yaml")
    world = SimWorld(scn, seed=5)
    pan, tilt = world.main_event_pose()
    pose = world.pose_for(pan, tilt)
    deg_per_px = pose.hfov_deg / pose.width_px
    t0 = scn.start_unix + 200.0
    registration = VerticalRegistration()
    registration.begin(world.render(pan, tilt, None, t0)[0])
    rng = np.random.default_rng(2)
    for i in range(6):
        up_px = float(rng.uniform(-6.0, 6.0))
        frame, _, _ = world.render(pan, tilt, None, t0 + 0.2 * (i + 1), sway_deg=(0.0, up_px * deg_per_px))
        shift = registration.shift_px(frame)
        assert shift is not None
        assert shift == pytest.approx(up_px, abs=0.4)  # turning up moves the scene down


def test_a_hot_thing_crossing_the_view_does_not_drag_the_estimate() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(512, dtype=np.float32)[:, None]
    bands = 285.0 + 4.0 * np.sin(y / 17.0) + np.where(y > 200, 6.0, 0.0)  # ground, dykes, sky
    scene = (bands + rng.normal(0.0, 0.05, (512, 640))).astype(np.float32)
    before, after = scene.copy(), scene.copy()
    before[100:124, 200:240] = 900.0  # a truck close by (0.3 % of the view), far hotter …
    after[106:130, 200:240] = 900.0  # … moving 6 px down the frame while the mast is still
    registration = VerticalRegistration()
    registration.begin(before)
    hot = after
    hot[300:330, :] += 2.0
    assert registration.shift_px(hot) == pytest.approx(0.0, abs=0.5)


def test_a_featureless_frame_gives_no_estimate_rather_than_a_wrong_one() -> None:
    rng = np.random.default_rng(1)
    flat = 290.0 + rng.normal(0.0, 0.05, (512, 640)).astype(np.float32)
    registration = VerticalRegistration()
    registration.begin(flat)
    other = 290.0 + rng.normal(0.0, 0.05, (512, 640)).astype(np.float32)
    assert registration.shift_px(other) is None
    assert registration.failures == 1
