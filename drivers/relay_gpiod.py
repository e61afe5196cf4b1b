"""Relay output on a GPIO line through the kernel's GPIO character device (type ``gpiod``).

The line is requested as an output from ``/dev/gpiochipN`` with libgpiod (the ``gpiod``
package): the request holds the line for this process only, starts at the wanted level
(no glitch) and, unlike sysfs, works under the shipped systemd unit, which keeps /sys
read-only and allows only ``char-gpiochip`` among the GPIO devices. Active-low is left to
the kernel (``LineSettings.active_low``), so ACTIVE always means "relay closed". The
worker thread, on-time rules, read-back and re-request with backoff are those of
``drivers.relay_gpio``.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Any, Literal

from pydantic import Field

from drivers.base import DriverError, SecretStore
from drivers.relay_gpio import Driver as SysfsDriver
from drivers.relay_gpio import GpioLineSettings


class Settings(GpioLineSettings):
    """A relay wired to one line of a GPIO chip."""

    type: Literal["gpiod"] = Field(description="driver type: GPIO character device (libgpiod)")
    chip: str = Field("/dev/gpiochip0", min_length=1, description="the GPIO chip device")
    consumer: str = Field("towerwatch", min_length=1, max_length=31,
                          description="name shown by gpioinfo for the held line")  # fmt: skip


def _gpiod() -> ModuleType:
    try:
        return importlib.import_module("gpiod")
    except ImportError:
        raise DriverError(
            "relay.type gpiod needs the gpiod package (libgpiod bindings): pip install gpiod"
        ) from None


class Driver(SysfsDriver):
    """A relay on a GPIO chip line. ``set_output`` never blocks and never raises."""

    def __init__(self, settings: Settings, secrets: SecretStore | None = None) -> None:
        self.settings = settings  # type: ignore[assignment]
        self.label = f"relay (relay.chip={settings.chip}, relay.line={settings.line})"
        self._where = self.label
        self._gpiod = _gpiod()
        self._request: Any = None
        self._init_worker(settings)

    def _value(self, on: bool) -> Any:
        line = self._gpiod.line
        return line.Value.ACTIVE if on else line.Value.INACTIVE

    def _export(self, initial_on: bool) -> None:
        s: Settings = self.settings  # type: ignore[assignment]
        line = self._gpiod.line
        config = {
            s.line: self._gpiod.LineSettings(
                direction=line.Direction.OUTPUT,
                active_low=s.active_low,
                output_value=self._value(initial_on),
            )
        }
        self._request = self._gpiod.request_lines(s.chip, config=config, consumer=s.consumer)

    def _release(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            # When the chip is gone the kernel dropped the request with it.
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                request.release()

    def _write(self, on: bool) -> None:
        if self._request is None:
            raise OSError(f"{self.label}: line not requested")
        self._request.set_value(self.settings.line, self._value(on))

    def _read(self) -> bool:
        if self._request is None:
            raise OSError(f"{self.label}: line not requested")
        value = self._request.get_value(self.settings.line)
        if value not in (self._value(True), self._value(False)):
            raise ValueError(f"{self.label}: line reads {value!r}")
        return bool(value == self._value(True))

    def close(self) -> None:
        super().close()
        self._release()
