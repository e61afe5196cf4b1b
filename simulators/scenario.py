"""Scenario files: the world, weather, clock and events of a simulation, parsed into frozen objects."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


def utc_unix(t: dt.datetime) -> float:
    """Unix seconds of a scenario time; a time without a zone is UTC."""
    return (t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)).timestamp()

class ScenarioError(Exception):
    """A scenario file is missing or invalid; the message names the file, key and rule."""


ModelT = TypeVar("ModelT", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Place(_Strict):
    """A ground position: either lat/lon, or bearing (true, from the tower) and range."""

    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    bearing_deg: float | None = Field(default=None, ge=0, lt=360)
    range_m: float | None = Field(default=None, gt=0, le=60_000)

    @model_validator(mode="after")
    def _one_kind(self) -> Place:
        geo = self.lat is not None and self.lon is not None
        polar = self.bearing_deg is not None and self.range_m is not None
        if geo == polar:
            raise ValueError("give either lat and lon, or bearing_deg and range_m")
        return self


class Tower(_Strict):
    id: str = "sim-tower"
    lat: float = Field(default=47.0, ge=-90, le=90)
    lon: float = Field(default=20.0, ge=-180, le=180)
    ground_elevation_m: float = 90.0
    mast_height_m: float = Field(default=40.0, gt=0, le=300)


class Camera(_Strict):
    width_px: int = Field(default=640, ge=16, le=4096)
    height_px: int = Field(default=512, ge=16, le=4096)
    pixel_pitch_um: float = Field(default=12.0, gt=0)
    focal_length_mm: float = Field(default=75.0, gt=0)
    zoom_focal_length_mm: float = Field(default=75.0, gt=0)
    f_number: float = Field(default=1.0, gt=0)
    netd_mk: float = Field(default=50.0, ge=0)
    lens_efficiency: float = Field(default=0.8, gt=0, le=1)
    fixed_pattern_k: float = Field(
        default=0.05, ge=0, description="residual fixed-pattern noise after a NUC (1σ)"
    )
    drift_k_per_min: float = Field(
        default=0.02, ge=0, description="fixed-pattern growth between NUCs (1σ per minute)"
    )
    nuc_interval_s: float = Field(
        default=600.0, gt=0, description="time between shutter (NUC) events"
    )
    nuc_duration_s: float = Field(
        default=0.5, ge=0, description="how long the shutter covers the sensor"
    )


class Weather(_Strict):
    air_temp_c: float = Field(default=12.0, gt=-50, lt=55, description="daily mean air temperature")
    diurnal_range_k: float = Field(
        default=8.0, ge=0, le=30, description="peak-to-peak daily swing of air temperature"
    )
    relative_humidity_pct: float = Field(default=55.0, ge=0, le=100)
    visibility_km: float = Field(default=23.0, gt=0, le=200)
    pressure_hpa: float = Field(default=1013.25, gt=500, lt=1100)
    cloud_cover: float = Field(default=0.0, ge=0, le=1, description="fraction of sky covered")
    wind_speed_m_s: float = Field(default=3.0, ge=0, le=40)
    wind_from_deg: float = Field(default=270.0, ge=0, lt=360)


class Hill(_Strict):
    at: Place
    height_m: float = Field(gt=0, le=2000)
    radius_m: float = Field(gt=0, le=20_000)


class Ridge(_Strict):
    start: Place
    end: Place
    height_m: float = Field(gt=0, le=2000)
    half_width_m: float = Field(gt=0, le=10_000)


RoadKind = Literal["asphalt", "dirt"]


class Road(_Strict):
    kind: RoadKind = "dirt"
    points: Annotated[list[Place], Field(min_length=2)]
    width_m: float = Field(default=6.0, gt=0, le=60)
    dyke_height_m: float = Field(default=2.0, ge=0, le=10)


class Channel(_Strict):
    points: Annotated[list[Place], Field(min_length=2)]
    width_m: float = Field(default=15.0, gt=0, le=2000)


PatchKind = Literal[
    "reed", "vegetation", "water", "bare_soil", "asphalt", "roof", "rock", "solar_panel"
]


class Patch(_Strict):
    """A round patch of one land-cover class (a pond, a field of bare soil, a rock outcrop)."""

    kind: PatchKind
    at: Place
    radius_m: float = Field(gt=0, le=10_000)


class Building(_Strict):
    """A building or equipment: a box with a roof, warm inside at night."""

    at: Place
    width_m: float = Field(default=12.0, gt=0, le=500)
    height_m: float = Field(default=5.0, gt=0, le=200)
    roof: Literal["metal", "tile"] = "metal"
    heated: bool = True


class SolarPanels(_Strict):
    at: Place
    width_m: float = Field(default=20.0, gt=0, le=2000)
    height_m: float = Field(default=2.0, gt=0, le=20)


class SunlitObject(_Strict):
    """Something standing on the ground that the sun heats: a boulder, a shed, machinery, a parked car."""

    kind: Literal["rock", "metal", "shed", "car"] = "rock"
    at: Place
    width_m: float = Field(default=2.0, gt=0, le=200)
    height_m: float = Field(default=1.5, gt=0, le=50)


class Procedural(_Strict):
    """A layout drawn from the seed on top of the explicit one."""

    roads: int = Field(default=0, ge=0, le=30)
    channels: int = Field(default=0, ge=0, le=30)
    patches: int = Field(default=0, ge=0, le=200)
    hills: int = Field(default=0, ge=0, le=30)
    objects: int = Field(default=0, ge=0, le=200, description="sun-heated standing objects")
    min_bearing_deg: float = Field(default=0.0, ge=0, lt=360)
    max_bearing_deg: float = Field(
        default=360.0, gt=0, le=720, description="sector (clockwise from min) things are drawn in"
    )
    min_range_m: float = Field(default=2_000.0, gt=0)
    max_range_m: float = Field(default=20_000.0, gt=0)


class World(_Strict):
    base: Literal["reed", "vegetation", "bare_soil"] = "reed"
    extent_m: float = Field(
        default=30_000.0, ge=1_000, le=60_000, description="half-size of the terrain grid"
    )
    cell_m: float = Field(default=50.0, ge=5, le=500)
    clutter_k: float = Field(
        default=1.0, ge=0, le=10, description="1σ texture of the ground temperature"
    )
    hills: list[Hill] = []
    ridges: list[Ridge] = []
    roads: list[Road] = []
    channels: list[Channel] = []
    patches: list[Patch] = []
    buildings: list[Building] = []
    solar_panels: list[SolarPanels] = []
    objects: list[SunlitObject] = []
    procedural: Procedural = Procedural()


class Fire(_Strict):
    id: str
    at: Place
    size_m: float = Field(default=2.0, gt=0, le=500, description="flame front width at ignition")
    max_size_m: float | None = Field(default=None, gt=0, le=2000)
    spread_m_per_min: float = Field(
        default=0.0, ge=0, le=200, description="growth of the front width"
    )
    flame_height_ratio: float = Field(
        default=0.5, gt=0, le=3, description="flame height / width (Case C: 0.5)"
    )
    temperature_k: float = Field(default=1000.0, ge=350, le=1600)
    emissivity: float = Field(default=0.5, gt=0, le=1)
    start_s: float = Field(default=0.0, ge=0)
    stop_s: float | None = Field(default=None, gt=0)
    occluded_below_m: float = Field(
        default=0.0, ge=0, le=50, description="flame hidden below this height (reed canopy)"
    )
    smoke: float = Field(
        default=1.0, ge=0, le=10, description="smoke production relative to a reed fire"
    )

    @model_validator(mode="after")
    def _times(self) -> Fire:
        if self.stop_s is not None and self.stop_s <= self.start_s:
            raise ValueError(f"stop_s ({self.stop_s}) must be after start_s ({self.start_s})")
        return self


class Vehicle(_Strict):
    id: str
    kind: Literal["car", "truck", "tractor"] = "car"
    route: Annotated[list[Place], Field(min_length=2)]
    speed_kmh: float = Field(default=60.0, gt=0, le=150)
    start_s: float = Field(default=0.0, ge=0)
    park_s: float = Field(
        default=0.0, ge=0, description="stays parked at the route's end this long, engine cooling"
    )
    loop: bool = False
    engine_delta_k: float = Field(default=30.0, ge=0, le=200)
    cooling_tau_s: float = Field(default=900.0, gt=0)


class Person(_Strict):
    id: str
    route: Annotated[list[Place], Field(min_length=2)]
    speed_kmh: float = Field(default=4.5, gt=0, le=20)
    start_s: float = Field(default=0.0, ge=0)
    loop: bool = True


SourceKind = Literal["flare", "pipeline", "pumping_unit", "chimney", "other"]


class KnownSource(_Strict):
    name: str
    kind: SourceKind
    at: Place
    end: Place | None = None
    height_m: float = Field(default=10.0, ge=0, le=300)
    radius_m: float = Field(default=5.0, gt=0, le=1000)
    temperature_k: float | None = Field(default=None, ge=200, le=2000)


class View(_Strict):
    pan_deg: float = Field(ge=0, lt=360)
    tilt_deg: float = Field(ge=-45, le=45)
    hfov_deg: float | None = Field(default=None, gt=0, le=60)


class Scenario(_Strict):
    name: str
    description: str = ""
    seed: int = Field(default=0, ge=0)
    start_utc: dt.datetime
    tower: Tower = Tower()
    camera: Camera = Camera()
    weather: Weather = Weather()
    world: World = World()
    fires: list[Fire] = []
    vehicles: list[Vehicle] = []
    people: list[Person] = []
    known_sources: list[KnownSource] = []
    view: View | None = None

    @property
    def start_unix(self) -> float:
        return utc_unix(self.start_utc)

    @model_validator(mode="after")
    def _unique_ids(self) -> Scenario:
        ids = (
            [f.id for f in self.fires] + [v.id for v in self.vehicles] + [p.id for p in self.people]
        )
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(
                f"ids must be unique across fires, vehicles and people: {', '.join(dupes)}"
            )
        return self


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort YAML line of a key path, for error messages."""
    node = yaml.compose(text)
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            found = node.value[key]
        else:
            found = None
        if found is None:
            break
        node = found
    return node.start_mark.line + 1 if node is not None else None


def parse_model(text: str, source: str, model: type[ModelT]) -> ModelT:
    """Validate YAML text as ``model``; every problem named by ``source:line: key: rule``."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ScenarioError(
            f"{source}: a scenario must be a mapping with at least 'name' and 'start_utc'"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append(f"{where_in(text, source, loc)}: {_key(loc)}: {err['msg']}")
        raise ScenarioError("\n".join(problems)) from exc


def _key(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def where_in(text: str, source: str, loc: tuple[int | str, ...]) -> str:
    """``source:line`` of a key path in YAML text (just ``source`` when the line is unknown)."""
    line = _line_of(text, loc)
    return f"{source}:{line}" if line else source


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    return parse_model(text, source, Scenario)


def read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read scenario file: {exc.strerror}") from exc


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(read_text(path), str(path))
