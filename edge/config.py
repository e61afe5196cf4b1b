"""The one config schema of the daemon: YAML in, frozen typed objects out.

Every field carries its unit in its name, its bounds and a description; unknown keys,
duplicate keys, wrong types and out-of-range values are refused with one message per
problem naming file, line and key path. Device sections (thermal, visible, ptz, lidar,
gnss, relay) are validated by the driver their ``type`` names (drivers.registry).
Runtime state never lives here: the objects are frozen after load.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import annotated_types
import yaml
from pydantic import (
    BaseModel,
    Field,
    InstanceOf,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from drivers.base import StrictSettings
from drivers.registry import UnknownDriver, driver_module
from drivers.relay_rules import RelayTimingSettings
from edge.yamlsource import KeyPath, YamlDocument, dotted, load_yaml_file

DEVICE_SECTIONS: dict[str, bool] = {
    # section → required
    "thermal": True,
    "visible": False,
    "ptz": True,
    "lidar": False,
    "gnss": False,
    "relay": False,
}


class ConfigError(Exception):
    """The config cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class KeysConflict(ValueError):
    """Two keys of different sections disagree; reported at ``key_path``."""

    def __init__(self, key_path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.key_path = key_path


# --------------------------------------------------------------------------- sections


class TowerSettings(StrictSettings):
    id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="tower identifier: MQTT topic level and client id (letters, digits, - and "
        "_; not `hub`, the hub's own)",
    )
    name: str = Field("", max_length=200, description="human-readable tower name")
    lat: float = Field(ge=-90.0, le=90.0, description="camera position, WGS84 latitude")
    lon: float = Field(ge=-180.0, le=180.0, description="camera position, WGS84 longitude")
    ground_elevation_m: float = Field(
        ge=-500.0, le=9000.0, description="ground at the tower foot, metres above MSL"
    )
    mast_height_m: float = Field(
        ge=0.0, le=500.0, description="camera height above the ground at the tower foot"
    )

    @field_validator("id")
    @classmethod
    def _not_the_hubs(cls, value: str) -> str:
        # The county hub's topic level and broker identity (config/mosquitto/acl).
        if value == "hub":
            raise ValueError("`hub` is the county hub's own identity; pick another tower id")
        return value

    @property
    def camera_altitude_m(self) -> float:
        return self.ground_elevation_m + self.mast_height_m


class CameraSettings(StrictSettings):
    """The thermal camera's optics and sensor (the link budget and geolocation use them)."""

    width_px: int = Field(640, ge=16, le=8192, description="sensor width in pixels")
    height_px: int = Field(512, ge=16, le=8192, description="sensor height in pixels")
    pixel_pitch_um: float = Field(12.0, ge=3.0, le=60.0, description="detector pitch")
    focal_length_mm: float = Field(75.0, ge=3.0, le=1500.0, description="patrol focal length")
    zoom_focal_length_mm: float = Field(
        75.0, ge=3.0, le=1500.0, description="longest focal length, used to confirm"
    )
    f_number: float = Field(1.0, ge=0.5, le=8.0, description="lens f-number")
    netd_mk: float = Field(50.0, ge=5.0, le=1000.0, description="noise-equivalent ΔT in mK")
    lens_efficiency: float = Field(
        0.8, gt=0.0, le=1.0, description="real lens and crosstalk factor on the peak-pixel flux"
    )
    radiometric: bool = Field(True, description="the stream carries calibrated temperatures")

    @model_validator(mode="after")
    def _zoom_not_shorter(self) -> CameraSettings:
        if self.zoom_focal_length_mm < self.focal_length_mm:
            raise ValueError(
                "zoom_focal_length_mm must be ≥ focal_length_mm "
                f"({self.zoom_focal_length_mm} < {self.focal_length_mm})"
            )
        return self

    def fov_deg(self, focal_length_mm: float, pixels: int) -> float:
        half_mm = pixels * self.pixel_pitch_um * 1e-3 / 2.0
        return math.degrees(2.0 * math.atan(half_mm / focal_length_mm))

    @property
    def hfov_deg(self) -> float:
        return self.fov_deg(self.focal_length_mm, self.width_px)

    @property
    def vfov_deg(self) -> float:
        return self.fov_deg(self.focal_length_mm, self.height_px)

    @property
    def zoom_hfov_deg(self) -> float:
        return self.fov_deg(self.zoom_focal_length_mm, self.width_px)

    @property
    def ifov_mrad(self) -> float:
        return self.pixel_pitch_um / self.focal_length_mm


