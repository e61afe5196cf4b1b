"""Which alarms of different towers are one fire: rays that cross inside each range interval.

Pure: observations in, clusters out. Candidate pairs are found all at once in one frame
over the whole county, then checked exactly in a frame of their own; pairs
join greedily, best first, and a cluster of three or more (or one with ranges) must also
pass a 99 % χ² gate on the fused fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hub.fusion import (
    RANGE_GATE_MARGIN_FRACTION,
    Fix,
    LocalFrame,
    Observation,
    chi2_quantile_99,
    crossing,
    rays_in,
    triangulate,
)


@dataclass(frozen=True)
class AssociationSettings:
    window_s: float = 900.0
    default_max_range_m: float = 40_000.0


def _within(distance_m: float, obs: Observation, settings: AssociationSettings) -> bool:
    low, high = obs.range_interval_m(settings.default_max_range_m)
    margin = RANGE_GATE_MARGIN_FRACTION * high
    return low - margin <= distance_m <= high + margin


def pair_gate(a: Observation, b: Observation, settings: AssociationSettings) -> float | None:
    """A score (lower is better) when the two rays can be one fire, else None."""
    if a.tower_id == b.tower_id or a.test != b.test:
        return None
    dt_s = abs(a.time_s - b.time_s)
    if dt_s > settings.window_s:
        return None
    frame = LocalFrame.around([a, b])
    ray_a, ray_b = rays_in(frame, [a, b])
    cross = crossing(ray_a, ray_b)
    if cross is None or cross[0] <= 0.0 or cross[1] <= 0.0:
        return None
    if not (_within(cross[0], a, settings) and _within(cross[1], b, settings)):
        return None
    # Where each tower itself put the fire along its ray (even a loose flat-earth range)
    # ranks a true crossing above a ghost crossing of two other fires' rays.
    chi2 = sum(
        ((t - o.range_m) / o.range_sigma_m) ** 2
        for t, o in ((cross[0], a), (cross[1], b))
        if o.range_m is not None and math.isfinite(o.range_sigma_m)
    )
    if a.constrains_range or b.constrains_range:
        fix = triangulate([a, b])
        if fix is None or fix.chi2 > chi2_quantile_99(fix.dof):
            return None
        chi2 += fix.chi2
    return chi2 + dt_s / settings.window_s


def cluster_consistent(members: Sequence[Observation], settings: AssociationSettings) -> bool:
    if len({m.tower_id for m in members}) != len(members):
        return False
    fix = triangulate(members)
    if fix is None or fix.chi2 > chi2_quantile_99(fix.dof):
        return False
    frame = fix.frame
    for m in members:
        tower = frame.local_of(m.tower_lat_deg, m.tower_lon_deg)
        distance = math.hypot(fix.local_m[0] - tower[0], fix.local_m[1] - tower[1])
        if not _within(distance, m, settings):
            return False
    return True


def ray_agrees(fix: Fix, obs: Observation) -> bool:
    """Does one more bearing pass through a group's fix (its σ and the fix's covariance)?

    A cheap 1-dof χ² test, so a ghost crossing is turned away before a full re-fit.
    """
    tower = np.array(fix.frame.local_of(obs.tower_lat_deg, obs.tower_lon_deg))
    d = np.asarray(fix.local_m) - tower
    r2 = float(d @ d)
    if r2 <= 0.0:
        return False
    predicted = math.atan2(d[0], d[1])
    measured = fix.frame.azimuth_in_frame_rad(obs.tower_lat_deg, obs.tower_lon_deg, obs.bearing_deg)
    residual = (measured - predicted + math.pi) % (2.0 * math.pi) - math.pi
    jac = np.array([d[1], -d[0]]) / r2
    variance = math.radians(obs.bearing_sigma_deg) ** 2 + float(
        jac @ np.array(fix.covariance_m2) @ jac
    )
    return residual**2 / variance <= chi2_quantile_99(1)


def fixes_agree(a: Fix, b: Fix) -> bool:
    """Can two groups' fixes be one point (2-dof χ² on the sum of their covariances)?"""
    other = np.array(a.frame.local_of(b.lat_deg, b.lon_deg))
    d = other - np.asarray(a.local_m)
    cov = np.array(a.covariance_m2) + np.array(b.covariance_m2)
    return float(d @ np.linalg.solve(cov, d)) <= chi2_quantile_99(2)


