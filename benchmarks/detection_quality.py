"""Detection quality over the scenario set: detection rate, time to candidate, false candidates, reasons.

Each trial renders one scenario in a world drawn from its own seed (layout, sensor
noise, weather within a few kelvin and percent of the scenario's) with the camera
pointed a random fraction of a pixel and up to ±80 px off the scenario's pose, so the
fire lands at a new sub-pixel position each time. A trial is a short patrol: warm-up
visits of the pose before the measured one(s) (the tower has been patrolling: its pose
memory holds a background), then the measured visits. Only the measured visits are
scored; candidates raised in the warm-up (a pose's first visit ever, with no memory)
are shown apart as the cold-start column. Frames are quantised to the 0.01 K of the
radiometric stream and go through the daemon's pipeline with what a commissioned tower
has: the horizon of its 40 m mast, the GIS road map and the known heat sources.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detectors.pipeline import (
    AngularSource,
    Decision,
    DetectionParams,
    FramePipeline,
    ground_range_by_row,
)
from detectors.radiometry import Atmosphere, Optics, link_budget
from detectors.solar import sun_position
from edge.calibration import horizon_dip_deg
from simulators.scenario import Scenario, load_scenario
from simulators.world import SimWorld

SCENARIO_DIR = Path(__file__).parent / "scenarios"
MATCH_RADIUS_PX = 3.0  # a candidate this close to a true fire's pixel is that fire
DAY_SUN_ELEVATION_DEG = -3.0
DAY_CRITERION_K, NIGHT_CRITERION_K = 10.0, 6.0  # docs/physics/link-budget.md single-look criterion
MISSION = ("mission-2m-10km", "mission-6m-20km")


@dataclass(frozen=True)
class Plan:
    """How one trial visits a scenario's pose (times relative to the scenario start)."""

    start_s: float = 0.0  # the first measured visit starts here ...
    start_jitter_s: float = 0.0  # ... plus up to this much (drawn per trial)
    dwell_s: float = 3.0  # each measured visit
    visits: int = 1  # measured visits, revisit_s apart
    revisit_s: float = 120.0  # patrol cycle
    warmup_visits: int = 1  # visits before the first measured one, revisit_s apart
    warmup_dwell_s: float = 1.0


PLANS = {
    "mission-2m-10km": Plan(start_s=1.0),
    "mission-6m-20km": Plan(start_s=1.0),
    "haze-2m-10km": Plan(start_s=1.0),
    "night-6m-20km": Plan(start_s=0.0),
    "smoulder": Plan(start_s=0.0, start_jitter_s=60.0),
    "hidden-by-reed": Plan(start_s=0.0),
    "traffic-noon": Plan(start_jitter_s=15.0, dwell_s=4.0),
    "traffic-night": Plan(start_jitter_s=15.0, dwell_s=4.0),
    "truck-toward-tower": Plan(start_jitter_s=30.0, visits=4, revisit_s=60.0),
    "sun-noon": Plan(start_jitter_s=600.0),
    "glint-low-sun": Plan(start_jitter_s=300.0),
    "flare-stack": Plan(start_jitter_s=60.0),
}


@dataclass
class Tally:
    trials: int = 0
    fire_trials: int = 0
    detected: int = 0
    frames_to_candidate: list[int] = field(default_factory=list)
    seconds_to_candidate: list[float] = field(default_factory=list)
    false_candidates: int = 0
    cold_false: int = 0
    measured_s: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.trials += other.trials
        self.fire_trials += other.fire_trials
        self.detected += other.detected
        self.false_candidates += other.false_candidates
        self.cold_false += other.cold_false
        self.measured_s += other.measured_s
        self.reasons.update(other.reasons)


def varied(scenario: Scenario, rng: np.random.Generator) -> Scenario:
    """The scenario's weather moved a little: ±2 K air, ±8 % RH, wind ×0.6–1.4."""
    w = scenario.weather
    weather = w.model_copy(
        update={
            "air_temp_c": w.air_temp_c + float(rng.uniform(-2.0, 2.0)),
            "relative_humidity_pct": float(
                np.clip(w.relative_humidity_pct + rng.uniform(-8.0, 8.0), 5.0, 100.0)
            ),
            "wind_speed_m_s": w.wind_speed_m_s * float(rng.uniform(0.6, 1.4)),
        }
    )
    return scenario.model_copy(update={"weather": weather})


def patrol_plan(plan: Plan, scenario: Scenario, dwell_s: float) -> Plan:
    """The plan as a patrol of ``dwell_s`` a stop meets it: a fire is already burning when
    the head arrives (a second after the first ignition), and the visit lasts the dwell.
    Scenarios without fires keep their timing."""
    if not scenario.fires:
        return dataclasses.replace(plan, dwell_s=dwell_s)
    burning_s = min(fire.start_s for fire in scenario.fires) + 1.0
    return dataclasses.replace(plan, dwell_s=dwell_s, start_s=max(plan.start_s, burning_s))