class WeatherSettings(StrictSettings):
    """Today's air, for the atmospheric transmittance (until a weather sensor reports it)."""

    air_temp_c: float = Field(10.0, ge=-60.0, le=60.0, description="air temperature")
    relative_humidity_pct: float = Field(50.0, ge=0.0, le=100.0, description="humidity")
    visibility_km: float = Field(23.0, gt=0.0, le=300.0, description="meteorological visibility")
    pressure_hpa: float = Field(1013.25, ge=500.0, le=1100.0, description="air pressure")
    wind_speed_m_s: float = Field(
        5.0, ge=0.0, le=40.0, description="wind speed: how far smoke drifts from its fire"
    )


class MissionFire(StrictSettings):
    size_m: float = Field(gt=0.0, le=200.0, description="fire front width (square fire)")
    range_m: float = Field(gt=0.0, le=60000.0, description="range at which it must be seen")


class CoverageSettings(StrictSettings):
    mission_fires: tuple[MissionFire, ...] = Field(
        (MissionFire(size_m=2.0, range_m=10000.0), MissionFire(size_m=6.0, range_m=20000.0)),
        description="fires the tower must detect; status reports the range they are seen at today",
    )
    required_range_m: float = Field(
        20000.0, gt=0.0, le=60000.0, description="below this detection range the tower is degraded"
    )


class KnownSource(StrictSettings):
    """A permanent heat source mapped at commissioning (flare stack, pipeline, pump...)."""

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["flare", "pipeline", "pumping_unit", "chimney", "building", "other"] = "other"
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    height_m: float = Field(0.0, ge=0.0, le=500.0, description="hot part above the ground")
    radius_m: float = Field(30.0, gt=0.0, le=5000.0, description="extent to exclude around it")


class ExclusionZone(StrictSettings):
    """A circle on the ground where hotspots are never fire alarms (a gas plant, a kiln yard,
    a firing range): a candidate whose line of sight meets the ground inside it is rejected
    as ``masked``. One shape, a circle, so `calibrate mask` can place it from one point."""

    name: str = Field(min_length=1, max_length=100, description="unique; shown in the logs")
    lat: float = Field(ge=-90.0, le=90.0, description="centre, WGS84 latitude")
    lon: float = Field(ge=-180.0, le=180.0, description="centre, WGS84 longitude")
    radius_m: float = Field(gt=0.0, le=20000.0, description="radius on the ground")
    reason: str = Field("", max_length=200, description="why it is masked, for the next technician")


class MapPoint(StrictSettings):
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)


class MappedRoad(StrictSettings):
    """A road or track from the GIS: hotspots on it need more evidence (vehicles park)."""

    name: str = Field(min_length=1, max_length=100)
    points: tuple[MapPoint, ...] = Field(min_length=2, description="the centre line, in order")
    width_m: float = Field(10.0, gt=0.0, le=200.0, description="carriageway plus verges")


class DetectionSettings(StrictSettings):
    """Thermal hotspot thresholds (docs/algorithms/hotspot-detection.md); day and night pairs."""

    k_sigma_day: float = Field(4.0, ge=1.0, le=20.0, description="contextual test k·δ, day")
    k_sigma_night: float = Field(3.5, ge=1.0, le=20.0, description="contextual test k·δ, night")
    min_excess_day_k: float = Field(10.0, ge=0.5, le=200.0, description="ΔT_min by day")
    min_excess_night_k: float = Field(6.0, ge=0.5, le=200.0, description="ΔT_min by night")
    absolute_day_k: float = Field(360.0, ge=300.0, le=2000.0, description="absolute branch, day")
    absolute_night_k: float = Field(
        330.0, ge=280.0, le=2000.0, description="absolute branch, night"
    )
    sun_elevation_day_deg: float = Field(
        -3.0, ge=-18.0, le=20.0, description="sun elevation above which day thresholds apply"
    )


