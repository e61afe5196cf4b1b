"""`towerwatch calibrate known-source|mask ...`: the tower's mapped places, written into its config.

``known-source add|remove|list`` edits ``known_sources:`` (permanent heat sources the
detection rejects as ``known_source``); ``mask add|remove|list`` edits
``exclusion_zones:`` (ground circles whose hotspots it rejects as ``masked``). A place is given by its coordinates or by
bearing and range from the tower (a laser rangefinder's reading at the mast). Every
write goes through edge.config_edit: diff, confirmation, backup, ``calibrate undo``.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ValidationError

from edge.cli_support import EXIT_USAGE, config_options, echo_json, fail, json_option, load_or_exit
from edge.config import ExclusionZone, KnownSource, TowerConfig
from edge.config_edit import Scalar, apply_edit, list_names, with_list_item, without_list_item
from edge.geodesy import destination, distance_bearing

SOURCE_KINDS: tuple[str, ...] = typing.get_args(KnownSource.model_fields["kind"].annotation)
# The farthest a place may be given by bearing and range: beyond 100 km no tower sees it.
MAX_PLACE_RANGE_M = 100_000.0


def place_options(func: Any) -> Any:
    """``--lat/--lon`` or ``--bearing/--range`` of a place."""
    for option in reversed(
        (
            click.option("--lat", type=float, default=None, help="WGS84 latitude, degrees."),
            click.option("--lon", type=float, default=None, help="WGS84 longitude, degrees."),
            click.option(
                "--bearing",
                "bearing_deg",
                type=float,
                default=None,
                help="True bearing from the tower, degrees clockwise from north.",
            ),
            click.option(
                "--range",
                "range_m",
                type=float,
                default=None,
                help="Ground distance from the tower, metres.",
            ),
        )
    ):
        func = option(func)
    return func


def place_position(
    cfg: TowerConfig,
    lat: float | None,
    lon: float | None,
    bearing_deg: float | None,
    range_m: float | None,
) -> tuple[float, float]:
    """(lat, lon) from coordinates, or from bearing and range from the tower; exit 2 otherwise."""
    by_coordinates = lat is not None or lon is not None
    by_bearing = bearing_deg is not None or range_m is not None
    if by_coordinates == by_bearing:
        fail("give either --lat and --lon, or --bearing and --range", EXIT_USAGE)
    if by_coordinates:
        if lat is None or lon is None:
            fail("--lat and --lon go together", EXIT_USAGE)
        return lat, lon
    if bearing_deg is None or range_m is None:
        fail("--bearing and --range go together", EXIT_USAGE)
    if not (math.isfinite(bearing_deg) and 0.0 <= bearing_deg < 360.0):
        fail(f"--bearing must be 0-360 degrees (360 excluded), got {bearing_deg:g}", EXIT_USAGE)
    if not (math.isfinite(range_m) and 0.0 < range_m <= MAX_PLACE_RANGE_M):
        fail(
            f"--range must be above 0 and at most {MAX_PLACE_RANGE_M:g} m, got {range_m:g}",
            EXIT_USAGE,
        )
    return destination(cfg.tower.lat, cfg.tower.lon, bearing_deg, range_m)


def validated(model: type[BaseModel], values: dict[str, Any], options: dict[str, str]) -> None:
    """Check ``values`` against the config schema; the first problem as one line, exit 2."""
    try:
        model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        name = options.get(field, field)
        fail(f"{name}: {error['msg'].lower()}, got {error.get('input')!r}", EXIT_USAGE)


def editable_config(config: str, sets: Sequence[str]) -> tuple[TowerConfig, Path, str]:
    if sets:
        fail("--set overrides cannot be written back; edit the config instead", EXIT_USAGE)
    cfg = load_or_exit(config, sets)
    path = Path(config)
    return cfg, path, path.read_text(encoding="utf-8")


def add_item(
    path: Path, text: str, key: str, item: dict[str, Scalar], *, label: str, assume_yes: bool
) -> None:
    """Append ``item`` to the config's list ``key`` (diff, confirm, backup)."""
    name = str(item["name"])
    try:
        if name in list_names(text, str(path), key):
            fail(
                f"{key}: {name!r} is already there; remove it first or pick another name",
                EXIT_USAGE,
            )
        new = with_list_item(text, str(path), key, item)
        apply_edit(
            path,
            text,
            new,
            check=_holds(key, name, present=True),
            label=label,
            assume_yes=assume_yes,
        )
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


