"""`towerwatch calibrate thermal`: the camera's temperatures checked against reference sources.

The frames come from the running daemon through its control socket (``thermal.window``:
the mean of a small window in each of the next N frames), so the camera is never opened
a second time. One reference gives the offset, two at different positions the gain and
offset (edge.thermal_check); exit 1 when a reading is off by more than the tolerance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edge.cli_support import (
    EXIT_FAILURE,
    EXIT_USAGE,
    config_options,
    echo_json,
    fail,
    json_option,
    load_or_exit,
)
from edge.commands.status import call_or_exit, client_for, runtime_dir_option
from edge.thermal_check import ThermalCheck, check, expected_reading_k, reading

# Reference sources a field kit holds: ice bath to a hot blackbody plate.
REFERENCE_MIN_K, REFERENCE_MAX_K = 250.0, 1500.0


@click.command("thermal")
@config_options
@json_option
@runtime_dir_option
@click.option(
    "--reference-k",
    "references_k",
    type=float,
    multiple=True,
    required=True,
    help="Reference temperature in K; give it twice for two references (gain).",
)
@click.option(
    "--emissivity",
    type=float,
    default=0.95,
    show_default=True,
    help="Emissivity of the reference surface(s).",
)
@click.option(
    "--ambient-k",
    type=float,
    default=None,
    help="Temperature of what the reference reflects (default: weather.air_temp_c).",
)
@click.option(
    "--at-u-px",
    "at_u_px",
    type=float,
    multiple=True,
    help="Column of the reference (one per --reference-k; default: the centre).",
)
@click.option("--at-v-px", "at_v_px", type=float, multiple=True, help="... and its row.")
@click.option(
    "--frames",
    type=click.IntRange(1, 200),
    default=25,
    show_default=True,
    help="Frames averaged per reference.",
)
@click.option(
    "--window-px",
    type=click.IntRange(0, 16),
    default=1,
    show_default=True,
    help="Half-width of the averaged window: 1 is 3x3 pixels.",
)
@click.option(
    "--tolerance-k",
    type=click.FloatRange(min=0.0, min_open=True),
    default=2.0,
    show_default=True,
    help="Largest accepted |measured - expected|.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(0.5, 60.0),
    default=20.0,
    show_default=True,
    help="How long to wait for the frames, in seconds.",
)
def command(
    config: str,
    sets: tuple[str, ...],
    as_json: bool,
    runtime_dir: Path | None,
    references_k: tuple[float, ...],
    emissivity: float,
    ambient_k: float | None,
    at_u_px: tuple[float, ...],
    at_v_px: tuple[float, ...],
    frames: int,
    window_px: int,
    tolerance_k: float,
    timeout_s: float,
) -> None:
    """Check measured against reference temperature (offset; gain with two references)."""
    if len(references_k) > 2:
        fail("give --reference-k once (offset) or twice (gain and offset)", EXIT_USAGE)
    for value in references_k:
        if not REFERENCE_MIN_K <= value <= REFERENCE_MAX_K:
            fail(
                f"--reference-k must be {REFERENCE_MIN_K:g}-{REFERENCE_MAX_K:g} K, got {value:g}",
                EXIT_USAGE,
            )
    if not 0.0 < emissivity <= 1.0:
        fail(f"--emissivity must be above 0 and at most 1, got {emissivity:g}", EXIT_USAGE)
    if len(at_u_px) != len(at_v_px):
        fail("--at-u-px and --at-v-px go together, one pair per reference", EXIT_USAGE)
    if at_u_px and len(at_u_px) != len(references_k):
        fail(
            f"give one --at-u-px/--at-v-px pair per --reference-k ({len(references_k)})", EXIT_USAGE
        )
    if len(references_k) == 2 and not at_u_px:
        fail("two references need their two positions: --at-u-px/--at-v-px twice", EXIT_USAGE)
    cfg = load_or_exit(config, sets)
    ambient = cfg.weather.air_temp_c + 273.15 if ambient_k is None else ambient_k
    positions: list[tuple[float | None, float | None]] = (
        list(zip(at_u_px, at_v_px, strict=True)) if at_u_px else [(None, None)]
    )
    client = client_for(runtime_dir, timeout_s=timeout_s + 5.0)
    readings = []
    for reference, (u, v) in zip(references_k, positions, strict=True):
        window = call_or_exit(
            client,
            "thermal.window",
            u_px=u,
            v_px=v,
            half_px=window_px,
            frames=frames,
            timeout_s=timeout_s,
        )
        expected = expected_reading_k(reference, emissivity, ambient)
        readings.append(
            reading(reference, expected, window["mean_k"], int(window["u_px"]), int(window["v_px"]))
        )
    try:
        result = check(readings, tolerance_k)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    report = _report(result, emissivity, ambient)
    if as_json:
        echo_json(report)
    else:
        for line in _render(report):
            click.echo(line)
    if not result.passed:
        raise SystemExit(EXIT_FAILURE)


def _report(result: ThermalCheck, emissivity: float, ambient_k: float) -> dict[str, Any]:
    return {
        "emissivity": emissivity,
        "ambient_k": ambient_k,
        "tolerance_k": result.tolerance_k,
        "references": [
            {
                "reference_k": r.reference_k,
                "expected_k": r.expected_k,
                "measured_k": r.measured_k,
                "error_k": r.error_k,
                "noise_k": r.noise_k,
                "frames": r.frames,
                "u_px": r.u_px,
                "v_px": r.v_px,
                "ok": abs(r.error_k) <= result.tolerance_k,
            }
            for r in result.readings
        ],
        "offset_k": result.offset_k,
        "gain": result.gain,
        "passed": result.passed,
    }


def _render(report: dict[str, Any]) -> list[str]:
    lines = []
    for r in report["references"]:
        lines.append(
            f"reference {r['reference_k']:.2f} K at ({r['u_px']}, {r['v_px']}): expected "
            f"{r['expected_k']:.2f} K (ε {report['emissivity']:g}), measured "
            f"{r['measured_k']:.2f} K ± {r['noise_k']:.2f} over {r['frames']} frames: "
            f"{r['error_k']:+.2f} K {'ok' if r['ok'] else 'FAIL'}"
        )
    if report["gain"] is None:
        lines.append(f"offset {report['offset_k']:+.2f} K")
    else:
        lines.append(
            f"gain {report['gain']:.4f}, offset {report['offset_k']:+.2f} K "
            "(measured = gain × expected + offset)"
        )
    verdict = "PASS" if report["passed"] else "FAIL"
    lines.append(f"{verdict}: tolerance ±{report['tolerance_k']:g} K")
    return lines
