"""`towerwatch calibrate north|level|sight|undo`: the head's calibration from surveyed landmarks.

``north`` fits pan offset, tilt offset and pan-axis levelling (edge.calibration's least
squares) from three or more centred landmarks, and the camera's roll from landmarks seen
off-centre; ``level`` fits the same but keeps the configured pan offset. Each shows the
residual of every landmark, refuses a fit above the acceptance limit, shows the diff of
``ptz.calibration`` in the tower's YAML, keeps a backup and writes; ``undo`` puts the
newest backup back. ``sight`` records the head's raw angles for one landmark (through
the running daemon's control socket, or the head itself when no daemon runs).
``known-source`` and ``mask`` (edge.commands.calibrate_sites) and ``thermal``
(edge.commands.calibrate_thermal) are registered on the same group; every config write
goes through edge.config_edit, so one ``undo`` serves them all.
Background: docs/physics/geolocation.md.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.ptz_calibration import PtzCalibration
from edge.calibration import (
    ACCEPT_RESIDUAL_RMS_DEG,
    CalibrationResult,
    Landmark,
    Sighting,
    solve_landmark_calibration,
)
from edge.cli_support import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    EXIT_FAILURE,
    EXIT_USAGE,
    config_options,
    echo_json,
    fail,
    json_option,
    load_or_exit,
)
from edge.commands.calibrate_sites import known_source, mask
from edge.commands.calibrate_thermal import command as thermal
from edge.config import TowerConfig
from edge.config_edit import apply_edit, backups_of, last_line_end, write_atomically
from edge.geolocation import Lens, Pose, TowerSite, bearing_elevation_pixel, bearing_elevation_to

CALIBRATION_KEYS = (
    "pan_offset_deg",
    "pan_sign",
    "tilt_offset_deg",
    "tilt_sign",
    "level_a_deg",
    "level_b_deg",
    "roll_deg",
)
# How long calibrate keeps the head from the patrol when it asks the daemon for it.
PAUSE_S = 600.0


# --------------------------------------------------------------------------- landmark file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OffCentreSighting(_Strict):
    """Raw head angles with the landmark seen at pixel (u, v) of the thermal image."""

    pan_raw_deg: float = Field(ge=-360.0, le=720.0)
    tilt_raw_deg: float = Field(ge=-90.0, le=90.0)
    u_px: float
    v_px: float


class LandmarkEntry(_Strict):
    name: str = Field(min_length=1, max_length=100)
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    height_m: float = Field(ge=-500.0, le=9000.0, description="the centred part, above MSL")
    pan_raw_deg: float | None = Field(None, ge=-360.0, le=720.0)
    tilt_raw_deg: float | None = Field(None, ge=-90.0, le=90.0)
    off_centre: tuple[OffCentreSighting, ...] = ()

    @property
    def landmark(self) -> Landmark:
        return Landmark(self.name, self.lat, self.lon, self.height_m)

    @property
    def sighted(self) -> bool:
        return self.pan_raw_deg is not None and self.tilt_raw_deg is not None


class LandmarkFile(_Strict):
    landmarks: tuple[LandmarkEntry, ...] = Field(min_length=1)


def read_landmarks(path: Path) -> LandmarkFile:
    """The landmark file, or one line per problem and exit 2."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{path}: no such landmark file", EXIT_USAGE)
    except (OSError, yaml.YAMLError) as exc:
        fail(f"{path}: cannot read: {exc}", EXIT_USAGE)
    try:
        parsed = LandmarkFile.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            click.echo(f"{path}: {where}: {error['msg']}", err=True)
        fail(f"{path}: {exc.error_count()} problem(s)", EXIT_USAGE)
    names = [e.name for e in parsed.landmarks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        fail(f"{path}: landmark names must be unique: {', '.join(duplicates)}", EXIT_USAGE)
    return parsed


# --------------------------------------------------------------------------- the fit


@dataclass(frozen=True)
class RollFit:
    roll_deg: float
    sigma_deg: float | None
    residuals_px: tuple[float, ...]


@dataclass(frozen=True)
class Fit:
    result: CalibrationResult
    calibration: PtzCalibration
    roll: RollFit | None
    names: tuple[str, ...]


def tower_site(cfg: TowerConfig) -> TowerSite:
    return TowerSite(cfg.tower.lat, cfg.tower.lon, cfg.tower.camera_altitude_m)


def thermal_lens(cfg: TowerConfig) -> Lens:
    cam = cfg.camera
    return Lens.from_physical(cam.focal_length_mm, cam.pixel_pitch_um, cam.width_px, cam.height_px)


def fit_roll(
    cfg: TowerConfig, calibration: PtzCalibration, entries: Sequence[LandmarkEntry]
) -> RollFit | None:
    """Roll about the optical axis from landmarks seen off-centre, given the other terms.

    With the line of sight known from the head's angles, the roll turns every landmark's
    image positions by the same angle: after removing each landmark's mean position, the
    least-squares angle is atan2(Σ predicted × seen, Σ predicted · seen) in normalised
    image coordinates. Needs at least two off-centre sightings of a landmark.
    """
    lens = thermal_lens(cfg)
    site = tower_site(cfg)
    k = cfg.geolocation.refraction_k
    predicted: list[tuple[float, float]] = []
    seen: list[tuple[float, float]] = []
    for entry in entries:
        azimuth, elevation = bearing_elevation_to(site, entry.lat, entry.lon, entry.height_m, k)
        group_p: list[tuple[float, float]] = []
        group_q: list[tuple[float, float]] = []
        for s in entry.off_centre:
            pan, tilt = calibration.to_true(s.pan_raw_deg, s.tilt_raw_deg)
            u0, v0 = bearing_elevation_pixel(azimuth, elevation, Pose(pan, tilt, 0.0), lens)
            if not (np.isfinite(u0) and np.isfinite(v0)):
                continue
            x0, y0 = lens.normalised(u0, v0)
            x1, y1 = lens.normalised(s.u_px, s.v_px)
            group_p.append((float(x0), float(y0)))
            group_q.append((float(x1), float(y1)))
        if len(group_p) < 2:
            continue
        # Each landmark's sightings share its survey error and the remaining error of the
        # fitted offsets: a common shift, removed here so only the turn is left to fit.
        gp, gq = np.array(group_p), np.array(group_q)
        predicted += [tuple(row) for row in gp - gp.mean(axis=0)]
        seen += [tuple(row) for row in gq - gq.mean(axis=0)]
    if not predicted:
        return None
    p = np.array(predicted)
    q = np.array(seen)
    cross = float(np.sum(p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]))
    dot = float(np.sum(p[:, 0] * q[:, 0] + p[:, 1] * q[:, 1]))
    # The angle that turns the predicted positions onto the seen ones. A camera rolled by
    # ρ (positive turns image x toward y) sees the scene turned by −ρ.
    turn_deg = math.degrees(math.atan2(cross, dot))
    r = math.radians(turn_deg)
    cos_r, sin_r = math.cos(r), math.sin(r)
    turned = np.column_stack([cos_r * p[:, 0] - sin_r * p[:, 1], sin_r * p[:, 0] + cos_r * p[:, 1]])
    res = np.hypot(*(turned - q).T) * lens.focal_length_px
    sigma = None
    if len(p) > 1:
        radius_px = np.hypot(p[:, 0], p[:, 1]) * lens.focal_length_px
        scatter_px = float(np.sqrt(np.sum(res**2) / (len(p) - 1)))
        sigma = math.degrees(scatter_px / math.sqrt(float(np.sum(radius_px**2))))
    return RollFit(-turn_deg, sigma, tuple(float(x) for x in res))


