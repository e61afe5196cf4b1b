"""`towerwatch linkbudget`: can the configured camera see the mission fires in today's air?"""

from __future__ import annotations

import click

from detectors.radiometry import (
    Atmosphere,
    Optics,
    case_c_effective_area_m2,
    link_budget,
    max_detectable_range_m,
)
from edge.cli_support import config_options, load_or_exit

# Single-look detection criterion at the worst sub-pixel position (algorithms.md §1).
DAY_CRITERION_K = 10.0
NIGHT_CRITERION_K = 6.0
REFERENCE_AIR = (
    ("dry 10 °C/50 %", Atmosphere(10.0, 50.0)),
    ("temperate 20 °C/60 %", Atmosphere(20.0, 60.0)),
    ("humid 25 °C/60 %", Atmosphere(25.0, 60.0)),
)


@click.command("linkbudget")
@config_options
def command(config: str, sets: tuple[str, ...]) -> None:
    """Print ΔT_app of each mission fire (Case C: flame W × W/2, ε 0.5, 1000 K) per atmosphere."""
    cfg = load_or_exit(config, sets)
    cam = cfg.camera
    w = cfg.weather
    optics = Optics(
        cam.pixel_pitch_um, cam.focal_length_mm, cam.f_number, cam.lens_efficiency, cam.netd_mk
    )
    today = Atmosphere(w.air_temp_c, w.relative_humidity_pct, w.visibility_km, w.pressure_hpa)
    atmospheres: tuple[tuple[str, Atmosphere], ...] = (
        (
            "today " + f"{w.air_temp_c:g} °C/{w.relative_humidity_pct:g} %/{w.visibility_km:g} km",
            today,
        ),
    )
    atmospheres += REFERENCE_AIR
    click.echo(
        f"camera {cam.width_px}x{cam.height_px}, {cam.pixel_pitch_um:g} µm, {cam.focal_length_mm:g} mm "
        f"f/{cam.f_number:g}: IFOV {optics.ifov_mrad:.3f} mrad, FOV {cam.hfov_deg:.2f}° x {cam.vfov_deg:.2f}°, "
        f"lens efficiency {cam.lens_efficiency:g}, NETD {cam.netd_mk:g} mK"
    )
    header = f"{'fire':<14}{'air':<34}{'tau':>7}{'dT worst':>10}{'dT mean':>9}{'day 10K':>9}{'night 6K':>10}{'max range day/night':>22}"
    click.echo(header)
    click.echo("-" * len(header))
    for fire in cfg.coverage.mission_fires:
        area = case_c_effective_area_m2(fire.size_m)
        label = f"{fire.size_m:g} m @ {fire.range_m / 1000:g} km"
        for name, atm in atmospheres:
            lb = link_budget(optics, atm, area, fire.range_m)
            day = "ok" if lb.delta_t_worst_k >= DAY_CRITERION_K else "FAIL"
            night = "ok" if lb.delta_t_worst_k >= NIGHT_CRITERION_K else "FAIL"
            r_day = max_detectable_range_m(optics, atm, area, DAY_CRITERION_K)
            r_night = max_detectable_range_m(optics, atm, area, NIGHT_CRITERION_K)
            click.echo(
                f"{label:<14}{name:<34}{lb.transmittance:>7.3f}{lb.delta_t_worst_k:>9.1f}K{lb.delta_t_mean_k:>8.1f}K"
                f"{day:>9}{night:>10}{r_day / 1000:>13.1f} / {r_night / 1000:.1f} km"
            )
    click.echo(f"required range {cfg.coverage.required_range_m / 1000:g} km")