class PatrolSettings(StrictSettings):
    azimuth_start_deg: float = Field(0.0, ge=0.0, lt=360.0, description="sector start, clockwise")
    azimuth_span_deg: float = Field(360.0, gt=0.0, le=360.0, description="sector width")
    tilt_deg: float = Field(-0.3, ge=-30.0, le=30.0, description="elevation of the patrol row")
    overlap_fraction: float = Field(0.1, ge=0.0, le=0.5, description="overlap between stops")
    # The head says when it stands still (the PTZ worker's arrival test includes its
    # "moving" flag, which a head clears after its own servo settle); this is only the
    # margin for that status to be polled (0.1 s) and a frame already on its way.
    settle_s: float = Field(
        0.2, ge=0.0, le=10.0, description="wait after the head reports still before frames count"
    )
    # The detector qualifies a hotspot after 1.0 s of frames (SuppressionParams
    # min_duration_s); 1.2 s leaves a frame or two to spare. detection_quality.py --dwell
    # found the same detection rate and false candidates at 1.2, 1.5 and 2.0 s.
    dwell_s: float = Field(1.2, gt=0.0, le=60.0, description="time spent looking at each stop")
    min_frames: int = Field(
        9, ge=1, le=500, description="frames each stop needs at least (the detectors' tests)"
    )
    presets: tuple[str, ...] = Field(
        (), description="patrol through these head presets instead of an automatic tiling"
    )
    sun_avoidance_margin_deg: float = Field(
        5.0, ge=0.0, le=45.0, description="keep the sun this far outside the field of view"
    )
    goto_max_hold_s: float = Field(
        300.0, gt=0.0, le=3600.0, description="longest a hub `goto` may hold the head still"
    )
    goto_tilt_min_deg: float = Field(
        -30.0, ge=-90.0, le=90.0, description="lowest tilt a hub `goto` may ask for"
    )
    goto_tilt_max_deg: float = Field(
        30.0, ge=-90.0, le=90.0, description="highest tilt a hub `goto` may ask for"
    )


class ConfirmationSettings(StrictSettings):
    """The fire-point localisation scan (docs/algorithms/confirmation.md)."""

    settle_s: float = Field(1.0, ge=0.0, le=10.0, description="wait after centring and zooming")
    dwell_s: float = Field(10.0, ge=5.0, le=30.0, description="re-measurement time")
    persistence_fraction: float = Field(0.8, gt=0.0, le=1.0, description="frames that must see it")
    revisit_after_s: float = Field(60.0, ge=5.0, le=3600.0, description="when undecided")
    max_revisits: int = Field(3, ge=0, le=10, description="undecided revisits before dismissal")
    dismissed_memory_s: float = Field(
        1800.0, ge=0.0, le=86400.0, description="how long a dismissed spot is ignored"
    )
    lidar_shots: int = Field(
        250, ge=1, le=65535, description="lidar shots averaged per direction of the cued fan"
    )
    lidar_max_scans: int = Field(
        24, ge=1, le=200, description="directions of the cued fan at most (they share the dwell)"
    )
    lidar_azimuth_step_deg: float = Field(
        0.2, gt=0.0, le=5.0, description="azimuth step of the fan: narrower than a plume"
    )


class AlarmSettings(StrictSettings):
    clear_after_s: float = Field(600.0, ge=10.0, le=86400.0, description="fire gone this long")
    update_min_interval_s: float = Field(30.0, ge=1.0, le=3600.0, description="rate limit")
    merge_radius_m: float = Field(500.0, ge=10.0, le=20000.0, description="same fire within this")
    merge_bearing_deg: float = Field(
        1.0,
        ge=0.05,
        le=10.0,
        description="same fire within this bearing when only bearings are known",
    )
    merge_elevation_deg: float = Field(
        0.1,
        ge=0.01,
        le=5.0,
        description="... and within this elevation: two fires on one bearing at different "
        "ranges are two alarms",
    )
    revisit_interval_s: float = Field(
        120.0, ge=10.0, le=3600.0, description="re-look at open fires"
    )
    update_position_m: float = Field(
        50.0, gt=0.0, le=5000.0, description="an update is sent when the fire moved this far"
    )
    update_bearing_deg: float = Field(
        0.25, gt=0.0, le=10.0, description="... or its bearing turned this much (bearing-only)"
    )
    update_size_ratio: float = Field(
        1.5, gt=1.0, le=100.0, description="... or its area changed by this factor"
    )
    update_growth_m2_per_min: float = Field(
        1.0, gt=0.0, le=10_000.0, description="... or its growth rate by this much"
    )
    update_spread_deg: float = Field(
        30.0, gt=0.0, le=180.0, description="... or its spread direction by this much"
    )
    spread_min_displacement_m: float = Field(
        30.0, gt=0.0, le=5000.0, description="a spread direction needs this much movement"
    )
    spread_min_span_s: float = Field(
        60.0, gt=0.0, le=86400.0, description="... over at least this long"
    )
    track_length: int = Field(
        6, ge=2, le=100, description="sightings kept per alarm for growth and spread"
    )


