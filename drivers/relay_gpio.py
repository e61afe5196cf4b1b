"""Relay output on a Linux GPIO line through the sysfs interface (type ``gpio``).

The line is exported by writing its number to ``<sysfs_root>/export`` and driven through
``gpio<N>/direction`` and ``gpio<N>/value``. The root is configurable so tests (and
boards with an unusual layout) can point it elsewhere. Active-low lines are inverted
here rather than through sysfs ``active_low``, so the value read back always means the
same thing. A worker thread applies the on-time and hold rules, reads the line back and,
when the line disappears (unexported, driver reloaded), exports it again with backoff.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Literal, Self

import structlog
from pydantic import Field, model_validator

from drivers.base import (
    Backoff,
    DriverHealth,
    DriverState,
    HealthTracker,
    NamedThread,
    SecretStore,
)
from drivers.base import (
    Driver as DriverBase,
)
from drivers.relay_rules import OutputRules, RelayTimingSettings

_log = structlog.get_logger(__name__)

_TICK_S = 0.02


class GpioLineSettings(RelayTimingSettings):
    """What every GPIO relay has, whichever kernel interface drives the line."""

    line: int = Field(ge=0, le=4095, description="the GPIO line (sysfs number or chip offset)")
    active_low: bool = Field(False, description="the relay closes when the line is low")
    verify_interval_s: float = Field(
        1.0, ge=0.02, le=3600.0, description="how often the line is read back"
    )
    reconnect_initial_s: float = Field(
        0.5, ge=0.01, le=60.0, description="first delay before requesting a lost line again"
    )
    reconnect_max_s: float = Field(
        30.0, ge=0.05, le=600.0, description="longest delay between request attempts"
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be ≥ reconnect_initial_s")
        return self


class Settings(GpioLineSettings):
    """A relay wired to one GPIO line, driven through sysfs (deprecated by the kernel;
    the shipped systemd unit cannot write /sys: use type ``gpiod`` there)."""

    type: Literal["gpio"] = Field(description="driver type: Linux GPIO line via sysfs")
    sysfs_root: str = Field("/sys/class/gpio", min_length=1, description="the sysfs GPIO folder")
    export_wait_s: float = Field(
        1.0, ge=0.0, le=30.0, description="how long udev may take to create gpioN after export"
    )


class Driver(DriverBase):
    """A relay on a GPIO line. ``set_output`` never blocks and never raises for the line."""

    def __init__(self, settings: Settings, secrets: SecretStore | None = None) -> None:
        self.settings = settings
        self.label = f"relay (relay.line={settings.line})"
        self._dir = os.path.join(settings.sysfs_root, f"gpio{settings.line}")
        self._where = f"{self.label} ({settings.sysfs_root})"
        self._init_worker(settings)

    def _init_worker(self, settings: GpioLineSettings) -> None:
        """State of the worker thread shared with the character-device driver."""
        self._health = HealthTracker("relay")
        self._lock = threading.Lock()
        self._rules = OutputRules(settings.hardware_max_on_s, settings.min_on_s)
        self._confirmed: bool | None = None
        self._ready = False
        self._ever_ready = False
        self._last_verify = 0.0
        self._backoff = Backoff(settings.reconnect_initial_s, settings.reconnect_max_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._health.set_state(DriverState.CONNECTING)
        self._thread = NamedThread(target=self._run, name=self.label, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(2.0)
        with self._lock:
            self._confirmed = None
        self._health.set_state(DriverState.CLOSED)

    def health(self) -> DriverHealth:
        return self._health.snapshot()

    def set_output(self, on: bool) -> None:
        with self._lock:
            self._rules.command(on, time.monotonic())
        _log.info("relay_commanded", device=self.label, on=on)

    def output(self) -> bool | None:
        with self._lock:
            return self._confirmed

    # ----------------------------------------------------------------- sysfs

    def _path(self, name: str) -> str:
        return os.path.join(self._dir, name)

    def _level(self, on: bool) -> str:
        return "1" if on != self.settings.active_low else "0"

    def _export(self, initial_on: bool) -> None:
        if not os.path.isdir(self._dir):
            with open(os.path.join(self.settings.sysfs_root, "export"), "w") as export:
                export.write(str(self.settings.line))
            deadline = time.monotonic() + self.settings.export_wait_s
            while not os.path.exists(self._path("direction")):
                if time.monotonic() >= deadline or self._stop.wait(_TICK_S):
                    raise FileNotFoundError(f"{self._dir} did not appear after export")
        with open(self._path("direction")) as f:
            direction = f.read().strip()
        if direction != "out":
            # "high"/"low" sets the direction and the first level at once: no glitch.
            with open(self._path("direction"), "w") as f:
                f.write("high" if self._level(initial_on) == "1" else "low")

    def _release(self) -> None:
        """Forget the line after a failure (sysfs holds nothing open)."""

    def _write(self, on: bool) -> None:
        with open(self._path("value"), "w") as f:
            f.write(self._level(on))

    def _read(self) -> bool:
        with open(self._path("value")) as f:
            level = f.read().strip()
        if level not in ("0", "1"):
            raise ValueError(f"{self._path('value')} holds {level!r}, not 0 or 1")
        return (level == "1") != self.settings.active_low

    # ----------------------------------------------------------------- worker

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                desired = self._rules.desired(now)
                confirmed = self._confirmed
            try:
                if not self._ready:
                    self._export(desired)
                    self._ready = True
                    self._backoff.reset()
                    if self._ever_ready:
                        self._health.count("reconnects")
                        self._health.count("reasserts")
                    self._ever_ready = True
                    self._health.set_state(DriverState.OK)
                    _log.info("gpio_ready", device=self.label, where=self._where)
                    confirmed = None
                if (
                    confirmed != desired
                    or now - self._last_verify >= self.settings.verify_interval_s
                ):
                    if confirmed != desired:
                        self._write(desired)
                        self._health.count("writes")
                    state = self._read()
                    self._last_verify = time.monotonic()
                    if state != desired:
                        self._health.error(
                            f"{self._where}: line reads {state}, expected {desired}",
                            "mismatches",
                        )
                        state_known: bool | None = None
                    else:
                        state_known = state
                    with self._lock:
                        self._confirmed = state_known
            except (OSError, ValueError) as exc:
                lost = self._ready
                self._ready = False
                with self._lock:
                    self._confirmed = None
                self._health.error(
                    f"{self._where}: {exc}", "disconnects" if lost else "open_failures"
                )
                self._release()
                self._health.set_state(DriverState.CONNECTING)
                self._stop.wait(self._backoff.next_delay())
                continue
            self._stop.wait(_TICK_S)