def fit(
    cfg: TowerConfig,
    landmarks: LandmarkFile,
    *,
    keep_pan_offset: bool,
    accept_rms_deg: float,
) -> Fit:
    """The new calibration from the sighted landmarks; raises ValueError for the user."""
    current: PtzCalibration = cfg.ptz.calibration  # type: ignore[attr-defined]
    centred = [e for e in landmarks.landmarks if e.sighted]
    if len(centred) < 3:
        unsighted = [e.name for e in landmarks.landmarks if not e.sighted]
        raise ValueError(
            f"need at least 3 centred landmarks, have {len(centred)}"
            + (f"; not yet sighted: {', '.join(unsighted)}" if unsighted else "")
        )
    # The solver works in head angles that grow clockwise and upward: apply the senses.
    sightings = [
        Sighting(
            e.landmark,
            current.pan_sign * float(e.pan_raw_deg),  # type: ignore[arg-type]
            current.tilt_sign * float(e.tilt_raw_deg),  # type: ignore[arg-type]
        )
        for e in centred
    ]
    result = solve_landmark_calibration(
        tower_site(cfg),
        sightings,
        k=cfg.geolocation.refraction_k,
        roll_deg=current.roll_deg,
        accept_rms_deg=accept_rms_deg,
    )
    solved = result.calibration
    calibration = PtzCalibration(
        pan_offset_deg=current.pan_offset_deg if keep_pan_offset else solved.pan_offset_deg,
        pan_sign=current.pan_sign,
        tilt_offset_deg=solved.tilt_offset_deg,
        tilt_sign=current.tilt_sign,
        level_a_deg=solved.level_a_deg,
        level_b_deg=solved.level_b_deg,
        roll_deg=current.roll_deg,
    )
    roll = fit_roll(cfg, calibration, landmarks.landmarks)
    if roll is not None:
        calibration = calibration.model_copy(update={"roll_deg": roll.roll_deg})
    return Fit(result, calibration, roll, tuple(e.name for e in centred))