class AlarmOutputSettings(StrictSettings):
    """What the relay output does on a confirmed fire (siren, strobe, sprinkler)."""

    on_time_s: float = Field(
        0.0, ge=0.0, le=86400.0, description="open again after this long; 0 = until relay-reset"
    )
    hold_while_open: bool = Field(
        True, description="keep the contact closed while any alarm is open"
    )


def relay_output_conflict(output: AlarmOutputSettings, relay: RelayTimingSettings) -> None:
    """Refuse relay timings that would disagree with alarm_output, naming both keys.

    alarm_output owns when the contact opens; the driver's limits are the equipment's.
    If the equipment opened the contact first, the daemon would count it closed, so the
    alarm's on-time must end within the hardware limit and last at least the minimum.
    """
    limit_s = relay.hardware_max_on_s
    if limit_s is not None and output.on_time_s == 0.0:
        raise KeysConflict(
            ("alarm_output", "on_time_s"),
            f"alarm_output.on_time_s 0 holds the contact until relay-reset, but "
            f"relay.hardware_max_on_s opens it after {limit_s:g} s; set "
            f"alarm_output.on_time_s to at most {limit_s:g} or remove relay.hardware_max_on_s",
        )
    if limit_s is not None and output.on_time_s > limit_s:
        raise KeysConflict(
            ("alarm_output", "on_time_s"),
            f"alarm_output.on_time_s ({output.on_time_s:g} s) is longer than "
            f"relay.hardware_max_on_s ({limit_s:g} s) lets the contact stay closed; "
            "lower the first or raise the second",
        )
    if limit_s is not None and output.hold_while_open:
        raise KeysConflict(
            ("alarm_output", "hold_while_open"),
            f"alarm_output.hold_while_open keeps the contact closed while an alarm is open, "
            f"longer than relay.hardware_max_on_s ({limit_s:g} s) allows; set "
            "alarm_output.hold_while_open to false or remove relay.hardware_max_on_s",
        )
    if 0.0 < output.on_time_s < relay.min_on_s:
        raise KeysConflict(
            ("alarm_output", "on_time_s"),
            f"alarm_output.on_time_s ({output.on_time_s:g} s) is shorter than "
            f"relay.min_on_s ({relay.min_on_s:g} s), which keeps the contact closed longer; "
            "raise the first or lower the second",
        )


class GeolocationSettings(StrictSettings):
    sigma_pan_deg: float = Field(0.05, ge=0.0, le=5.0, description="pan accuracy after calibration")
    sigma_tilt_deg: float = Field(0.05, ge=0.0, le=5.0, description="tilt accuracy")
    refraction_k: float = Field(0.13, ge=-4.0, le=16.0, description="refraction coefficient")
    sigma_refraction_k: float = Field(0.3, ge=0.0, le=10.0, description="its uncertainty")
    dem_path: Path | None = Field(None, description="terrain model; flat ground when absent")
    sigma_dem_m: float = Field(2.0, ge=0.0, le=100.0, description="terrain height uncertainty")
    canopy_height_m: float = Field(2.0, ge=0.0, le=60.0, description="reed or forest height")
    max_range_m: float = Field(30000.0, gt=0.0, le=100000.0, description="farthest ground hit")
    sigma_lidar_m: float = Field(
        7.5, ge=0.0, le=1000.0, description="lidar range accuracy on a plume (bin and centroid)"
    )
    plume_rise_m_s: float = Field(
        1.5, gt=0.0, le=20.0, description="how fast smoke rises: a plume leans wind/rise downwind"
    )


