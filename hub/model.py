"""The hub's own contract: `towerwatch.fire/1`, one fused fire, published retained per fire."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.messages import AlarmState, FireSize, IsoTime, LatLon, RangeSource, Uncertainty

FIRE_SCHEMA: Final = "towerwatch.fire/1"

FireState = Literal["active", "cleared"]
# How the position was reached: several towers' rays, one tower's own range, or nothing.
FireGeometry = Literal["triangulated", "single", "poor", "bearing_only"]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True
    )


class Polygon(_Model):
    """An RFC 7946 Polygon: one closed exterior ring of [lon, lat], counter-clockwise."""

    type: Literal["Polygon"] = "Polygon"
    coordinates: tuple[tuple[tuple[float, float], ...], ...] = Field(min_length=1)


class FireAlarm(_Model):
    """One tower's alarm as fused into the fire (its latest message)."""

    alarm_id: str
    seq: int = Field(ge=1)
    state: AlarmState
    tower_id: str
    tower_lat: float = Field(ge=-90.0, le=90.0)
    tower_lon: float = Field(ge=-180.0, le=180.0)
    bearing_deg: float = Field(ge=0.0, lt=360.0)
    bearing_sigma_deg: float = Field(gt=0.0)
    range_source: RangeSource
    range_m: float | None = None
    range_min_m: float | None = None
    range_max_m: float | None = None


class FireMessage(_Model):
    """One `towerwatch.fire/1` message on `<prefix>/hub/fire/<fire_id>` (retained)."""

    schema_: Literal["towerwatch.fire/1"] = Field(default=FIRE_SCHEMA, alias="schema")
    fire_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    version: int = Field(ge=1, description="increments each time the fire changes")
    state: FireState
    test: bool = Field(description="made of test alarms only; never a real fire")
    first_seen: IsoTime
    confirmed_at: IsoTime
    updated_at: IsoTime
    cleared_at: IsoTime | None = None
    position: LatLon | None = Field(description="absent when one tower gives only a bearing")
    uncertainty: Uncertainty | None
    range_source: RangeSource
    geometry: FireGeometry
    note: str | None = Field(default=None, max_length=300)
    towers: tuple[str, ...] = Field(min_length=1)
    alarms: tuple[FireAlarm, ...] = Field(min_length=1)
    area: Polygon = Field(description="the 95 % ellipse, or the bearing wedge")
    confidence: float = Field(ge=0.0, le=1.0)
    size: FireSize | None = None
    merged_into: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    def content(self) -> dict[str, Any]:
        """What identifies a change: everything but the version counter."""
        data = self.to_dict()
        data.pop("version")
        return data
