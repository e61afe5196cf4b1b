"""Detection quality over the scenario set: detection rate, time to candidate, false candidates, reasons."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.pipeline import AngularSource, DetectionParams, pixel_to_pan_tilt
from drivers.recording import open_recording
from edge.replay import ReplaySetup, decisions_of
from simulators.recording import record_scenario

SCENARIO_DIR = Path(__file__).parent / "scenarios"
MATCH_RADIUS_PX = 3.0  # a candidate this close to a true fire's pixel is that fire
# Scenarios whose fires must be found (≥ 99 %) and those that must stay silent.
MISSION = {"mission-2m-10km", "mission-6m-20km"}


@dataclass
class Tally:
    trials: int = 0
    fire_trials: int = 0
    detected: int = 0
    frames_to_candidate: list[int] = field(default_factory=list)
    seconds_to_candidate: list[float] = field(default_factory=list)
    false_candidates: int = 0
    recorded_s: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)


def known_sources_of(
    truth_lines: list[dict[str, Any]],
    meta_w: int,
    meta_h: int,
    poses: list[tuple[float, float, float]],
) -> tuple[AngularSource, ...]:
    """Flare stacks and other known sources, taken from the truth as the commissioning map."""
    out: dict[str, AngularSource] = {}
    for line, pose in zip(truth_lines, poses, strict=True):
        for obj in line["objects"]:
            if (
                obj.get("kind") in {"flare", "known_source", "chimney", "pipeline"}
                and obj["id"] not in out
            ):
                pan, tilt = pixel_to_pan_tilt(
                    obj["x"], obj["y"], pose[0], pose[1], pose[2], meta_w, meta_h
                )
                out[obj["id"]] = AngularSource(obj["id"], pan, tilt, radius_deg=0.05)
    return tuple(out.values())


def run_trial(scenario: Path, seed: int, duration_s: float, fps: float, tally: Tally) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rec"
        record_scenario(scenario, out, duration_s=duration_s, fps=fps, seed=seed)
        recording = open_recording(out)
        truth = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]
        cam = recording.meta.camera
        poses = [(f.pan_deg, f.tilt_deg, f.hfov_deg) for f in recording.frames]
        sources = known_sources_of(truth, cam.width, cam.height, poses)
        setup = ReplaySetup(DetectionParams(), sources, -3.0, None)
        decisions = list(decisions_of(recording, setup))
    tally.trials += 1
    tally.recorded_s += len(truth) / fps
    fires = {}
    for line in truth:
        for obj in line["objects"]:
            if obj.get("kind") == "fire" and obj.get("visible", True) and obj["id"] not in fires:
                fires[obj["id"]] = line["frame"]
    if fires:
        tally.fire_trials += 1
    found_at: int | None = None
    for d in decisions:
        if d.event == "rejected":
            tally.reasons[d.reason or "?"] += 1
            continue
        line = truth[d.frame]
        near_fire = any(
            obj.get("kind") == "fire"
            and math.hypot(obj["x"] - d.x, obj["y"] - d.y) <= MATCH_RADIUS_PX
            for obj in line["objects"]
        )
        if near_fire:
            if found_at is None:
                found_at = d.frame
        else:
            tally.false_candidates += 1
    if fires and found_at is not None:
        tally.detected += 1
        first = min(fires.values())
        tally.frames_to_candidate.append(found_at - first)
        tally.seconds_to_candidate.append((found_at - first) / fps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 seed per scenario")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per trial")
    parser.add_argument("--fps", type=float, default=9.0)
    parser.add_argument("--only", nargs="*", help="scenario names to run")
    args = parser.parse_args()
    seeds = 1 if args.quick else args.seeds
    duration = args.duration
    paths = sorted(SCENARIO_DIR.glob("*.yaml"))
    if args.only:
        paths = [p for p in paths if p.stem in set(args.only)]
    total = Tally()
    started = time.perf_counter()
    header = f"{'scenario':22} {'trials':>6} {'det.rate':>8} {'frames':>6} {'sec':>6} {'false/h':>8}  reasons"
    print(header)
    print("-" * len(header))
    for path in paths:
        tally = Tally()
        for seed in range(seeds):
            run_trial(path, seed + 1, duration, args.fps, tally)
        rate = f"{100 * tally.detected / tally.fire_trials:.0f}%" if tally.fire_trials else "-"
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
        per_hour = tally.false_candidates / (tally.recorded_s / 3600.0)
        reasons = ", ".join(f"{k}:{v}" for k, v in tally.reasons.most_common())
        print(
            f"{path.stem:22} {tally.trials:6d} {rate:>8} {frames:>6} {secs:>6} {per_hour:8.0f}  {reasons}"
        )
        total.trials += tally.trials
        total.fire_trials += tally.fire_trials
        total.detected += tally.detected
        total.false_candidates += tally.false_candidates
        total.recorded_s += tally.recorded_s
        total.reasons.update(tally.reasons)
    rate = f"{100 * total.detected / total.fire_trials:.0f}%" if total.fire_trials else "-"
    print("-" * len(header))
    print(
        f"{'total':22} {total.trials:6d} {rate:>8} {'':>6} {'':>6} "
        f"{total.false_candidates / (total.recorded_s / 3600.0):8.0f}  "
        f"({total.false_candidates} false candidates in {total.recorded_s:.0f} s, "
        f"{time.perf_counter() - started:.0f} s wall)"
    )


if __name__ == "__main__":
    main()