class TlsSettings(StrictSettings):
    ca_file: Path = Field(description="CA bundle that signed the broker's certificate")
    cert_file: Path | None = Field(None, description="client certificate (mutual TLS)")
    key_secret: str | None = Field(None, description="secret name of the client key file")


class MqttSettings(StrictSettings):
    host: str = Field("127.0.0.1", min_length=1, description="hub broker host")
    port: int = Field(1883, ge=1, le=65535, description="hub broker port")
    topic_prefix: str = Field(
        "towerwatch", pattern=r"^[^#+/][^#+]*$", description="topic root before the tower id"
    )
    client_id: str | None = Field(None, description="defaults to the tower id")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive")
    session_expiry_s: int = Field(7 * 86400, ge=0, le=2**31, description="broker keeps our session")
    username: str | None = Field(None, description="broker user")
    password_secret: str | None = Field(None, description="secret name holding the password")
    tls: TlsSettings | None = None
    status_interval_s: float = Field(30.0, ge=1.0, le=3600.0, description="heartbeat period")


class StorageSettings(StrictSettings):
    state_dir: Path = Field(Path("/var/lib/towerwatch"), description="outbox, alarms, snapshots")
    outbox_max_messages: int = Field(10000, ge=10, le=10_000_000, description="outbox size cap")
    snapshots_max_mb: float = Field(
        200.0, gt=0.0, le=100_000.0, description="oldest alarm snapshots are deleted beyond this"
    )


class LoggingSettings(StrictSettings):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: human-readable on a terminal, JSON lines otherwise"
    )


class SecretsSettings(StrictSettings):
    directory: Path | None = Field(
        None,
        description="folder of secret files; default: systemd's $CREDENTIALS_DIRECTORY",
    )
    allow_readable_files: bool = Field(
        False,
        description="accept secret files that group or others may read "
        "(only for the simulator's demo password checked into git)",
    )


# The device settings class is picked by `type`; serialise the instance it is, not the base.
DriverSection = SerializeAsAny[InstanceOf[StrictSettings]]


class LidarSweepSettings(StrictSettings):
    """The lidar's own background sweep of a priority sector (docs/physics/smoke-lidar.md).

    Off by default: which sector deserves the lidar's idle time (reed that hides a low
    fire's flames, wetland behind a dyke) is the site survey's decision.
    """

    enabled: bool = Field(False, description="sweep the sector while no cued fan holds the lidar")
    azimuth_start_deg: float = Field(0.0, ge=0.0, lt=360.0, description="sector start (true north)")
    azimuth_span_deg: float = Field(30.0, gt=0.0, le=360.0, description="sector width, clockwise")
    elevations_deg: tuple[float, ...] = Field(
        (0.0, 0.3),
        min_length=1,
        max_length=8,
        description="beam elevations swept, lowest first: just above the skyline, where "
        "smoke rises out of the reed",
    )
    azimuth_step_deg: float = Field(
        0.2, gt=0.0, le=5.0, description="azimuth step: narrower than a plume at long range"
    )
    shots: int = Field(250, ge=1, le=65535, description="shots averaged per direction")
    alarm_without_thermal: bool = Field(
        True,
        description="smoke the camera cannot confirm raises an alarm on the lidar's fix "
        "(range_source lidar, no size)",
    )
    quiet_after_fix_s: float = Field(
        300.0,
        ge=0.0,
        le=86400.0,
        description="a plume reported (or a haze layer seen) is not chased again this long",
    )

    @field_validator("elevations_deg")
    @classmethod
    def _elevations_in_range(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not -10.0 <= e <= 30.0 for e in value):
            raise ValueError("each elevation must lie within -10…30°")
        return tuple(sorted(value))


