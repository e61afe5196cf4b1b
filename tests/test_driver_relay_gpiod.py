"""The GPIO character-device relay (relay.type gpiod) against a stand-in for libgpiod.

No GPIO chip (or gpio-sim) exists on a CI machine, so `gpiod` is replaced by a small
fake with its API (request_lines, LineSettings, LineRequest.set_value/get_value) that
records the physical level of the line. The real package is still used for its enums
and for the "no such chip" path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import gpiod
import pytest
from gpiod.line import Value

from drivers import relay_gpiod
from drivers.base import DriverState, RelayOutput
from drivers.registry import driver_module


def wait_until(check: Callable[[], object], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


class FakeChip:
    """One chip with physical line levels; `present` False is the chip unplugged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.present = True
        self.physical: dict[int, int] = {}
        self.requests = 0

    def module(self) -> Any:
        chip = self

        class Request:
            def __init__(self, offset: int, active_low: bool) -> None:
                self.offset, self.active_low, self.released = offset, active_low, False

            def _check(self) -> None:
                if not chip.present or self.released:
                    raise OSError(19, "No such device")

            def set_value(self, offset: int, value: Value) -> None:
                self._check()
                with chip.lock:
                    chip.physical[offset] = int(value == Value.ACTIVE) ^ int(self.active_low)

            def get_value(self, offset: int) -> Value:
                self._check()
                with chip.lock:
                    level = chip.physical[offset] ^ int(self.active_low)
                return Value.ACTIVE if level else Value.INACTIVE

            def release(self) -> None:
                self.released = True

        def request_lines(path: str, config: dict[int, Any], consumer: str) -> Request:
            if not chip.present:
                raise FileNotFoundError(2, "No such file or directory", path)
            ((offset, settings),) = config.items()
            request = Request(offset, settings.active_low)
            with chip.lock:
                chip.requests += 1
            request.set_value(offset, settings.output_value)
            return request

        return SimpleNamespace(
            line=gpiod.line, LineSettings=gpiod.LineSettings, request_lines=request_lines
        )


def settings(**overrides: object) -> relay_gpiod.Settings:
    values: dict[str, object] = {
        "type": "gpiod",
        "chip": "/dev/gpiochip7",
        "line": 17,
        "verify_interval_s": 0.05,
        "reconnect_initial_s": 0.02,
        "reconnect_max_s": 0.1,
    }
    values.update(overrides)
    return relay_gpiod.Settings.model_validate(values)


@pytest.fixture
def chip(monkeypatch: pytest.MonkeyPatch) -> FakeChip:
    fake = FakeChip()
    monkeypatch.setattr(relay_gpiod, "_gpiod", fake.module)
    return fake


def test_the_registry_knows_the_gpiod_relay() -> None:
    assert driver_module("relay", "gpiod") is relay_gpiod


@pytest.mark.parametrize(("active_low", "off_level"), [(False, 0), (True, 1)])
def test_drives_the_line_with_its_polarity(
    chip: FakeChip, active_low: bool, off_level: int
) -> None:
    with relay_gpiod.Driver(settings(active_low=active_low)) as relay:
        assert isinstance(relay, RelayOutput)
        wait_until(lambda: relay.output() is False)
        assert chip.physical[17] == off_level
        relay.set_output(True)
        wait_until(lambda: relay.output() is True)
        assert chip.physical[17] == 1 - off_level


def test_an_unplugged_chip_is_reported_and_the_line_requested_again(chip: FakeChip) -> None:
    with relay_gpiod.Driver(settings()) as relay:
        relay.set_output(True)
        wait_until(lambda: relay.output() is True)
        chip.present = False
        wait_until(lambda: relay.health().counters.get("disconnects", 0) >= 1)
        assert relay.output() is None
        assert relay.health().state is DriverState.CONNECTING
        assert "relay.chip=/dev/gpiochip7" in (relay.health().last_error or "")
        chip.present = True
        wait_until(lambda: relay.output() is True)
        assert chip.physical[17] == 1
        assert chip.requests >= 2
        assert relay.health().counters["reasserts"] >= 1


def test_a_missing_chip_with_the_real_library_is_an_open_failure() -> None:
    with relay_gpiod.Driver(settings(chip="/dev/gpiochip-absent")) as relay:
        wait_until(lambda: relay.health().counters.get("open_failures", 0) >= 1)
        assert relay.output() is None
