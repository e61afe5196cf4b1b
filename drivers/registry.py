"""The one registry of driver types: config ``type`` → the module that implements it.

Each driver module exposes ``Settings`` (a StrictSettings subclass whose ``type`` field is
a Literal of its key) and ``Driver`` (constructed as ``Driver(settings, secrets)``, no I/O).
Modules are imported only when a config names them, so a missing optional dependency is
reported against that config key at startup and never slows ``towerwatch --help``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# device kind (config section) → type → module
DRIVER_MODULES: dict[str, dict[str, str]] = {
    "thermal": {
        "frame_stream": "drivers.frames_stream",
        "opencv": "drivers.frames_opencv",
    },
    "visible": {
        "frame_stream": "drivers.frames_stream",
        "opencv": "drivers.frames_opencv",
    },
    "ptz": {
        "onvif": "drivers.ptz_onvif",
        "pelco_d": "drivers.ptz_pelco_d",
    },
    "lidar": {
        "serial": "drivers.lidar_serial",
    },
    "gnss": {
        "nmea": "drivers.gnss_nmea",
    },
    "relay": {
        "modbus_rtu": "drivers.relay_modbus",
        "gpio": "drivers.relay_gpio",
        "gpiod": "drivers.relay_gpiod",
    },
}


class UnknownDriver(LookupError):
    """The config names a type no driver implements."""


def driver_module(kind: str, type_name: str) -> ModuleType:
    """The module implementing ``type_name`` for device ``kind``; raises UnknownDriver."""
    types = DRIVER_MODULES.get(kind)
    if types is None:
        raise UnknownDriver(f"no device kind {kind!r}")
    module_name = types.get(type_name)
    if module_name is None:
        choices = ", ".join(sorted(types))
        raise UnknownDriver(f"unknown type {type_name!r}; expected one of: {choices}")
    return importlib.import_module(module_name)