def remove_item(
    path: Path, text: str, key: str, name: str, *, label: str, assume_yes: bool
) -> None:
    try:
        try:
            new = without_list_item(text, str(path), key, name)
        except KeyError:
            known = list_names(text, str(path), key)
            have = f"; {path} has: {', '.join(known)}" if known else f"; {path} has none"
            fail(f"{key}: no entry named {name!r}{have}", EXIT_USAGE)
        apply_edit(
            path,
            text,
            new,
            check=_holds(key, name, present=False),
            label=label,
            assume_yes=assume_yes,
        )
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


def _holds(key: str, name: str, *, present: bool) -> Callable[[TowerConfig], None]:
    def check(cfg: TowerConfig) -> None:
        names = [entry.name for entry in getattr(cfg, key)]
        if (name in names) != present:
            raise ValueError(f"the edited config reads {key} back wrong ({name!r})")

    return check


def place_rows(
    cfg: TowerConfig, entries: Sequence[Any], fields: Sequence[str]
) -> list[dict[str, Any]]:
    rows = []
    for entry in entries:
        distance_m, bearing_deg = distance_bearing(
            cfg.tower.lat, cfg.tower.lon, entry.lat, entry.lon
        )
        row = {"name": entry.name}
        row.update({f: getattr(entry, f) for f in fields})
        row.update({"bearing_deg": bearing_deg, "range_m": distance_m})
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- known-source


@click.group("known-source")
def known_source() -> None:
    """Permanent heat sources (flares, pipelines, pumps...) in the config's known_sources."""


@known_source.command("add")
@config_options
@click.argument("name")
@click.option("--kind", type=click.Choice(SOURCE_KINDS), required=True, help="What it is.")
@place_options
@click.option("--height-m", type=float, default=None, help="Hot part above the ground, metres.")
@click.option("--radius-m", type=float, default=None, help="Extent to exclude around it, metres.")
@click.option("--yes", "assume_yes", is_flag=True, help="Write without asking.")
def known_source_add(
    config: str,
    sets: tuple[str, ...],
    name: str,
    kind: str,
    lat: float | None,
    lon: float | None,
    bearing_deg: float | None,
    range_m: float | None,
    height_m: float | None,
    radius_m: float | None,
    assume_yes: bool,
) -> None:
    """Add the known source NAME at --lat/--lon or --bearing/--range from the tower."""
    cfg, path, text = editable_config(config, sets)
    at_lat, at_lon = place_position(cfg, lat, lon, bearing_deg, range_m)
    item: dict[str, Scalar] = {"name": name, "kind": kind, "lat": at_lat, "lon": at_lon}
    if height_m is not None:
        item["height_m"] = height_m
    if radius_m is not None:
        item["radius_m"] = radius_m
    validated(
        KnownSource,
        item,
        {
            "name": "NAME",
            "lat": "--lat",
            "lon": "--lon",
            "height_m": "--height-m",
            "radius_m": "--radius-m",
        },
    )
    add_item(
        path, text, "known_sources", item, label=f"known source {name} added", assume_yes=assume_yes
    )


@known_source.command("remove")
@config_options
@click.argument("name")
@click.option("--yes", "assume_yes", is_flag=True, help="Write without asking.")
def known_source_remove(config: str, sets: tuple[str, ...], name: str, assume_yes: bool) -> None:
    """Remove the known source NAME."""
    _, path, text = editable_config(config, sets)
    remove_item(
        path,
        text,
        "known_sources",
        name,
        label=f"known source {name} removed",
        assume_yes=assume_yes,
    )