def run_trial(
    scenario: Scenario, plan: Plan, trial: int, fps: float, verbose: bool = False
) -> Tally:
    seed = zlib.crc32(f"{scenario.name}:{trial}".encode())
    rng = np.random.default_rng(seed)
    world = SimWorld(varied(scenario, rng), seed=seed % 1_000_000)
    pan0, tilt0 = world.main_event_pose()
    base = world.pose_for(pan0, tilt0, scenario.view.hfov_deg if scenario.view else None)
    deg_per_px = base.hfov_deg / base.width_px
    dx = float(rng.uniform(-80.0, 80.0)) + float(rng.uniform(-0.5, 0.5))
    dy = float(rng.uniform(-20.0, 20.0)) + float(rng.uniform(-0.5, 0.5))
    pose = world.pose_for(pan0 + dx * deg_per_px, tilt0 - dy * deg_per_px, base.hfov_deg)
    tw = scenario.tower
    pipe = FramePipeline(
        DetectionParams(),
        pose.width_px,
        pose.height_px,
        horizon_elevation_deg=-horizon_dip_deg(tw.mast_height_m),
    )
    sources = tuple(AngularSource(*s) for s in world.known_source_directions())
    roads = world.road_mask(pose)
    ground_range = ground_range_by_row(
        pose.tilt_deg, pose.hfov_deg, pose.width_px, pose.height_px, tw.mast_height_m
    )
    start = plan.start_s + float(rng.uniform(0.0, plan.start_jitter_s))
    visits = [
        (start - k * plan.revisit_s, plan.warmup_dwell_s, False)
        for k in range(plan.warmup_visits, 0, -1)
    ] + [(start + k * plan.revisit_s, plan.dwell_s, True) for k in range(plan.visits)]
    tally = Tally(trials=1)
    fire_seen_frame: int | None = None
    found_frame: int | None = None
    frame_no = 0
    for v_start, dwell, measured in visits:
        truth_by_frame: dict[int, list[dict[str, object]]] = {}
        decisions: list[Decision] = []
        t = scenario.start_unix + v_start
        for i in range(max(1, int(round(dwell * fps)))):
            t = scenario.start_unix + v_start + i / fps
            thermal, _, truth = world.render(pose.pan_deg, pose.tilt_deg, pose.hfov_deg, t)
            # the 16-bit radiometric stream carries 0.01 K steps
            thermal = (np.round(thermal * np.float32(100.0)) / np.float32(100.0)).astype(np.float32)
            sun_az, sun_el = sun_position(t, tw.lat, tw.lon)
            got = pipe.process(
                thermal,
                t,
                pose.pan_deg,
                pose.tilt_deg,
                pose.hfov_deg,
                sun_az_deg=sun_az,
                sun_el_deg=sun_el,
                is_day=sun_el > DAY_SUN_ELEVATION_DEG,
                known_sources=sources,
                road_mask=roads,
                ground_range_m=ground_range,
            )
            truth_by_frame[frame_no] = truth  # the pipeline numbers frames the same way
            decisions.extend(got)
            if (
                measured
                and fire_seen_frame is None
                and any(o["kind"] == "fire" and o["visible"] for o in truth)
            ):
                fire_seen_frame = frame_no
            frame_no += 1
        decisions.extend(pipe.end_visit(t + 1.0 / fps, roads))
        if measured:
            tally.measured_s += dwell
        for d in decisions:
            truth = truth_by_frame.get(d.frame, truth_by_frame[max(truth_by_frame)])
            if verbose:
                print(
                    f"    {'M' if measured else 'W'} frame {d.frame:4d} {d.event:9} "
                    f"{d.reason or '':12} x={d.x:6.1f} y={d.y:6.1f} peak={d.peak_k:6.1f} "
                    f"dT={d.delta_t_k:5.1f} area={d.area_px} compact={d.compact}"
                )
            if d.event == "rejected":
                if measured:
                    tally.reasons[d.reason or "?"] += 1
                continue
            near_fire = any(
                o["kind"] == "fire"
                and math.hypot(float(o["x"]) - d.x, float(o["y"]) - d.y)  # type: ignore[arg-type]
                <= MATCH_RADIUS_PX
                for o in truth
            )
            if near_fire and measured:
                if found_frame is None:
                    found_frame = d.frame
            elif not near_fire:
                if measured:
                    tally.false_candidates += 1
                else:
                    tally.cold_false += 1
    if fire_seen_frame is not None:
        tally.fire_trials = 1
        if found_frame is not None:
            tally.detected = 1
            tally.frames_to_candidate.append(found_frame - fire_seen_frame)
            tally.seconds_to_candidate.append((found_frame - fire_seen_frame) / fps)
    return tally


