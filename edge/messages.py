"""Message schemas on the MQTT contract: towerwatch.alarm/1, status, commands and replies.

Times are UTC unix seconds in code and ISO 8601 with `Z` in messages; the helpers
`iso_z` and `parse_iso_z` convert between them. Every model is frozen, forbids
unknown keys and refuses NaN/infinity, so a message that validates here is one the
hub can rely on.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from edge.topics import CommandVerb

ALARM_SCHEMA: Final = "towerwatch.alarm/1"
STATUS_SCHEMA: Final = "towerwatch.status/1"
REPLY_SCHEMA: Final = "towerwatch.reply/1"

# Ellipses are stated at this probability; the hub draws them as such.
ELLIPSE_LEVEL: Final = 0.95

_ISO_Z_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def iso_z(t_s: float) -> str:
    """UTC unix seconds → `2024-07-01T12:00:00.250Z` (millisecond resolution)."""
    stamp = dt.datetime.fromtimestamp(t_s, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def parse_iso_z(text: str) -> float:
    """`...Z` ISO 8601 → UTC unix seconds; ValueError names the text when it is not one."""
    if not _ISO_Z_RE.match(text):
        raise ValueError(f"{text!r} is not an ISO 8601 UTC time like 2024-07-01T12:00:00Z")
    return dt.datetime.fromisoformat(text[:-1] + "+00:00").timestamp()


def _check_iso(text: str) -> str:
    parse_iso_z(text)
    return text


IsoTime = Annotated[str, AfterValidator(_check_iso)]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0)]
AlarmId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


# Decimals a measurement is stated to in a message, by the field name's unit suffix: a
# position to 1e-7° (about 1 cm), angles to 0.01° (their 1-σ finer: it weights bearings),
# metres and kelvin to 0.1, areas to 0.01 m². Anything else is sent as it is.
_DECIMALS_BY_SUFFIX: Final = (
    ("_sigma_deg", 4),
    ("_deg", 2),
    ("_m2", 2),
    ("_m", 1),
    ("_k", 1),
)
_DECIMALS_BY_NAME: Final = {"lat": 7, "lon": 7}


def _decimals(key: str) -> int | None:
    if key in _DECIMALS_BY_NAME:
        return _DECIMALS_BY_NAME[key]
    for suffix, decimals in _DECIMALS_BY_SUFFIX:
        if key.endswith(suffix):
            return decimals
    return None


def round_measurements(value: Any, key: str = "") -> Any:
    """``value`` (a message as JSON data) with each measurement rounded to its real precision."""
    if isinstance(value, dict):
        return {k: round_measurements(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [round_measurements(v, key) for v in value]
    if isinstance(value, float):
        decimals = _decimals(key)
        return value if decimals is None else round(value, decimals)
    return value


def _compact_json(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return self.model_dump_json()


# --- alarm -------------------------------------------------------------------------

AlarmState = Literal["confirmed", "updated", "cleared", "test"]
RangeSource = Literal["lidar", "terrain", "earth", "triangulated", "none"]


class TowerRef(_Model):
    id: str = Field(min_length=1, max_length=64)
    lat: Latitude
    lon: Longitude


class LatLon(_Model):
    lat: Latitude
    lon: Longitude


class Uncertainty(_Model):
    """The one error-ellipse type: geolocation makes it, the alarm book keeps it, the
    alarm carries it. Orientation of the major axis clockwise from north."""

    semi_major_m: float = Field(ge=0.0)
    semi_minor_m: float = Field(ge=0.0)
    orientation_deg: float = Field(ge=0.0, lt=180.0)
    # The probability that the fire lies inside the ellipse; named `level` so that it is
    # never read as the alarm's `confidence` (the belief that it is a fire at all).
    level: float = ELLIPSE_LEVEL

    @model_validator(mode="after")
    def _major_is_major(self) -> Uncertainty:
        if self.level != ELLIPSE_LEVEL:
            raise ValueError(f"uncertainty: level must be {ELLIPSE_LEVEL}, got {self.level}")
        if self.semi_minor_m > self.semi_major_m:
            raise ValueError(
                f"uncertainty: semi_minor_m {self.semi_minor_m} exceeds semi_major_m {self.semi_major_m}"
            )
        return self


class Evidence(_Model):
    """What each sensor saw; free-form measurements per sensor, absent when not used."""

    thermal: dict[str, Any] | None = None
    visible: dict[str, Any] | None = None
    lidar: dict[str, Any] | None = None


class FireSize(_Model):
    a_eq_m2: float = Field(ge=0.0)
    growth_m2_per_min: float


class AlarmMessage(_Model):
    """One `towerwatch.alarm/1` message (one per alarm state change)."""

    schema_: Literal["towerwatch.alarm/1"] = Field(default=ALARM_SCHEMA, alias="schema")
    alarm_id: AlarmId
    # A signed 64-bit integer, as the hub stores it (SQLite INTEGER, PostgreSQL BIGINT).
    seq: int = Field(ge=1, le=2**63 - 1)
    state: AlarmState
    first_seen: IsoTime
    confirmed_at: IsoTime
    sent_at: IsoTime
    tower: TowerRef
    position: LatLon | None
    uncertainty: Uncertainty | None
    bearing_deg: float = Field(ge=0.0, lt=360.0)
    # 1-σ of bearing_deg as the tower states it (pan calibration and centroid); the hub
    # weights bearings by it when it triangulates.
    bearing_sigma_deg: float = Field(gt=0.0, le=180.0)
    elevation_deg: float = Field(ge=-90.0, le=90.0)
    range_m: float | None = Field(ge=0.0)
    range_min_m: float | None = Field(ge=0.0)
    range_max_m: float | None = Field(ge=0.0)
    range_source: RangeSource
    bearing_only: bool
    evidence: Evidence
    size: FireSize | None
    confidence: float = Field(ge=0.0, le=1.0)
    # One line a duty officer can read aloud; added to towerwatch.alarm/1 as an optional
    # field (empty from older towers), so the schema version stays.
    summary: str = ""

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True
    )

    @model_validator(mode="after")
    def _consistent(self) -> AlarmMessage:
        if not self.bearing_only:
            if self.position is None or self.uncertainty is None:
                raise ValueError("alarm: position and uncertainty are required unless bearing_only")
            if self.range_source == "none" or self.range_m is None:
                raise ValueError(
                    "alarm: a located fire needs range_m and a range_source other than none"
                )
        lo, mid, hi = self.range_min_m, self.range_m, self.range_max_m
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"alarm: range_min_m {lo} > range_max_m {hi}")
        if mid is not None and ((lo is not None and mid < lo) or (hi is not None and mid > hi)):
            raise ValueError(f"alarm: range_m {mid} outside [{lo}, {hi}]")
        if parse_iso_z(self.confirmed_at) < parse_iso_z(self.first_seen):
            raise ValueError("alarm: confirmed_at is before first_seen")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The message as sent: measurements rounded to their precision (here, in one place)."""
        data: dict[str, Any] = round_measurements(self.model_dump(mode="json", by_alias=True))
        return data

    def to_json(self) -> str:
        return _compact_json(self.to_dict())

    @classmethod
    def from_json(cls, payload: bytes | str) -> AlarmMessage:
        """Parse and validate a received alarm (what the hub does)."""
        return cls.model_validate_json(payload)


