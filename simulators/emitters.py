"""Hot and cold objects in the world as vertical radiating sheets: fires, vehicles, people, sources."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from simulators import scenario as sc


@dataclass(frozen=True)
class Sheet:
    """A vertical rectangle facing the camera, at ground point (x, y), from base_m to base_m + height_m."""

    x_m: float
    y_m: float
    base_m: float
    width_m: float
    height_m: float
    temperature_k: float
    emissivity: float
    hidden_below_m: float = 0.0


@dataclass(frozen=True)
class Thing:
    """One object of the ground truth at an instant, with the sheets that draw it."""

    id: str
    kind: str
    x_m: float
    y_m: float
    sheets: tuple[Sheet, ...]
    bgr: tuple[int, int, int]


def _route_position(
    points: list[tuple[float, float]], distance_m: float, loop: bool
) -> tuple[float, float, float, bool]:
    """(x, y, heading_rad, arrived) after travelling ``distance_m`` along a polyline."""
    seg = [(points[i], points[i + 1]) for i in range(len(points) - 1)]
    lengths = [math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in seg]
    total = sum(lengths)
    if loop and total > 0:
        distance_m %= total
    for (a, b), ln in zip(seg, lengths, strict=True):
        if distance_m <= ln and ln > 0:
            f = distance_m / ln
            return (
                a[0] + f * (b[0] - a[0]),
                a[1] + f * (b[1] - a[1]),
                math.atan2(b[0] - a[0], b[1] - a[1]),
                False,
            )
        distance_m -= ln
    a, b = seg[-1]
    return b[0], b[1], math.atan2(b[0] - a[0], b[1] - a[1]), True


def _projected_width(
    length_m: float, width_m: float, heading_rad: float, x: float, y: float
) -> float:
    """Width a box shows to the tower: side-on its length, head-on its width."""
    los = math.atan2(x, y)
    phi = heading_rad - los
    return abs(length_m * math.sin(phi)) + abs(width_m * math.cos(phi))


_VEHICLE_SIZE = {"car": (4.5, 1.8, 1.5), "truck": (10.0, 2.5, 3.5), "tractor": (4.0, 2.5, 3.0)}
# Exhaust seen from the side, running: (width m, base height m, height m, excess over air K).
# Trucks and tractors have a vertical stack behind the cab; a car a tailpipe and silencer.
_EXHAUST = {
    "car": (0.6, 0.2, 0.25, 120.0),
    "truck": (0.25, 2.2, 1.5, 170.0),
    "tractor": (0.15, 2.0, 1.0, 180.0),
}


def fire_things(
    f: sc.Fire, x: float, y: float, t_rel_s: float, seed: int, wind_to_rad: float
) -> Thing | None:
    """A fire at ``t_rel_s`` after the scenario start: growing front, flicker, downwind drift."""
    if t_rel_s < f.start_s or (f.stop_s is not None and t_rel_s >= f.stop_s):
        return None
    age_s = t_rel_s - f.start_s
    width = f.size_m + f.spread_m_per_min * age_s / 60.0
    if f.max_size_m is not None:
        width = min(width, f.max_size_m)
    # The front advances downwind at half its widening rate.
    drift = 0.5 * (width - f.size_m)
    cx = x + drift * math.sin(wind_to_rad)
    cy = y + drift * math.cos(wind_to_rad)
    # Flame pulsation f ≈ 1.5·D^−½ Hz (Cetegen & Ahmed 1993) plus a slower turbulent swing.
    freq = 1.5 / math.sqrt(max(width, 0.1))
    phase = (zlib.crc32(f"{seed}:{f.id}".encode()) % 1000) / 1000.0 * 2 * math.pi
    flicker = (
        1.0
        + 0.15 * math.sin(2 * math.pi * freq * t_rel_s + phase)
        + 0.07 * math.sin(2 * math.pi * 0.23 * t_rel_s + 2 * phase)
    )
    height = width * f.flame_height_ratio * flicker
    sheet = Sheet(cx, cy, 0.0, width, height, f.temperature_k, f.emissivity, f.occluded_below_m)
    sheets = [sheet]
    if f.occluded_below_m > 0:
        # The canopy over a hidden fire warms: a faint extended patch, not a flame.
        sheets.append(Sheet(cx, cy, 0.0, width * 2.0, f.occluded_below_m, 0.0, 0.0))
    return Thing(f.id, "fire", cx, cy, tuple(sheets), (40, 140, 255))


def canopy_warming(thing: Thing, air_k: float) -> Thing:
    """Give a hidden fire's canopy patch its temperature (a few kelvin over the air)."""
    sheets = tuple(
        Sheet(s.x_m, s.y_m, s.base_m, s.width_m, s.height_m, air_k + 6.0, 0.95)
        if s.emissivity == 0.0
        else s
        for s in thing.sheets
    )
    return Thing(thing.id, thing.kind, thing.x_m, thing.y_m, sheets, thing.bgr)