def _candidate_pairs(
    observations: Sequence[Observation], settings: AssociationSettings
) -> list[tuple[int, int]]:
    """Pairs whose rays cross inside both (generously widened) intervals, in one county frame.

    All pairs at once with numpy: a tangent plane over a whole province bends distances by
    metres, far below the margins here; survivors are checked exactly in their own frame.
    """
    n = len(observations)
    if n < 2:
        return []
    frame = LocalFrame.around(observations)
    rays = rays_in(frame, observations)
    origin = np.array([r.origin_m for r in rays]).reshape(n, 2)
    direction = np.array([r.direction for r in rays]).reshape(n, 2)
    intervals = np.array([o.range_interval_m(settings.default_max_range_m) for o in observations])
    slack = 2.0 * RANGE_GATE_MARGIN_FRACTION * intervals[:, 1] + 1000.0
    low, high = intervals[:, 0] - slack, intervals[:, 1] + slack
    times = np.array([o.time_s for o in observations])
    towers = np.array([o.tower_id for o in observations])
    tests = np.array([o.test for o in observations])
    i, j = np.triu_indices(n, k=1)
    keep = (towers[i] != towers[j]) & (tests[i] == tests[j])
    keep &= np.abs(times[i] - times[j]) <= settings.window_s
    i, j = i[keep], j[keep]
    da, db = direction[i], direction[j]
    det = -da[:, 0] * db[:, 1] + da[:, 1] * db[:, 0]
    rhs = origin[j] - origin[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_a = (-rhs[:, 0] * db[:, 1] + rhs[:, 1] * db[:, 0]) / det
        t_b = (da[:, 0] * rhs[:, 1] - da[:, 1] * rhs[:, 0]) / det
    ok = np.abs(det) > 1e-9
    ok &= (t_a >= low[i]) & (t_a <= high[i]) & (t_b >= low[j]) & (t_b <= high[j])
    ok &= (t_a > 0.0) & (t_b > 0.0)
    return [(int(a), int(b)) for a, b in zip(i[ok], j[ok], strict=True)]


def associate(
    observations: Sequence[Observation], settings: AssociationSettings
) -> list[list[Observation]]:
    """Group observations into fires; every observation ends in exactly one group."""
    scored = []
    for i, j in _candidate_pairs(observations, settings):
        score = pair_gate(observations[i], observations[j], settings)
        if score is not None:
            scored.append((score, i, j))
    scored.sort()
    group_of = list(range(len(observations)))
    groups: dict[int, list[int]] = {i: [i] for i in range(len(observations))}
    fixes: dict[int, Fix | None] = {}
    for _, i, j in scored:
        gi, gj = group_of[i], group_of[j]
        if gi == gj:
            continue
        merged = groups[gi] + groups[gj]
        members = [observations[k] for k in merged]
        if len(merged) > 2:
            towers = [observations[k].tower_id for k in merged]
            if len(set(towers)) != len(towers):
                continue
            for g in (gi, gj):
                if g not in fixes and len(groups[g]) >= 2:
                    fixes[g] = triangulate([observations[k] for k in groups[g]])
            big, small = (gi, gj) if len(groups[gi]) >= len(groups[gj]) else (gj, gi)
            fix_big, fix_small = fixes.get(big), fixes.get(small)
            if fix_big is None:
                continue
            if len(groups[small]) == 1:
                if not ray_agrees(fix_big, observations[groups[small][0]]):
                    continue
            elif fix_small is None or not fixes_agree(fix_big, fix_small):
                continue
            if not cluster_consistent(members, settings):
                continue
        fixes.pop(gi, None)
        fixes.pop(gj, None)
        for k in groups[gj]:
            group_of[k] = gi
        groups[gi] = merged
        del groups[gj]
    out = [
        sorted((observations[k] for k in ks), key=lambda o: (o.time_s, o.key))
        for ks in groups.values()
    ]
    out.sort(key=lambda g: (g[0].time_s, g[0].key))
    return out


def poor_geometry(angle_deg: float, min_deg: float, max_deg: float) -> bool:
    return not (min_deg <= angle_deg <= max_deg) or math.isnan(angle_deg)