_STATE_WORDS = {
    "confirmed": "fire confirmed",
    "updated": "fire update",
    "cleared": "fire cleared",
    "test": "TEST alarm",
}


def alarm_summary(
    *,
    tower_id: str,
    state: AlarmState,
    bearing_deg: float,
    range_m: float | None,
    range_min_m: float | None,
    range_max_m: float | None,
    range_source: RangeSource,
    bearing_only: bool,
    a_eq_m2: float | None,
    growth_m2_per_min: float,
    confidence: float,
) -> str:
    """The alarm in one line, e.g. 'tw-01: fire confirmed at bearing 123.45°, 7.0–30.0 km
    (bearing only), 2 m² growing, confidence 0.92'."""
    # an unknown state is left for the model's validation to refuse with its field name
    parts = [f"{tower_id}: {_STATE_WORDS.get(state, state)} at bearing {bearing_deg % 360.0:.2f}°"]
    if bearing_only or range_m is None:
        if range_min_m is not None and range_max_m is not None:
            parts.append(f"{range_min_m / 1000:.1f}–{range_max_m / 1000:.1f} km (bearing only)")
        else:
            parts.append("range unknown (bearing only)")
    else:
        parts.append(f"{range_m / 1000:.1f} km ({range_source})")
    if a_eq_m2 is not None:
        trend = "growing" if growth_m2_per_min > 0 else "steady"
        if growth_m2_per_min < 0:
            trend = "shrinking"
        parts.append(f"{a_eq_m2:.0f} m² {trend}")
    parts.append(f"confidence {confidence:.2f}")
    return ", ".join(parts)


