"""Which alarms of different towers are one fire: rays that cross inside each range interval.

Pure: observations in, clusters out. Candidate pairs are found with a coarse box test
in one frame over the whole county, then checked exactly in a frame of their own; pairs
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
    chi2 = 0.0
    if a.constrains_range or b.constrains_range:
        fix = triangulate([a, b])
        if fix is None or fix.chi2 > chi2_quantile_99(fix.dof):
            return None
        chi2 = fix.chi2
    return chi2 + dt_s / settings.window_s


def cluster_consistent(members: Sequence[Observation], settings: AssociationSettings) -> bool:
    if len({m.tower_id for m in members}) != len(members):
        return False
    fix = triangulate(members)
    if fix is None or fix.chi2 > chi2_quantile_99(fix.dof):
        return False
    frame = fix.frame
    for m in members:
        tower = frame.to_local(m.tower_lat_deg, m.tower_lon_deg)
        distance = float(np.hypot(fix.local_m[0] - tower[0], fix.local_m[1] - tower[1]))
        if not _within(distance, m, settings):
            return False
    return True


def _candidate_pairs(
    observations: Sequence[Observation], settings: AssociationSettings
) -> list[tuple[int, int]]:
    """Pairs whose ray boxes overlap in a county-wide frame (a cheap, generous prefilter)."""
    n = len(observations)
    if n < 2:
        return []
    frame = LocalFrame.around(observations)
    origins = frame.to_local(
        np.array([o.tower_lat_deg for o in observations]),
        np.array([o.tower_lon_deg for o in observations]),
    ).reshape(n, 2)
    far = np.array(
        [o.range_interval_m(settings.default_max_range_m)[1] * 1.2 + 2000.0 for o in observations]
    )
    az = np.radians([o.bearing_deg for o in observations])
    ends = origins + far[:, None] * np.stack([np.sin(az), np.cos(az)], axis=1)
    lo = np.minimum(origins, ends)
    hi = np.maximum(origins, ends)
    times = np.array([o.time_s for o in observations])
    pairs = []
    for i in range(n):
        overlap = np.all((lo[i + 1 :] <= hi[i]) & (hi[i + 1 :] >= lo[i]), axis=1)
        close = np.abs(times[i + 1 :] - times[i]) <= settings.window_s
        for k in np.nonzero(overlap & close)[0]:
            pairs.append((i, i + 1 + int(k)))
    return pairs


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
    for _, i, j in scored:
        gi, gj = group_of[i], group_of[j]
        if gi == gj:
            continue
        merged = groups[gi] + groups[gj]
        members = [observations[k] for k in merged]
        if len(merged) > 2 and not cluster_consistent(members, settings):
            continue
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
