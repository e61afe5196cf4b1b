"""The hub's config schema: YAML in, frozen typed settings out, errors with file:line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from drivers.base import StrictSettings
from edge.config import ConfigError, _apply_override, _report
from edge.yamlsource import KeyPath, load_yaml_file
from hub.fires import FusionSettings

__all__ = ["ConfigError", "HubConfig", "load_hub_config"]


class HubTlsSettings(StrictSettings):
    """MQTT over TLS; with a client certificate the broker knows the hub by its Common
    Name (``hub`` in the sample ACL of config/mosquitto/)."""

    ca_file: Path = Field(description="CA bundle that signed the broker's certificate")
    cert_file: Path | None = Field(None, description="the hub's client certificate (mutual TLS)")
    key_file: Path | None = Field(
        None, description="the hub's client key; readable by its owner only (mode 0600)"
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> HubTlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file: give both or neither")
        return self


class HubMqttSettings(StrictSettings):
    host: str = Field("127.0.0.1", min_length=1, description="broker host")
    port: int = Field(1883, ge=1, le=65535, description="broker port")
    topic_prefix: str = Field(
        "towerwatch", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$", description="towers' prefix"
    )
    client_id: str = Field(
        "towerwatch-hub",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="MQTT client id; unique per hub instance (the session is kept under it)",
    )
    shared_group: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="MQTT 5 shared subscription group: hub instances in one group split the load",
    )
    username: str | None = Field(None, description="broker user name")
    password: str | None = Field(None, description="broker password")
    tls: HubTlsSettings | None = Field(None, description="TLS to the broker (port 8883)")
    keepalive_s: int = Field(30, ge=5, le=600, description="MQTT keepalive")
    session_expiry_s: int = Field(
        86400, ge=0, le=2**32 - 1, description="how long the broker queues for an absent hub"
    )


class StoreSettings(StrictSettings):
    backend: Literal["sqlite", "postgresql"] = Field(
        "sqlite", description="sqlite: one file; postgresql: shared by several hub instances"
    )
    sqlite_path: Path = Field(Path("var/hub/hub.sqlite3"), description="the SQLite store file")
    postgresql_dsn: str = Field(
        "postgresql://postgres@127.0.0.1:5432/towerwatch", description="libpq connection string"
    )
    postgresql_schema: str = Field(
        "towerwatch_hub", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="schema of the tables"
    )


class HttpSettings(StrictSettings):
    host: str = Field("127.0.0.1", min_length=1, description="address the web page listens on")
    port: int = Field(8090, ge=0, le=65535, description="HTTP port (0: any free port)")
    refresh_s: float = Field(2.0, ge=0.2, le=60.0, description="how often the page polls")
    anonymous_read: bool = Field(
        False, description="let requests without a session read fires and towers (never write)"
    )
    session_ttl_s: float = Field(
        12 * 3600.0, ge=60.0, le=7 * 86400.0, description="a login lasts this long (one shift)"
    )
    login_attempts: int = Field(
        5, ge=1, le=1000, description="failed logins allowed per address and per name per window"
    )
    login_window_s: float = Field(300.0, ge=1.0, le=86400.0, description="login rate window")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses of TLS reverse proxies whose X-Forwarded-Proto is believed",
    )


class FusionConfig(StrictSettings):
    default_bearing_sigma_deg: float = Field(
        0.05, gt=0.0, le=10.0, description="1σ bearing for alarms that do not state one"
    )
    window_s: float = Field(
        900.0, gt=0.0, le=86400.0, description="alarms this close in time may fuse"
    )
    min_angle_deg: float = Field(
        20.0, ge=1.0, le=89.0, description="shallower crossings are refused"
    )
    max_angle_deg: float = Field(
        160.0, ge=91.0, le=179.0, description="wider crossings are refused"
    )
    default_max_range_m: float = Field(
        40000.0, gt=0.0, le=200000.0, description="ray length when an alarm states no range"
    )
    debounce_s: float = Field(
        0.05, ge=0.0, le=10.0, description="wait after a message for more before fusing"
    )

    def settings(self) -> FusionSettings:
        return FusionSettings(
            default_bearing_sigma_deg=self.default_bearing_sigma_deg,
            window_s=self.window_s,
            min_angle_deg=self.min_angle_deg,
            max_angle_deg=self.max_angle_deg,
            default_max_range_m=self.default_max_range_m,
        )


class LimitSettings(StrictSettings):
    max_json_bytes: int = Field(
        65536, ge=1024, le=16 * 2**20, description="larger status/alarm payloads are refused"
    )
    max_snapshot_bytes: int = Field(
        4 * 2**20, ge=1024, le=64 * 2**20, description="larger snapshots are refused"
    )
    max_clock_ahead_s: float = Field(
        300.0, ge=0.0, le=86400.0, description="alarms sent further in the future are refused"
    )
    max_tower_shift_m: float = Field(
        2000.0,
        gt=0.0,
        le=1e6,
        description="alarms placing their tower further from its reported position are refused",
    )
    max_fire_range_m: float = Field(
        100_000.0,
        gt=0.0,
        le=1e6,
        description="alarms placing a fire (or its range) further from the tower are refused",
    )
    max_bearing_mismatch_deg: float = Field(
        10.0,
        gt=0.0,
        le=180.0,
        description="alarms whose position lies further off their own bearing are refused",
    )


class HubConfig(StrictSettings):
    mqtt: HubMqttSettings = Field(default_factory=HubMqttSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    limits: LimitSettings = Field(default_factory=LimitSettings)


def load_hub_config(path: str | Path, overrides: Iterable[str] = ()) -> HubConfig:
    """Load, override and validate a hub config; ConfigError lists every problem."""
    doc = load_yaml_file(Path(path))
    problems = list(doc.problems)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([*problems, f"{doc.source}:1: the config must be a mapping of sections"])
    override_sources: dict[KeyPath, str] = {}
    for assignment in overrides:
        key_path, error = _apply_override(data, assignment)
        if error is not None:
            problems.append(error)
        else:
            override_sources[key_path] = f"--set {assignment}"
    if problems:
        raise ConfigError(problems)
    try:
        config = HubConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_report(exc, HubConfig, (), doc, override_sources)) from None
    if config.fusion.min_angle_deg >= config.fusion.max_angle_deg:
        raise ConfigError(
            [f"{doc.where(('fusion',))}: fusion.min_angle_deg must be below max_angle_deg"]
        )
    return config