@known_source.command("list")
@config_options
@json_option
def known_source_list(config: str, sets: tuple[str, ...], as_json: bool) -> None:
    """The known sources, with bearing and range from the tower."""
    cfg = load_or_exit(config, sets)
    rows = place_rows(cfg, cfg.known_sources, ("kind", "lat", "lon", "height_m", "radius_m"))
    if as_json:
        echo_json({"known_sources": rows})
        return
    if not rows:
        click.echo("no known sources")
        return
    click.echo(
        f"{'name':<28}{'kind':<14}{'lat':>11}{'lon':>12}{'height':>8}{'radius':>8}"
        f"{'bearing':>9}{'range':>9}"
    )
    for r in rows:
        click.echo(
            f"{r['name']:<28}{r['kind']:<14}{r['lat']:>11.5f}{r['lon']:>12.5f}"
            f"{r['height_m']:>7g}m{r['radius_m']:>7g}m{r['bearing_deg']:>8.2f}°"
            f"{r['range_m'] / 1000:>7.2f}km"
        )


# --------------------------------------------------------------------------- mask


@click.group("mask")
def mask() -> None:
    """Exclusion zones (ground circles whose hotspots are rejected as 'masked')."""


@mask.command("add")
@config_options
@click.argument("name")
@place_options
@click.option("--radius-m", type=float, required=True, help="Radius on the ground, metres.")
@click.option("--reason", default="", help="Why it is masked (kept in the config).")
@click.option("--yes", "assume_yes", is_flag=True, help="Write without asking.")
def mask_add(
    config: str,
    sets: tuple[str, ...],
    name: str,
    lat: float | None,
    lon: float | None,
    bearing_deg: float | None,
    range_m: float | None,
    radius_m: float,
    reason: str,
    assume_yes: bool,
) -> None:
    """Add the exclusion zone NAME around --lat/--lon or --bearing/--range from the tower."""
    cfg, path, text = editable_config(config, sets)
    at_lat, at_lon = place_position(cfg, lat, lon, bearing_deg, range_m)
    item: dict[str, Scalar] = {"name": name, "lat": at_lat, "lon": at_lon, "radius_m": radius_m}
    if reason:
        item["reason"] = reason
    validated(
        ExclusionZone,
        item,
        {
            "name": "NAME",
            "lat": "--lat",
            "lon": "--lon",
            "radius_m": "--radius-m",
            "reason": "--reason",
        },
    )
    add_item(
        path,
        text,
        "exclusion_zones",
        item,
        label=f"exclusion zone {name} added",
        assume_yes=assume_yes,
    )


@mask.command("remove")
@config_options
@click.argument("name")
@click.option("--yes", "assume_yes", is_flag=True, help="Write without asking.")
def mask_remove(config: str, sets: tuple[str, ...], name: str, assume_yes: bool) -> None:
    """Remove the exclusion zone NAME."""
    _, path, text = editable_config(config, sets)
    remove_item(
        path,
        text,
        "exclusion_zones",
        name,
        label=f"exclusion zone {name} removed",
        assume_yes=assume_yes,
    )


@mask.command("list")
@config_options
@json_option
def mask_list(config: str, sets: tuple[str, ...], as_json: bool) -> None:
    """The exclusion zones, with bearing and range from the tower."""
    cfg = load_or_exit(config, sets)
    rows = place_rows(cfg, cfg.exclusion_zones, ("lat", "lon", "radius_m", "reason"))
    if as_json:
        echo_json({"exclusion_zones": rows})
        return
    if not rows:
        click.echo("no exclusion zones")
        return
    click.echo(f"{'name':<28}{'lat':>11}{'lon':>12}{'radius':>9}{'bearing':>9}{'range':>9}  reason")
    for r in rows:
        click.echo(
            f"{r['name']:<28}{r['lat']:>11.5f}{r['lon']:>12.5f}{r['radius_m']:>8g}m"
            f"{r['bearing_deg']:>8.2f}°{r['range_m'] / 1000:>7.2f}km  {r['reason']}"
        )
