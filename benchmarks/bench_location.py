"""Location benchmark: Monte-Carlo of the hub's triangulation, one, two and three towers.

Two towers about 15 km apart in the Panshan reed wetland and a fire about 10 km from
each; every trial draws each tower's bearing with its stated 1σ noise, fuses them like
the hub does, and checks the truth against the published 95 % ellipse. The single tower
states a bearing wedge over its flat-earth range interval (no point); the third tower
sits south of the baseline. Prints one table; exit 1 when a two-tower target is missed.

    python benchmarks/bench_location.py [--trials 400] [--sigma-deg 0.05] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.geodesy import destination, distance_bearing  # noqa: E402
from hub.fusion import Z_95, Observation, inside_ellipse, triangulate  # noqa: E402

TOWER_A = (41.080, 121.900)
BASELINE_M = 15_000.0
FIRE_RANGE_M = 10_000.0
# The single tower's flat-earth range interval at 10 km (the README's 7–30 km wedge).
SINGLE_RANGE_INTERVAL_M = (7_000.0, 30_000.0)


def layout() -> tuple[list[tuple[float, float]], tuple[float, float]]:
    tower_b = destination(*TOWER_A, 90.0, BASELINE_M)
    # The fire is on the perpendicular bisector, 10 km from both ends of the baseline.
    mid = destination(*TOWER_A, 90.0, BASELINE_M / 2.0)
    offset_m = math.sqrt(FIRE_RANGE_M**2 - (BASELINE_M / 2.0) ** 2)
    fire = destination(*mid, 0.0, offset_m)
    tower_c = destination(*fire, 200.0, FIRE_RANGE_M)
    return [TOWER_A, tower_b, tower_c], fire


def observe(
    towers: list[tuple[float, float]],
    fire: tuple[float, float],
    sigma_deg: float,
    rng: np.random.Generator,
) -> list[Observation]:
    out = []
    for k, (lat, lon) in enumerate(towers):
        distance_m, bearing_deg = distance_bearing(lat, lon, *fire)
        out.append(
            Observation(
                key=f"a{k}",
                tower_id=f"T{k}",
                tower_lat_deg=lat,
                tower_lon_deg=lon,
                bearing_deg=(bearing_deg + rng.normal(0.0, sigma_deg)) % 360.0,
                bearing_sigma_deg=sigma_deg,
                time_s=0.0,
                range_source="earth",
                range_m=distance_m,
                range_min_m=SINGLE_RANGE_INTERVAL_M[0],
                range_max_m=SINGLE_RANGE_INTERVAL_M[1],
            )
        )
    return out


def run(trials: int, sigma_deg: float, seed: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    towers, fire = layout()
    rows: dict[str, dict[str, float]] = {}
    for n_towers in (2, 3):
        inside = 0
        majors: list[float] = []
        errors: list[float] = []
        refused = 0
        for _ in range(trials):
            fix = triangulate(observe(towers[:n_towers], fire, sigma_deg, rng))
            if fix is None:
                refused += 1
                continue
            inside += inside_ellipse(fix, *fire)
            majors.append(fix.ellipse.semi_major_m)
            errors.append(distance_bearing(fix.lat_deg, fix.lon_deg, *fire)[0])
        located = trials - refused
        rows[f"{n_towers} towers"] = {
            "inside_pct": 100.0 * inside / max(located, 1),
            "median_semi_major_m": statistics.median(majors),
            "median_error_m": statistics.median(errors),
            "p95_error_m": float(np.percentile(errors, 95)),
            "refused": refused,
        }
    # One tower: the wedge, ±1.96σ over the range interval; the truth inside it or not.
    wedge_inside = 0
    for _ in range(trials):
        (obs,) = observe(towers[:1], fire, sigma_deg, rng)
        distance_m, bearing_deg = distance_bearing(obs.tower_lat_deg, obs.tower_lon_deg, *fire)
        off_deg = abs((bearing_deg - obs.bearing_deg + 180.0) % 360.0 - 180.0)
        low, high = SINGLE_RANGE_INTERVAL_M
        wedge_inside += off_deg <= Z_95 * sigma_deg and low <= distance_m <= high
    half_rad = math.radians(Z_95 * sigma_deg)
    low, high = SINGLE_RANGE_INTERVAL_M
    rows["1 tower (wedge)"] = {
        "inside_pct": 100.0 * wedge_inside / trials,
        "median_semi_major_m": (high - low) / 2.0,
        "median_error_m": float("nan"),
        "p95_error_m": float("nan"),
        "refused": 0,
        "wedge_area_km2": half_rad * (high**2 - low**2) / 1e6,
    }
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--sigma-deg", type=float, default=0.05, help="1σ bearing noise")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.trials < 200:
        parser.error("--trials: at least 200 for a 95 ± 3 % statement")
    towers, fire = layout()
    ab = distance_bearing(*towers[0], *towers[1])[0]
    print(
        f"towers A-B {ab / 1000:.1f} km apart, fire {FIRE_RANGE_M / 1000:.0f} km from each; "
        f"bearing noise 1σ = {args.sigma_deg}°; {args.trials} trials per row"
    )
    rows = run(args.trials, args.sigma_deg, args.seed)
    print(
        f"{'case':<16} {'truth in 95% area':>18} {'median semi-major':>18} "
        f"{'median error':>13} {'p95 error':>10} {'refused':>8}"
    )
    for name, r in rows.items():
        if "wedge_area_km2" in r:
            low, high = SINGLE_RANGE_INTERVAL_M
            print(
                f"{name:<16} {r['inside_pct']:>17.1f}% {'-':>18} {'-':>13} {'-':>10} {'-':>8}"
                f"   no point: wedge ±{Z_95 * args.sigma_deg:.2f}° × {low / 1000:.0f}-"
                f"{high / 1000:.0f} km = {r['wedge_area_km2']:.2f} km²"
            )
            continue
        print(
            f"{name:<16} {r['inside_pct']:>17.1f}% {r['median_semi_major_m']:>16.1f} m "
            f"{r['median_error_m']:>11.1f} m {r['p95_error_m']:>8.1f} m {r['refused']:>8.0f}"
        )
    two = rows["2 towers"]
    ok = abs(two["inside_pct"] - 95.0) <= 3.0 and two["median_semi_major_m"] <= 30.0
    print(
        "two-tower target (truth inside 95 ± 3 %, median semi-major ≤ 30 m): "
        + ("met" if ok else "MISSED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