def build_alarm(
    *,
    alarm_id: str,
    seq: int,
    state: AlarmState,
    first_seen_s: float,
    confirmed_at_s: float,
    sent_at_s: float,
    tower_id: str,
    tower_lat: float,
    tower_lon: float,
    bearing_deg: float,
    bearing_sigma_deg: float,
    elevation_deg: float,
    range_source: RangeSource,
    position: tuple[float, float] | None = None,
    uncertainty: Uncertainty | None = None,
    range_m: float | None = None,
    range_min_m: float | None = None,
    range_max_m: float | None = None,
    bearing_only: bool = False,
    thermal: dict[str, Any] | None = None,
    visible: dict[str, Any] | None = None,
    lidar: dict[str, Any] | None = None,
    a_eq_m2: float | None = None,
    growth_m2_per_min: float = 0.0,
    confidence: float,
) -> AlarmMessage:
    """Build a validated alarm from code-side values (unix seconds, (lat, lon) tuples).

    Bearing is normalised to [0, 360). Raises pydantic.ValidationError naming the
    offending field.
    """
    return AlarmMessage.model_validate(
        {
            "schema": ALARM_SCHEMA,
            "alarm_id": alarm_id,
            "seq": seq,
            "state": state,
            "first_seen": iso_z(first_seen_s),
            "confirmed_at": iso_z(confirmed_at_s),
            "sent_at": iso_z(sent_at_s),
            "tower": {"id": tower_id, "lat": tower_lat, "lon": tower_lon},
            "position": None if position is None else {"lat": position[0], "lon": position[1]},
            "uncertainty": uncertainty,
            "bearing_deg": bearing_deg % 360.0,
            "bearing_sigma_deg": bearing_sigma_deg,
            "elevation_deg": elevation_deg,
            "range_m": range_m,
            "range_min_m": range_min_m,
            "range_max_m": range_max_m,
            "range_source": range_source,
            "bearing_only": bearing_only,
            "evidence": {"thermal": thermal, "visible": visible, "lidar": lidar},
            "size": None
            if a_eq_m2 is None
            else {"a_eq_m2": a_eq_m2, "growth_m2_per_min": growth_m2_per_min},
            "confidence": confidence,
            "summary": alarm_summary(
                tower_id=tower_id,
                state=state,
                bearing_deg=bearing_deg,
                range_m=range_m,
                range_min_m=range_min_m,
                range_max_m=range_max_m,
                range_source=range_source,
                bearing_only=bearing_only,
                a_eq_m2=a_eq_m2,
                growth_m2_per_min=growth_m2_per_min,
                confidence=confidence,
            ),
        }
    )


# --- status ------------------------------------------------------------------------

TowerState = Literal["online", "degraded", "offline"]
SensorState = Literal["ok", "degraded", "failed", "absent"]


class SensorHealth(_Model):
    state: SensorState
    detail: str | None = None
    last_seen: IsoTime | None = None


class TowerPosition(_Model):
    lat: Latitude
    lon: Longitude
    height_m: float | None = None


class StatusMessage(_Model):
    """The retained `status` payload; the Last Will is `offline_status()`."""

    schema_: Literal["towerwatch.status/1"] = Field(default=STATUS_SCHEMA, alias="schema")
    tower_id: str = Field(min_length=1, max_length=64)
    state: TowerState
    reasons: tuple[str, ...] = ()
    heartbeat_at: IsoTime | None = None
    version: str | None = None
    uptime_s: float | None = Field(default=None, ge=0.0)
    sensors: dict[str, SensorHealth] = Field(default_factory=dict)
    outbox_depth: int | None = Field(default=None, ge=0)
    position: TowerPosition | None = None
    patrol_cycle_s: float | None = Field(default=None, ge=0.0)
    detection_range_m: float | None = Field(default=None, ge=0.0)
    counters: dict[str, int] = Field(default_factory=dict)

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True
    )

    def to_dict(self) -> dict[str, Any]:
        """The status as sent: measurements rounded to their precision, like the alarm's."""
        dumped = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        data: dict[str, Any] = round_measurements(dumped)
        return data

    def to_json(self) -> str:
        return _compact_json(self.to_dict())


def offline_status(tower_id: str, reason: str) -> StatusMessage:
    """The status a tower leaves behind: as Last Will (`connection lost`) or on shutdown."""
    return StatusMessage(tower_id=tower_id, state="offline", reasons=(reason,))


# --- commands ----------------------------------------------------------------------


class CommandError(Exception):
    """A command is refused; the message is the reason sent back on the reply topic."""


# A real command is a few hundred bytes; the cap is checked before any JSON parsing so a
# 2 MB payload or a 5000-digit number never reaches the decoder.
MAX_COMMAND_BYTES: Final = 4096


