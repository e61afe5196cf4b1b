"""County scenarios: one world of fires and features placed by latitude/longitude, seen by several towers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, Field, model_validator

from simulators import scenario as sc


class CountyTower(sc._Strict):
    """A tower of the county and the daemon config that describes it (position, camera, ports)."""

    id: str = Field(min_length=1, max_length=64)
    config: str = Field(
        min_length=1, description="tower config path, relative to the working directory"
    )


class CountyScenario(sc._Strict):
    """Like a tower scenario, but with ``towers`` instead of ``tower`` and every place by lat/lon.

    A bearing and range only mean something from one tower, so the county's places are
    geographic; each tower sees the same fires, vehicles and features from where its
    config puts it. A ``world.procedural`` layout is drawn around each tower in turn
    (local clutter, not shared between towers).
    """

    name: str
    description: str = ""
    seed: int = Field(default=0, ge=0)
    start_utc: dt.datetime
    towers: Annotated[list[CountyTower], Field(min_length=1, max_length=64)]
    camera: sc.Camera = sc.Camera()
    weather: sc.Weather = sc.Weather()
    world: sc.World = sc.World()
    fires: list[sc.Fire] = []
    vehicles: list[sc.Vehicle] = []
    people: list[sc.Person] = []
    known_sources: list[sc.KnownSource] = []

    @property
    def start_unix(self) -> float:
        return sc.utc_unix(self.start_utc)

    @model_validator(mode="after")
    def _unique_ids(self) -> CountyScenario:
        towers = [t.id for t in self.towers]
        dupes = sorted({i for i in towers if towers.count(i) > 1})
        if dupes:
            raise ValueError(f"tower ids must be unique: {', '.join(dupes)}")
        things = (
            [f.id for f in self.fires] + [v.id for v in self.vehicles] + [p.id for p in self.people]
        )
        dupes = sorted({i for i in things if things.count(i) > 1})
        if dupes:
            raise ValueError(
                f"ids must be unique across fires, vehicles and people: {', '.join(dupes)}"
            )
        return self

    def tower_scenario(self, index: int, tower: sc.Tower) -> sc.Scenario:
        """The world as the ``index``-th tower sees it, from ``tower`` (its config's position).

        Each tower gets its own seed (``seed + index``) so sensor noise differs between
        cameras, as it does between real ones.
        """
        fields = self.model_dump(exclude={"towers", "name", "seed"})
        return sc.Scenario.model_validate(
            {
                **fields,
                "name": f"{self.name}/{self.towers[index].id}",
                "seed": self.seed + index,
                "tower": tower.model_dump(),
            }
        )


def _polar_places(node: Any, loc: tuple[int | str, ...]) -> Iterator[tuple[int | str, ...]]:
    """Key paths of every place given by bearing and range rather than lat/lon."""
    if isinstance(node, sc.Place):
        if node.lat is None:
            yield loc
        return
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _polar_places(getattr(node, name), (*loc, name))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _polar_places(item, (*loc, i))


def parse_county(text: str, source: str = "<county scenario>") -> CountyScenario:
    if not is_county(text) and is_tower_scenario(text):
        raise sc.ScenarioError(
            f"{source}: this scenario describes one tower ('tower:'); a county scenario names "
            "its towers ('towers:' with an id and a config each). Run it with "
            "`towerwatch simulate tower`."
        )
    county = sc.parse_model(text, source, CountyScenario)
    problems = [
        f"{sc.where_in(text, source, loc)}: {'.'.join(map(str, loc))}: a county place needs "
        "lat and lon (a bearing and range are relative to one tower)"
        for loc in _polar_places(county, ())
    ]
    if problems:
        raise sc.ScenarioError("\n".join(problems))
    return county


def load_county(path: str | Path) -> CountyScenario:
    return parse_county(sc.read_text(path), str(path))


def _top_keys(text: str) -> set[str]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return set()
    return {str(k) for k in raw} if isinstance(raw, dict) else set()


def is_county(text: str) -> bool:
    """Whether scenario text is a county scenario (it names ``towers``), without validating it."""
    return "towers" in _top_keys(text)


def is_tower_scenario(text: str) -> bool:
    """Whether scenario text describes one tower (it has ``tower``), without validating it."""
    return "tower" in _top_keys(text)
