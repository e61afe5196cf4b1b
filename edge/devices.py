"""Builds the tower's device drivers from the config through the one driver registry."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from drivers.base import (
    DriverHealth,
    FrameSource,
    Gnss,
    PtzHead,
    RelayOutput,
    SecretStore,
    SmokeLidar,
)
from drivers.registry import driver_module
from edge.config import TowerConfig


@dataclass
class Devices:
    thermal: FrameSource
    ptz: PtzHead
    visible: FrameSource | None = None
    lidar: SmokeLidar | None = None
    gnss: Gnss | None = None
    relay: RelayOutput | None = None

    def present(self) -> dict[str, Any]:
        """Configured devices by config section."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    def open_all(self) -> None:
        """Open every device. Drivers connect in the background: an absent device is
        reported in its health and retried, never a reason not to start."""
        for device in self.present().values():
            device.open()

    def close_all(self) -> None:
        for device in reversed(list(self.present().values())):
            device.close()

    def health(self) -> dict[str, DriverHealth]:
        return {name: device.health() for name, device in self.present().items()}


def build_devices(cfg: TowerConfig, secrets: SecretStore) -> Devices:
    """Construct (without I/O) every configured driver."""

    def make(section: str) -> Any:
        settings = getattr(cfg, section)
        if settings is None:
            return None
        module = driver_module(section, settings.type)
        return module.Driver(settings, secrets)

    return Devices(
        thermal=make("thermal"),
        ptz=make("ptz"),
        visible=make("visible"),
        lidar=make("lidar"),
        gnss=make("gnss"),
        relay=make("relay"),
    )