# --------------------------------------------------------------------------- YAML editing


def _format(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def with_calibration(text: str, source: str, values: dict[str, float | int]) -> str:
    """``text`` with ``ptz.calibration`` set to ``values``; every comment and other line kept."""
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        raise ValueError(f"{source}: the config is not a mapping")
    ptz = next((v for k, v in root.value if k.value == "ptz"), None)
    if not isinstance(ptz, yaml.MappingNode) or ptz.flow_style:
        raise ValueError(f"{source}: ptz must be a block mapping to take a calibration")
    edits: list[tuple[int, int, str]] = []
    calibration = next((v for k, v in ptz.value if k.value == "calibration"), None)
    if calibration is None:
        indent = ptz.value[0][0].start_mark.column
        at = last_line_end(text, ptz)
        block = "\n" + " " * indent + "calibration:"
        for key, value in values.items():
            block += "\n" + " " * (indent + 2) + f"{key}: {_format(value)}"
        edits.append((at, at, block))
    else:
        if not isinstance(calibration, yaml.MappingNode):
            raise ValueError(
                f"{source}:{calibration.start_mark.line + 1}: ptz.calibration is not a mapping"
            )
        present = {k.value: v for k, v in calibration.value}
        missing = [key for key in values if key not in present]
        for key, node in present.items():
            if key in values and isinstance(node, yaml.ScalarNode):
                edits.append((node.start_mark.index, node.end_mark.index, _format(values[key])))
        if missing:
            if calibration.flow_style or not calibration.value:
                raise ValueError(
                    f"{source}:{calibration.start_mark.line + 1}: write ptz.calibration as a "
                    "block mapping (one key per line) so calibrate can add keys"
                )
            indent = calibration.value[0][0].start_mark.column
            at = last_line_end(text, calibration)
            block = "".join(
                "\n" + " " * indent + f"{key}: {_format(values[key])}" for key in missing
            )
            edits.append((at, at, block))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def _read_back(expected: PtzCalibration) -> Callable[[TowerConfig], None]:
    """A check that the edited config carries exactly the new calibration."""

    def check(cfg: TowerConfig) -> None:
        written: PtzCalibration = cfg.ptz.calibration  # type: ignore[attr-defined]
        for key in CALIBRATION_KEYS:
            if abs(float(getattr(written, key)) - float(getattr(expected, key))) > 1e-4:
                raise ValueError(f"the edited config reads ptz.calibration.{key} back wrong")

    return check


def apply_calibration(
    config_path: Path, calibration: PtzCalibration, *, assume_yes: bool, show: bool = True
) -> Path | None:
    """Show the diff, ask, back up and write; returns the backup, None when unchanged."""
    old = config_path.read_text(encoding="utf-8")
    values: dict[str, float | int] = {k: getattr(calibration, k) for k in CALIBRATION_KEYS}
    new = with_calibration(old, str(config_path), values)
    if new == old:
        if show:
            click.echo("the config already holds this calibration; nothing written", err=True)
        return None
    return apply_edit(
        config_path,
        old,
        new,
        check=_read_back(calibration),
        label="calibrated",
        assume_yes=assume_yes,
        show=show,
    )


# --------------------------------------------------------------------------- commands


@click.group("calibrate")
def group() -> None:
    """Head calibration, known sources, exclusion masks, radiometric check (commissioning guide)."""


def _landmarks_option(func: Any) -> Any:
    return click.option(
        "--landmarks",
        "landmarks_path",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="YAML file of surveyed landmarks and their sightings.",
    )(func)


def _fit_command(name: str, keep_pan_offset: bool, doc: str) -> click.Command:
    @click.command(name, help=doc)
    @config_options
    @_landmarks_option
    @json_option
    @click.option("--yes", "assume_yes", is_flag=True, help="Write without asking.")
    @click.option("--dry-run", is_flag=True, help="Fit and show; write nothing.")
    @click.option(
        "--max-rms-deg",
        type=click.FloatRange(min=0.001, max=1.0),
        default=ACCEPT_RESIDUAL_RMS_DEG,
        show_default=True,
        help="Refuse a fit whose RMS residual is larger.",
    )
    def command(
        config: str,
        sets: tuple[str, ...],
        landmarks_path: Path,
        as_json: bool,
        assume_yes: bool,
        dry_run: bool,
        max_rms_deg: float,
    ) -> None:
        cfg = load_or_exit(config, sets)
        landmarks = read_landmarks(landmarks_path)
        try:
            result = fit(
                cfg, landmarks, keep_pan_offset=keep_pan_offset, accept_rms_deg=max_rms_deg
            )
        except ValueError as exc:
            fail(f"{landmarks_path}: {exc}", EXIT_USAGE)
        report = _report(result, keep_pan_offset)
        if as_json:
            echo_json(report)
        else:
            for line in _render(report):
                click.echo(line)
        if not result.result.accepted:
            worst = report["worst_landmark"]
            fail(
                f"refused: RMS residual {result.result.residual_rms_deg:.4f}° is above "
                f"{max_rms_deg:g}°; worst landmark {worst!r}: re-sight it or check its survey",
                EXIT_FAILURE,
            )
        if dry_run:
            return
        if sets:
            fail("--set overrides cannot be written back; edit the config instead", EXIT_USAGE)
        apply_calibration(Path(config), result.calibration, assume_yes=assume_yes or as_json)

    return command


def _report(result: Fit, keep_pan_offset: bool) -> dict[str, Any]:
    r = result.result
    rows: list[dict[str, Any]] = []
    for name, dpan, dtilt in zip(
        result.names, r.pan_residuals_deg, r.tilt_residuals_deg, strict=True
    ):
        rows.append({"name": name, "pan_residual_deg": dpan, "tilt_residual_deg": dtilt,
                     "residual_deg": math.hypot(dpan, dtilt)})  # fmt: skip
    worst = max(rows, key=lambda row: row["residual_deg"])["name"]
    cal = result.calibration
    return {
        "calibration": {k: getattr(cal, k) for k in CALIBRATION_KEYS},
        "pan_offset_kept": keep_pan_offset,
        "residual_rms_deg": r.residual_rms_deg,
        "accepted": r.accepted,
        "landmarks": rows,
        "worst_landmark": worst,
        "parameter_sigma_deg": None
        if r.parameter_sigma_deg is None
        else dict(
            zip(
                ("pan_offset", "tilt_offset", "level_a", "level_b"),
                r.parameter_sigma_deg,
                strict=True,
            )
        ),
        "roll": None
        if result.roll is None
        else {
            "roll_deg": result.roll.roll_deg,
            "sigma_deg": result.roll.sigma_deg,
            "sightings": len(result.roll.residuals_px),
            "rms_residual_px": float(np.sqrt(np.mean(np.square(result.roll.residuals_px)))),
        },
        "warnings": list(r.warnings),
    }


def _render(report: dict[str, Any]) -> list[str]:
    lines = [f"{'landmark':<24}{'pan res':>10}{'tilt res':>10}"]
    for row in report["landmarks"]:
        lines.append(
            f"{row['name']:<24}{row['pan_residual_deg']:>+9.4f}°{row['tilt_residual_deg']:>+9.4f}°"
        )
    cal = report["calibration"]
    lines.append(
        f"RMS residual {report['residual_rms_deg']:.4f}° "
        f"({'accepted' if report['accepted'] else 'REFUSED'})"
    )
    kept = " (kept)" if report["pan_offset_kept"] else ""
    lines.append(
        f"pan offset {cal['pan_offset_deg']:+.4f}°{kept}, tilt offset {cal['tilt_offset_deg']:+.4f}°, "
        f"levelling a {cal['level_a_deg']:+.4f}° b {cal['level_b_deg']:+.4f}°, roll {cal['roll_deg']:+.4f}°"
    )
    roll = report["roll"]
    if roll is None:
        lines.append("roll: no off-centre sightings; the configured roll is kept")
    else:
        sigma = "" if roll["sigma_deg"] is None else f" ± {roll['sigma_deg']:.4f}°"
        lines.append(
            f"roll from {roll['sightings']} off-centre sightings{sigma}, "
            f"RMS {roll['rms_residual_px']:.2f} px"
        )
    lines += [f"warning: {w}" for w in report["warnings"]]
    return lines


group.add_command(
    _fit_command(
        "north",
        False,
        "Fit pan (north) offset, tilt offset, levelling and roll from >= 3 landmarks.",
    )
)
group.add_command(
    _fit_command(
        "level",
        True,
        "Fit tilt offset, levelling and roll from >= 3 landmarks; keep the pan offset.",
    )
)


@group.command("undo")
@click.option(
    "--config",
    "config",
    envvar=CONFIG_ENV,
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Tower config file (YAML).",
)
@click.option("--yes", "assume_yes", is_flag=True, help="Restore without asking.")
def undo(config: Path, assume_yes: bool) -> None:
    """Put back the config as it was before the last calibrate write (any subcommand)."""
    backups = backups_of(config)
    if not backups:
        fail(f"{config}: no calibrate backup to undo", EXIT_USAGE)
    newest = backups[-1]
    current = config.read_text(encoding="utf-8")
    previous = newest.read_text(encoding="utf-8")
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        previous.splitlines(keepends=True),
        fromfile=str(config),
        tofile=f"{newest.name}",
    )
    click.echo("".join(diff), err=True, nl=False)
    if not assume_yes and not click.confirm(f"restore {config} from {newest.name}?", err=True):
        fail("not restored", EXIT_FAILURE)
    write_atomically(config, previous)
    newest.unlink()
    click.echo(f"restored {config} from {newest.name}", err=True)