def vehicle_thing(
    v: sc.Vehicle,
    route: list[tuple[float, float]],
    t_rel_s: float,
    air_k: float,
    sun_forcing: float,
) -> Thing | None:
    if t_rel_s < v.start_s:
        return None
    travelled = (t_rel_s - v.start_s) * v.speed_kmh / 3.6
    x, y, heading, arrived = _route_position(route, travelled, v.loop)
    length = sum(
        math.hypot(route[i + 1][0] - route[i][0], route[i + 1][1] - route[i][1])
        for i in range(len(route) - 1)
    )
    engine_dk = v.engine_delta_k
    if arrived:
        parked_s = t_rel_s - v.start_s - length / (v.speed_kmh / 3.6)
        if parked_s > v.park_s:
            return None
        engine_dk = v.engine_delta_k * math.exp(-parked_s / v.cooling_tau_s)
    ln, wd, ht = _VEHICLE_SIZE[v.kind]
    seen_w = _projected_width(ln, wd, heading, x, y)
    running = engine_dk / v.engine_delta_k if v.engine_delta_k > 0 else 0.0
    # Painted sheet metal in the sun runs 15–25 K over the air; the engine warms the body a little.
    body = Sheet(
        x, y, 0.3, seen_w, ht - 0.3, air_k + 3.0 + 20.0 * sun_forcing + 0.2 * engine_dk, 0.9
    )
    engine = Sheet(x, y, 0.4, min(seen_w, 1.5), 0.9, air_k + engine_dk, 0.9)
    # The exhaust is the hottest part (150–250 °C on a running diesel's stack or tailpipe):
    # small, so at a few km it is a compact 10–30 K hot spot on the warm body.
    ex_w, ex_base, ex_h, ex_dk = _EXHAUST[v.kind]
    exhaust = Sheet(x, y, ex_base, ex_w, ex_h, air_k + ex_dk * running, 0.9)
    return Thing(v.id, "vehicle", x, y, (body, engine, exhaust), (60, 60, 70))


def person_thing(
    p: sc.Person, route: list[tuple[float, float]], t_rel_s: float, air_k: float
) -> Thing | None:
    if t_rel_s < p.start_s:
        return None
    x, y, _, arrived = _route_position(route, (t_rel_s - p.start_s) * p.speed_kmh / 3.6, p.loop)
    # Clothed body: about 305 K in mild air, never below the air.
    skin = max(air_k + 2.0, 0.5 * (air_k + 310.0))
    return Thing(p.id, "person", x, y, (Sheet(x, y, 0.0, 0.5, 1.75, skin, 0.95),), (80, 50, 120))