class TowerConfig(StrictSettings):
    """The whole daemon config (one file per tower)."""

    schema_version: Literal[1] = Field(description="config schema version")
    tower: TowerSettings
    time_source: Literal["system", "camera"] = Field(
        "system",
        description="system: the gateway clock (field); camera: the frame timestamps, "
        "which a simulated tower running faster than real time carries",
    )
    camera: CameraSettings = CameraSettings()
    thermal: DriverSection
    visible: DriverSection | None = None
    ptz: DriverSection
    lidar: DriverSection | None = None
    gnss: DriverSection | None = None
    relay: DriverSection | None = None
    weather: WeatherSettings = WeatherSettings()
    coverage: CoverageSettings = CoverageSettings()
    known_sources: tuple[KnownSource, ...] = ()
    roads: tuple[MappedRoad, ...] = ()
    exclusion_zones: tuple[ExclusionZone, ...] = Field(
        (),
        description="ground circles whose hotspots are rejected as 'masked' "
        "(name, lat, lon, radius_m, reason); edited by `towerwatch calibrate mask`",
    )
    detection: DetectionSettings = DetectionSettings()
    patrol: PatrolSettings = PatrolSettings()
    confirmation: ConfirmationSettings = ConfirmationSettings()
    lidar_sweep: LidarSweepSettings = LidarSweepSettings()
    alarm: AlarmSettings = AlarmSettings()
    alarm_output: AlarmOutputSettings = AlarmOutputSettings()
    geolocation: GeolocationSettings = GeolocationSettings()
    mqtt: MqttSettings = MqttSettings()
    storage: StorageSettings = StorageSettings()
    logging: LoggingSettings = LoggingSettings()
    secrets: SecretsSettings = SecretsSettings()

    @model_validator(mode="after")
    def _one_relay_rule(self) -> TowerConfig:
        if isinstance(self.relay, RelayTimingSettings):
            relay_output_conflict(self.alarm_output, self.relay)
        return self

    def secrets_directory(self) -> Path | None:
        if self.secrets.directory is not None:
            return self.secrets.directory
        env = os.environ.get("CREDENTIALS_DIRECTORY")
        return Path(env) if env else None


# --------------------------------------------------------------------------- errors