@group.command("sight")
@config_options
@_landmarks_option
@click.argument("name")
@click.option("--u-px", type=float, default=None, help="Landmark seen off-centre: its column.")
@click.option("--v-px", type=float, default=None, help="... and its row (for the roll).")
@click.option(
    "--runtime-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the daemon's control socket.",
)
def sight(
    config: str,
    sets: tuple[str, ...],
    landmarks_path: Path,
    name: str,
    u_px: float | None,
    v_px: float | None,
    runtime_dir: Path | None,
) -> None:
    """Record the head's raw angles for landmark NAME (centred, or at --u-px/--v-px)."""
    from edge.commands.ptz import HeadAccess, raw_angles

    if (u_px is None) != (v_px is None):
        fail("--u-px and --v-px go together", EXIT_USAGE)
    cfg = load_or_exit(config, sets)
    parsed = read_landmarks(landmarks_path)
    known = [e.name for e in parsed.landmarks]
    if name not in known:
        fail(f"unknown landmark {name!r}; {landmarks_path} has: {', '.join(known)}", EXIT_USAGE)
    head = HeadAccess(cfg, runtime_dir)
    try:
        position = head.where()
    finally:
        head.close()
    if position.get("moving"):
        fail("the head is still moving; sight again once it has settled", EXIT_FAILURE)
    raw_pan, raw_tilt = raw_angles(cfg, position["pan_deg"], position["tilt_deg"])
    data = yaml.safe_load(landmarks_path.read_text(encoding="utf-8"))
    entry = next(e for e in data["landmarks"] if e["name"] == name)
    if u_px is None:
        entry["pan_raw_deg"], entry["tilt_raw_deg"] = round(raw_pan, 4), round(raw_tilt, 4)
        what = "centred"
    else:
        entry.setdefault("off_centre", []).append(
            {
                "pan_raw_deg": round(raw_pan, 4),
                "tilt_raw_deg": round(raw_tilt, 4),
                "u_px": u_px,
                "v_px": v_px,
            }  # fmt: skip
        )
        what = f"at pixel ({u_px:g}, {v_px:g})"
    write_atomically(landmarks_path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    click.echo(f"{name}: {what} at raw pan {raw_pan:.4f}°, raw tilt {raw_tilt:+.4f}°", err=True)


@group.command("apply-drift")
@config_options
@click.option("--yes", "assume_yes", is_flag=True, help="Write without asking.")
@click.option(
    "--runtime-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the daemon's control socket.",
)
def apply_drift(
    config: str, sets: tuple[str, ...], assume_yes: bool, runtime_dir: Path | None
) -> None:
    """Apply the pan/tilt offset the daemon's drift watch measured (diff, backup, undo)."""
    from edge.commands.status import call_or_exit, client_for

    cfg = load_or_exit(config, sets)
    if sets:
        fail("--set overrides cannot be written back; edit the config instead", EXIT_USAGE)
    drift = call_or_exit(client_for(runtime_dir), "status").get("drift")
    if not drift or not drift.get("ready"):
        fail("the drift watch has no measurement yet (too few sightings)", EXIT_FAILURE)
    current: PtzCalibration = cfg.ptz.calibration  # type: ignore[attr-defined]
    pan, tilt = float(drift["pan_offset_deg"]), float(drift["tilt_offset_deg"])
    corrected = current.model_copy(
        update={
            "pan_offset_deg": (current.pan_offset_deg + pan + 180.0) % 360.0 - 180.0,
            "tilt_offset_deg": current.tilt_offset_deg + tilt,
        }
    )
    click.echo(
        f"drift measured from {drift.get('sightings')} sightings of {drift.get('sources')} "
        f"sources: pan {pan:+.4f}°, tilt {tilt:+.4f}°",
        err=True,
    )
    apply_calibration(Path(config), corrected, assume_yes=assume_yes)


group.add_command(known_source)
group.add_command(mask)
group.add_command(thermal)