class _Command(_Model):
    # The verb of `cmd/<verb>` this model is the payload of: the one command table
    # (COMMAND_MODELS) is built from it.
    verb: ClassVar[CommandVerb]
    # strict: JSON `true` is not a number and `"5"` is not 5.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=True)

    # Echoed in the reply so the hub can match it to its request.
    request_id: str | None = Field(default=None, min_length=1, max_length=128)
    # When the hub issued the command; optional. With it the uplink refuses a command
    # that is older than its age limit (a stale or replayed one); without it only MQTT
    # message expiry and the retained flag guard against stale commands.
    issued_at: IsoTime | None = None


class RecheckCommand(_Command):
    """Look now at a bearing (and optionally an elevation), or at a lat/lon."""

    verb = CommandVerb.RECHECK

    bearing_deg: float | None = Field(default=None, ge=0.0, lt=360.0)
    elevation_deg: float | None = Field(default=None, ge=-90.0, le=90.0)
    lat: Latitude | None = None
    lon: Longitude | None = None

    @model_validator(mode="after")
    def _one_target(self) -> RecheckCommand:
        by_bearing = self.bearing_deg is not None
        by_point = self.lat is not None or self.lon is not None
        if by_bearing == by_point:
            raise ValueError("give either bearing_deg or lat and lon")
        if by_point and (self.lat is None or self.lon is None):
            raise ValueError("lat and lon go together")
        if self.elevation_deg is not None and not by_bearing:
            raise ValueError("elevation_deg only goes with bearing_deg")
        return self


class GotoCommand(_Command):
    """Point the head at a pan/tilt (calibrated degrees) and hold it there."""

    verb = CommandVerb.GOTO

    pan_deg: float = Field(ge=0.0, lt=360.0)
    tilt_deg: float = Field(ge=-90.0, le=90.0)
    hfov_deg: float | None = Field(default=None, gt=0.0, le=180.0)
    hold_s: float = Field(default=60.0, gt=0.0, le=3600.0)


class TestAlarmCommand(_Command):
    """Publish an alarm in state `test` end to end (never a real one)."""

    verb = CommandVerb.TEST_ALARM

    note: str | None = Field(default=None, max_length=200)


class RelayResetCommand(_Command):
    """Switch the alarm relay off and re-arm it."""

    verb = CommandVerb.RELAY_RESET


Command = RecheckCommand | GotoCommand | TestAlarmCommand | RelayResetCommand

# verb → payload model; the daemon's handlers are keyed by the same verbs and checked
# against this table when it starts.
COMMAND_MODELS: Final[dict[CommandVerb, type[Command]]] = {
    model.verb: model
    for model in (RecheckCommand, GotoCommand, TestAlarmCommand, RelayResetCommand)
}


def _describe(err: ValidationError) -> str:
    parts = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "payload"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_command(verb: str, payload: bytes) -> Command:
    """Validate a command payload strictly; CommandError gives the reason to send back.

    An empty payload means `{}` (for verbs without required fields).
    """
    try:
        known = CommandVerb(verb)
    except ValueError:
        raise CommandError(
            f"unknown command {verb[:40]!r}; known: {', '.join(v.value for v in CommandVerb)}"
        ) from None
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandError(
            f"{verb}: payload of {len(payload)} bytes is over the {MAX_COMMAND_BYTES}-byte limit"
        )
    text = payload.strip() or b"{}"
    try:
        data = json.loads(text)
    except UnicodeDecodeError:
        raise CommandError(f"{verb}: payload is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise CommandError(f"{verb}: payload is not JSON: {err}") from None
    except ValueError:
        # e.g. an integer past Python's digit limit
        raise CommandError(f"{verb}: payload holds a number too large to read") from None
    except RecursionError:
        raise CommandError(f"{verb}: payload is nested too deeply") from None
    if not isinstance(data, dict):
        raise CommandError(f"{verb}: payload must be a JSON object, got {type(data).__name__}")
    try:
        command: Command = COMMAND_MODELS[known].model_validate(data)
    except ValidationError as err:
        raise CommandError(f"{verb}: {_describe(err)}") from None
    return command


def command_reply(
    verb: str,
    *,
    ok: bool,
    replied_at_s: float,
    request_id: str | None = None,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON object sent on `cmd/<verb>/reply`."""
    reply: dict[str, Any] = {
        "schema": REPLY_SCHEMA,
        "verb": verb,
        "ok": ok,
        "replied_at": iso_z(replied_at_s),
    }
    if request_id is not None:
        reply["request_id"] = request_id
    if error is not None:
        reply["error"] = error
    if result:
        reply.update({k: v for k, v in result.items() if k not in reply})
    return reply