def link_verdict(scenario: Scenario) -> str:
    """The link budget's worst-position ΔT of the scenario's first fire against the criterion."""
    if not scenario.fires:
        return ""
    f = scenario.fires[0]
    cam, w = scenario.camera, scenario.weather
    world = SimWorld(scenario)
    x, y = world.xy(f.at)
    optics = Optics(cam.pixel_pitch_um, cam.focal_length_mm, cam.f_number, cam.lens_efficiency)
    atm = Atmosphere(w.air_temp_c, w.relative_humidity_pct, w.visibility_km, w.pressure_hpa)
    area = f.size_m * f.size_m * f.flame_height_ratio * f.emissivity
    if f.occluded_below_m > 0:
        visible_h = max(0.0, f.size_m * f.flame_height_ratio - f.occluded_below_m)
        area = f.size_m * visible_h * f.emissivity
    lb = link_budget(optics, atm, max(area, 1e-6), math.hypot(x, y), fire_k=f.temperature_k)
    sun_el = sun_position(scenario.start_unix, scenario.tower.lat, scenario.tower.lon)[1]
    need = DAY_CRITERION_K if sun_el > DAY_SUN_ELEVATION_DEG else NIGHT_CRITERION_K
    verdict = "meets" if lb.delta_t_worst_k >= need else "BELOW"
    return f"link budget: worst {lb.delta_t_worst_k:.1f} K, τ {lb.transmittance:.2f} → {verdict} {need:.0f} K"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 mission trials, 2 others")
    parser.add_argument("--mission-trials", type=int, default=100)
    parser.add_argument("--trials", type=int, default=8, help="trials of each other scenario")
    parser.add_argument("--fps", type=float, default=9.0)
    parser.add_argument("--only", nargs="*", help="scenario names to run")
    parser.add_argument(
        "--dwell", type=float, help="seconds of every measured visit, arriving at a fire "
        "already burning (the patrol's dwell_s); default: each scenario's own plan",
    )
    parser.add_argument("--verbose", action="store_true", help="print every decision")
    args = parser.parse_args()
    mission_n = 10 if args.quick else args.mission_trials
    other_n = 2 if args.quick else args.trials
    # county-*.yaml are several towers' scenarios (`simulate county`), not one tower's
    paths = sorted(p for p in SCENARIO_DIR.glob("*.yaml") if not p.stem.startswith("county-"))
    if args.only:
        paths = [p for p in paths if p.stem in set(args.only)]
    total = Tally()
    started = time.perf_counter()
    header = (
        f"{'scenario':20} {'trials':>6} {'det.rate':>8} {'frames':>6} {'sec':>5} "
        f"{'false/h':>7} {'cold':>4}  rejection reasons"
    )
    dwell = f"{args.dwell:g} s" if args.dwell is not None else "each scenario's plan"
    print(f"measured visits: dwell {dwell} at {args.fps:g} fps")
    print(header)
    print("-" * len(header))
    for path in paths:
        scenario = load_scenario(path)
        plan = PLANS.get(path.stem, Plan())
        if args.dwell is not None:
            plan = patrol_plan(plan, scenario, args.dwell)
        n = mission_n if path.stem in MISSION else other_n
        tally = Tally()
        for k in range(n):
            if args.verbose:
                print(f"  trial {k}")
            one = run_trial(scenario, plan, k, args.fps, args.verbose)
            tally.add(one)
            tally.frames_to_candidate += one.frames_to_candidate
            tally.seconds_to_candidate += one.seconds_to_candidate
        rate = f"{100 * tally.detected / tally.fire_trials:.1f}%" if tally.fire_trials else "-"
        frames = (
            f"{statistics.median(tally.frames_to_candidate):.0f}"
            if tally.frames_to_candidate
            else "-"
        )
        secs = (
            f"{statistics.median(tally.seconds_to_candidate):.1f}"
            if tally.seconds_to_candidate
            else "-"
        )
        per_hour = tally.false_candidates / (tally.measured_s / 3600.0)
        reasons = ", ".join(f"{k}:{v}" for k, v in tally.reasons.most_common()) or "none"
        print(
            f"{path.stem:20} {tally.trials:6d} {rate:>8} {frames:>6} {secs:>5} "
            f"{per_hour:7.0f} {tally.cold_false:4d}  {reasons}"
        )
        verdict = link_verdict(scenario)
        if verdict and path.stem not in MISSION:
            print(f"{'':20} {verdict}")
        elif verdict:
            print(f"{'':20} {verdict} ({tally.detected}/{tally.fire_trials} detected)")
        total.add(tally)
    rate = f"{100 * total.detected / total.fire_trials:.1f}%" if total.fire_trials else "-"
    print("-" * len(header))
    print(
        f"{'total':20} {total.trials:6d} {rate:>8} {'':>6} {'':>5} "
        f"{total.false_candidates / (total.measured_s / 3600.0):7.0f} {total.cold_false:4d}  "
        f"{total.false_candidates} false candidates in {total.measured_s:.0f} s measured, "
        f"{total.cold_false} at cold start; {time.perf_counter() - started:.0f} s wall"
    )


if __name__ == "__main__":
    main()