def source_thing(
    s: sc.KnownSource,
    x: float,
    y: float,
    end: tuple[float, float] | None,
    t_rel_s: float,
    air_k: float,
) -> Thing:
    kind = s.kind
    sheets: tuple[Sheet, ...]
    if kind == "flare":
        flame_k = s.temperature_k or 1300.0
        wobble = (
            1.0
            + 0.2 * math.sin(2 * math.pi * 0.8 * t_rel_s)
            + 0.1 * math.sin(2 * math.pi * 2.3 * t_rel_s)
        )
        sheets = (
            Sheet(x, y, 0.0, 1.0, s.height_m, air_k + 5.0, 0.9),
            Sheet(x, y, s.height_m, 2.0, 5.0 * wobble, flame_k, 0.3),
        )
        bgr = (30, 160, 255)
    elif kind == "chimney":
        top_k = s.temperature_k or 420.0
        sheets = (
            Sheet(x, y, 0.0, 2.5, s.height_m * 0.85, air_k + 6.0, 0.9),
            Sheet(x, y, s.height_m * 0.85, 2.5, s.height_m * 0.15, top_k, 0.9),
        )
        bgr = (90, 90, 110)
    elif kind == "pipeline" and end is not None:
        pipe_k = s.temperature_k or 345.0
        n = 40
        xs = np.linspace(x, end[0], n + 1)
        ys = np.linspace(y, end[1], n + 1)
        heading = math.atan2(end[0] - x, end[1] - y)
        seg_len = math.hypot(end[0] - x, end[1] - y) / n
        sheets = tuple(
            Sheet(
                float((xs[i] + xs[i + 1]) / 2),
                float((ys[i] + ys[i + 1]) / 2),
                max(0.0, s.height_m - 0.3),
                _projected_width(seg_len, 0.6, heading, float(xs[i]), float(ys[i])),
                0.6,
                pipe_k,
                0.9,
            )
            for i in range(n)
        )
        bgr = (120, 130, 140)
    elif kind == "pumping_unit":
        motor_k = s.temperature_k or air_k + 25.0
        # The walking beam nods every ~8 s: its hot gearbox and head rise and fall.
        nod = 0.5 * (1.0 + math.sin(2 * math.pi * t_rel_s / 8.0))
        sheets = (
            Sheet(x, y, 0.0, 6.0, 1.5, motor_k, 0.9),
            Sheet(x, y, 3.0 + 1.5 * nod, 4.0, 1.0, air_k + 8.0, 0.9),
        )
        bgr = (40, 90, 140)
    else:
        hot_k = s.temperature_k or air_k + 40.0
        sheets = (Sheet(x, y, 0.0, 2.0 * s.radius_m, max(1.0, s.height_m), hot_k, 0.9),)
        bgr = (100, 100, 100)
    return Thing(s.name, kind, x, y, sheets, bgr)


def building_thing(
    b: sc.Building, name: str, x: float, y: float, air_k: float, sun_forcing: float, night: float
) -> Thing:
    # A heated house leaks heat through its walls at night; the sun warms them by day.
    wall_k = air_k + 10.0 * sun_forcing + (5.0 * night if b.heated else 0.0)
    return Thing(
        name,
        "building",
        x,
        y,
        (Sheet(x, y, 0.0, b.width_m, b.height_m, wall_k, 0.92),),
        (140, 150, 170),
    )


def panel_thing(
    p: sc.SolarPanels, name: str, x: float, y: float, air_k: float, sun_forcing: float
) -> Thing:
    # Dark glass over silicon absorbs most sunlight: panels run 20–30 K over the air at noon.
    return Thing(
        name,
        "solar_panel",
        x,
        y,
        (Sheet(x, y, 0.3, p.width_m, p.height_m, air_k + 26.0 * sun_forcing - 2.0, 0.85),),
        (90, 40, 30),
    )


# Sun-heated standing objects: (solar gain K over air under an overhead sun, clear-night
# excess K, emissivity). Boulders store heat; painted metal and car bodies run hottest.
_SUNLIT = {
    "rock": (24.0, 1.0, 0.92),
    "metal": (32.0, -3.0, 0.9),
    "shed": (22.0, -1.0, 0.92),
    "car": (28.0, -2.0, 0.9),
}


def sunlit_object_thing(
    o: sc.SunlitObject,
    name: str,
    x: float,
    y: float,
    air_k: float,
    sun_forcing: float,
    night: float,
) -> Thing:
    """A boulder, a parked car with a cold engine, a shed or machinery heated by the sun."""
    gain, night_k, eps = _SUNLIT[o.kind]
    temp = air_k + gain * sun_forcing + night_k * night
    return Thing(
        name,
        "sunlit_object",
        x,
        y,
        (Sheet(x, y, 0.0, o.width_m, o.height_m, temp, eps),),
        (110, 120, 130),
    )
