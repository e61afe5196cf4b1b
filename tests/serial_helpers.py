"""What the serial-driver tests share: polling for a condition and fast-reconnecting settings."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from drivers.serial_link import SerialPortSettings

S = TypeVar("S", bound=SerialPortSettings)

# A lost pty is reopened within a fraction of a second, so failure paths test quickly.
FAST_RECONNECT: Mapping[str, object] = {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.2}


def wait_until(predicate: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout_s} s")


def serial_settings(
    settings_type: type[S], port: str, values: Mapping[str, object], overrides: Mapping[str, object]
) -> S:
    """``settings_type`` for the device on ``port``: the test's values, fast reconnects,
    then the overrides of one test."""
    return settings_type.model_validate({"port": port, **values, **FAST_RECONNECT, **overrides})