def _walk_fields(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[Any, Any]:
    """(FieldInfo of the last key, the model class found there) along ``loc``."""
    current: Any = model
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None, None
        info = current.model_fields.get(part)
        if info is None:
            return None, None
        current = info.annotation
        # Optional[Model] / tuple[Model, ...]: step into the model
        for candidate in getattr(current, "__args__", ()) or ():
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
    return info, current


def _bounds_of(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[Any, Any]:
    """(lower, upper) bounds declared for the field at ``loc``, for readable messages."""
    info, _ = _walk_fields(model, loc)
    low = high = None
    for meta in info.metadata if info is not None else ():
        if isinstance(meta, annotated_types.Ge | annotated_types.Gt):
            low = getattr(meta, "ge", getattr(meta, "gt", None))
        if isinstance(meta, annotated_types.Le | annotated_types.Lt):
            high = getattr(meta, "le", getattr(meta, "lt", None))
    return low, high


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    current: Any = model if not loc else _walk_fields(model, loc)[1]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _describe(error: Any, model: type[BaseModel], loc: Sequence[str | int]) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        allowed = ""
        fields = _fields_at(model, loc[:-1])
        if fields:
            allowed = f" (allowed: {', '.join(sorted(fields))})"
        return f"unknown key{allowed}"
    if kind == "missing":
        return "required key is missing"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        low, high = _bounds_of(model, loc)
        if low is not None and high is not None:
            return f"must be {low}-{high}, got {value!r}"
        return f"{error['msg'].lower()}, got {value!r}"
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        return f"must be a whole number, got {value!r}"
    if kind in {"float_parsing", "float_type", "finite_number"}:
        return f"must be a number, got {value!r}"
    if kind in {"bool_parsing", "bool_type"}:
        return f"must be true or false, got {value!r}"
    if kind in {"string_type"}:
        return f"must be text, got {value!r}"
    if kind == "literal_error":
        return f"{error['msg'].lower()}, got {value!r}"
    if kind == "string_pattern_mismatch":
        return f"{value!r} is not allowed here ({error['msg'].lower()})"
    if kind in {"model_type", "dict_type"}:
        return f"must be a mapping of keys, got {value!r}"
    return f"{error['msg']}, got {value!r}" if value is not None else str(error["msg"])


def _report(
    exc: ValidationError,
    model: type[BaseModel],
    prefix: KeyPath,
    doc: YamlDocument,
    overrides: dict[KeyPath, str],
) -> list[str]:
    problems = []
    for error in exc.errors():
        loc: tuple[str | int, ...] = tuple(
            part for part in error["loc"] if isinstance(part, str | int)
        )
        # pydantic puts model-level (after-validator) errors at the model's own loc
        full = (*prefix, *loc)
        conflict = error.get("ctx", {}).get("error")
        if isinstance(conflict, KeysConflict):
            full = (*prefix, *conflict.key_path)
        where = _where(full, doc, overrides)
        message = _describe(error, model, loc)
        if error["type"] == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {dotted(full)}: {message}")
    return problems


def _where(path: KeyPath, doc: YamlDocument, overrides: dict[KeyPath, str]) -> str:
    for n in range(len(path), 0, -1):
        if path[:n] in overrides:
            return overrides[path[:n]]
    return doc.where(path)


# --------------------------------------------------------------------------- loading


def _apply_override(data: dict[str, Any], assignment: str) -> tuple[KeyPath, str | None]:
    """Apply one ``--set a.b.c=value``; returns the path, or an error message."""
    key, sep, raw_value = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        return (), f"--set {assignment}: expected KEY=VALUE, e.g. --set mqtt.port=1884"
    parts = key.split(".")
    if any(not part for part in parts):
        return (), f"--set {assignment}: {key!r} is not a key path"
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError as exc:
        return (), f"--set {assignment}: value is not valid YAML: {exc}"
    node: Any = data
    for part in parts[:-1]:
        child = node.get(part) if isinstance(node, dict) else None
        if child is None:
            child = {}
            node[part] = child
        if not isinstance(child, dict):
            return (), f"--set {assignment}: {part!r} is not a section"
        node = child
    node[parts[-1]] = value
    return tuple(parts), None


def _validate_devices(
    data: dict[str, Any], doc: YamlDocument, overrides: dict[KeyPath, str]
) -> list[str]:
    """Replace each device section by its driver's Settings; return the problems found."""
    problems: list[str] = []
    for section, required in DEVICE_SECTIONS.items():
        raw = data.get(section)
        path: KeyPath = (section,)
        if raw is None:
            if required:
                problems.append(
                    f"{_where(path, doc, overrides)}: {section}: required section is missing"
                )
            continue
        if not isinstance(raw, dict):
            problems.append(
                f"{_where(path, doc, overrides)}: {section}: must be a mapping with a 'type'"
            )
            continue
        type_name = raw.get("type")
        if not isinstance(type_name, str):
            problems.append(
                f"{_where(path, doc, overrides)}: {section}.type: required; names the driver"
            )
            continue
        try:
            module = driver_module(section, type_name)
        except UnknownDriver as exc:
            problems.append(f"{_where((*path, 'type'), doc, overrides)}: {section}.type: {exc}")
            continue
        except ImportError as exc:
            problems.append(
                f"{_where((*path, 'type'), doc, overrides)}: {section}.type: driver {type_name!r} "
                f"cannot be loaded: {exc}"
            )
            continue
        settings_cls = module.Settings
        try:
            data[section] = settings_cls.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_report(exc, settings_cls, path, doc, overrides))
    return problems


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> TowerConfig:
    """Load, override and validate a config file; raises ConfigError listing every problem."""
    doc = load_yaml_file(Path(path))
    # Duplicate keys are reported but the rest is still checked: one run, every problem.
    problems = list(doc.problems)
    data = doc.data
    if data is None:
        raise ConfigError(problems or [f"{doc.source}:1: the config file is empty"])
    if not isinstance(data, dict):
        raise ConfigError([*problems, f"{doc.source}:1: the config must be a mapping of sections"])
    override_sources: dict[KeyPath, str] = {}
    for assignment in overrides:
        key_path, error = _apply_override(data, assignment)
        if error:
            problems.append(error)
        else:
            override_sources[key_path] = f"--set {assignment}"
    problems.extend(_validate_devices(data, doc, override_sources))
    # Device sections that failed are dropped so their errors are not reported twice.
    for section in DEVICE_SECTIONS:
        if isinstance(data.get(section), dict):
            data.pop(section)
    try:
        config = TowerConfig.model_validate(data)
    except ValidationError as exc:
        for problem in _report(exc, TowerConfig, (), doc, override_sources):
            is_dropped_device = any(
                f": {section}: required key is missing" in problem for section in DEVICE_SECTIONS
            )
            if not is_dropped_device:
                problems.append(problem)
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config
