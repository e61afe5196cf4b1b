"""`towerwatch linkbudget`: can the configured camera see the mission fires in today's air?"""

from __future__ import annotations

import math
from typing import Any

import click

from detectors.geometry import CRITERION_DAY_K, CRITERION_NIGHT_K
from detectors.radiometry import (
    Atmosphere,
    Optics,
    case_c_effective_area_m2,
    link_budget,
    max_detectable_range_m,
)
from edge.cli_support import (
    EXIT_FAILURE,
    config_options,
    echo_json,
    json_option,
    load_or_exit,
)
from edge.coverage import horizon_m

# Single-look detection criterion at the worst sub-pixel position (docs/physics/link-budget.md).
REFERENCE_AIR = (
    ("dry 10 °C/50 %", Atmosphere(10.0, 50.0)),
    ("temperate 20 °C/60 %", Atmosphere(20.0, 60.0)),
    ("humid 25 °C/60 %", Atmosphere(25.0, 60.0)),
)


def _km(range_m: float) -> str:
    return "inf" if math.isinf(range_m) else f"{range_m / 1000:.1f}"


@click.command("linkbudget")
@config_options
@json_option
def command(config: str, sets: tuple[str, ...], as_json: bool) -> None:
    """ΔT_app of each mission fire (Case C: flame W × W/2, ε 0.5, 1000 K) per atmosphere.

    Ranges are capped at the ground horizon of the mast. Exit 1 when a mission fire
    fails in today's air (by the day criterion, or beyond the horizon); the reference
    atmospheres are for comparison and do not change the exit code.
    """
    cfg = load_or_exit(config, sets)
    cam = cfg.camera
    w = cfg.weather
    optics = Optics(
        cam.pixel_pitch_um, cam.focal_length_mm, cam.f_number, cam.lens_efficiency, cam.netd_mk
    )
    horizon = horizon_m(cfg.tower.mast_height_m, cfg.geolocation.refraction_k)
    today = Atmosphere(w.air_temp_c, w.relative_humidity_pct, w.visibility_km, w.pressure_hpa)
    today_label = f"today {w.air_temp_c:g} °C/{w.relative_humidity_pct:g} %/{w.visibility_km:g} km"
    atmospheres: tuple[tuple[str, Atmosphere], ...] = ((today_label, today), *REFERENCE_AIR)
    rows: list[dict[str, Any]] = []
    for fire in cfg.coverage.mission_fires:
        area = case_c_effective_area_m2(fire.size_m)
        for index, (name, atm) in enumerate(atmospheres):
            lb = link_budget(optics, atm, area, fire.range_m)
            in_view = fire.range_m <= horizon
            r_day = min(max_detectable_range_m(optics, atm, area, CRITERION_DAY_K), horizon)
            r_night = min(max_detectable_range_m(optics, atm, area, CRITERION_NIGHT_K), horizon)
            rows.append(
                {
                    "fire_size_m": fire.size_m,
                    "fire_range_m": fire.range_m,
                    "air": name,
                    "today": index == 0,
                    "transmittance": lb.transmittance,
                    "delta_t_worst_k": lb.delta_t_worst_k,
                    "delta_t_mean_k": lb.delta_t_mean_k,
                    "day_ok": in_view and lb.delta_t_worst_k >= CRITERION_DAY_K,
                    "night_ok": in_view and lb.delta_t_worst_k >= CRITERION_NIGHT_K,
                    "beyond_horizon": not in_view,
                    "max_range_day_m": r_day,
                    "max_range_night_m": r_night,
                }
            )
    failed = [r for r in rows if r["today"] and not r["day_ok"]]
    required_beyond_horizon = cfg.coverage.required_range_m > horizon
    if as_json:
        echo_json(
            {
                "camera": {
                    "width_px": cam.width_px,
                    "height_px": cam.height_px,
                    "pixel_pitch_um": cam.pixel_pitch_um,
                    "focal_length_mm": cam.focal_length_mm,
                    "f_number": cam.f_number,
                    "ifov_mrad": optics.ifov_mrad,
                    "hfov_deg": cam.hfov_deg,
                    "vfov_deg": cam.vfov_deg,
                },
                "criteria_k": {"day": CRITERION_DAY_K, "night": CRITERION_NIGHT_K},
                "horizon_m": None if math.isinf(horizon) else horizon,
                "required_range_m": cfg.coverage.required_range_m,
                "rows": rows,
                "required_range_beyond_horizon": required_beyond_horizon,
                "ok": not failed and not required_beyond_horizon,
            }
        )
    else:
        _print_table(cfg, optics, horizon, rows)
        if failed:
            names = ", ".join(
                f"{r['fire_size_m']:g} m @ {r['fire_range_m'] / 1000:g} km" for r in failed
            )
            click.echo(f"FAIL in today's air (day criterion {CRITERION_DAY_K:g} K): {names}")
        if required_beyond_horizon:
            click.echo(
                f"FAIL: required range {cfg.coverage.required_range_m / 1000:g} km lies beyond "
                f"the horizon ({_km(horizon)} km)"
            )
        if not failed and not required_beyond_horizon:
            click.echo("ok: every mission fire is detectable in today's air")
    if failed or required_beyond_horizon:
        raise SystemExit(EXIT_FAILURE)


def _print_table(cfg: Any, optics: Optics, horizon: float, rows: list[dict[str, Any]]) -> None:
    cam = cfg.camera
    click.echo(
        f"camera {cam.width_px}x{cam.height_px}, {cam.pixel_pitch_um:g} µm, {cam.focal_length_mm:g} mm "
        f"f/{cam.f_number:g}: IFOV {optics.ifov_mrad:.3f} mrad, FOV {cam.hfov_deg:.2f}° x {cam.vfov_deg:.2f}°, "
        f"lens efficiency {cam.lens_efficiency:g}, NETD {cam.netd_mk:g} mK"
    )
    click.echo(
        f"horizon {_km(horizon)} km (mast {cfg.tower.mast_height_m:g} m, "
        f"refraction k {cfg.geolocation.refraction_k:g}); ranges below are capped there"
    )
    header = f"{'fire':<14}{'air':<34}{'tau':>7}{'dT worst':>10}{'dT mean':>9}{'day 10K':>9}{'night 6K':>10}{'max range day/night':>22}"
    click.echo(header)
    click.echo("-" * len(header))
    for r in rows:
        label = f"{r['fire_size_m']:g} m @ {r['fire_range_m'] / 1000:g} km"
        day = "ok" if r["day_ok"] else ("HORIZON" if r["beyond_horizon"] else "FAIL")
        night = "ok" if r["night_ok"] else ("HORIZON" if r["beyond_horizon"] else "FAIL")
        click.echo(
            f"{label:<14}{r['air']:<34}{r['transmittance']:>7.3f}{r['delta_t_worst_k']:>9.1f}K"
            f"{r['delta_t_mean_k']:>8.1f}K{day:>9}{night:>10}"
            f"{_km(r['max_range_day_m']):>13} / {_km(r['max_range_night_m'])} km"
        )
    click.echo(f"required range {cfg.coverage.required_range_m / 1000:g} km")
