"""Relay drivers: Modbus RTU against the simulated board over a pty, and GPIO on a fake sysfs."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers import codec_modbus as mb
from drivers import relay_gpio, relay_modbus
from drivers.base import DriverState, RelayOutput
from drivers.relay_rules import OutputRules
from simulators.relay_board import RelayBoardSimulator
from tests.serial_helpers import serial_settings


def wait_until(predicate: Callable[[], object], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout_s} s")


def modbus_settings(port: str, **overrides: object) -> relay_modbus.Settings:
    values = {
        "type": "modbus_rtu",
        "unit": 1,
        "coil": 3,
        "reply_timeout_s": 0.1,
        "retry_interval_s": 0.05,
        "verify_interval_s": 0.2,
    }
    return serial_settings(relay_modbus.Settings, port, values, overrides)


@pytest.fixture
def board() -> Iterator[RelayBoardSimulator]:
    sim = RelayBoardSimulator(unit=1, coils=8)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def relay(board: RelayBoardSimulator) -> Iterator[relay_modbus.Driver]:
    with relay_modbus.Driver(modbus_settings(board.port_path)) as driver:
        assert driver.wait_connected(2.0)
        yield driver


# ------------------------------------------------------------------ timing rules


def test_rules_close_on_command_and_open_on_command() -> None:
    rules = OutputRules(hardware_max_on_s=None, min_on_s=0.0)
    assert rules.desired(0.0) is False
    rules.command(True, 1.0)
    assert rules.desired(1000.0) is True  # held until told otherwise
    rules.command(False, 1000.0)
    assert rules.desired(1000.0) is False


def test_rules_end_at_the_hardware_limit_and_honour_a_minimum_on_time() -> None:
    rules = OutputRules(hardware_max_on_s=60.0, min_on_s=5.0)
    rules.command(True, 0.0)
    assert rules.desired(59.9) is True
    assert rules.desired(60.0) is False and rules.expirations == 1
    rules.command(True, 100.0)
    rules.command(False, 101.0)
    assert rules.desired(104.9) is True  # held for the minimum on-time
    assert rules.desired(105.0) is False
    rules.command(True, 200.0)
    rules.command(True, 250.0)  # repeating "on" does not extend the on-time
    assert rules.desired(260.0) is False


def test_settings_refuse_a_maximum_below_the_minimum() -> None:
    with pytest.raises(ValueError, match="hardware_max_on_s"):
        modbus_settings("/dev/null", hardware_max_on_s=1.0, min_on_s=2.0)


# ------------------------------------------------------------------ Modbus RTU


def test_set_output_closes_and_opens_the_coil(
    relay: relay_modbus.Driver, board: RelayBoardSimulator
) -> None:
    assert isinstance(relay, RelayOutput)
    wait_until(lambda: relay.output() is False)
    relay.set_output(True)
    wait_until(lambda: relay.output() is True)
    assert board.coil(3) and not board.coil(2)
    relay.set_output(False)
    wait_until(lambda: relay.output() is False)
    assert not board.coil(3)
    assert relay.health().state is DriverState.OK
    assert relay.health().counters["writes"] >= 2


def test_hardware_limit_opens_the_coil_by_itself(board: RelayBoardSimulator) -> None:
    with relay_modbus.Driver(modbus_settings(board.port_path, hardware_max_on_s=0.3)) as relay:
        relay.set_output(True)
        wait_until(lambda: board.coil(3))
        wait_until(lambda: not board.coil(3), timeout_s=2.0)
        wait_until(lambda: relay.output() is False)  # once the board has confirmed it


def test_hold_keeps_the_coil_closed_for_the_minimum_on_time(board: RelayBoardSimulator) -> None:
    with relay_modbus.Driver(modbus_settings(board.port_path, min_on_s=0.4)) as relay:
        relay.set_output(True)
        wait_until(lambda: board.coil(3))
        commanded_off = time.monotonic()
        relay.set_output(False)
        wait_until(lambda: not board.coil(3), timeout_s=2.0)
        assert time.monotonic() - commanded_off >= 0.3


def test_board_absent_at_start_gets_the_commanded_state_when_it_appears() -> None:
    board = RelayBoardSimulator(unit=1, coils=8)
    assert not os.path.exists(board.port_path)
    with relay_modbus.Driver(modbus_settings(board.port_path)) as relay:
        relay.set_output(True)  # never raises, even with no board
        wait_until(lambda: relay.health().counters.get("open_failures", 0) >= 2)
        assert relay.output() is None
        with board:
            wait_until(lambda: relay.output() is True)
            assert board.coil(3)


def test_board_lost_and_back_gets_the_state_asserted_again(
    relay: relay_modbus.Driver, board: RelayBoardSimulator
) -> None:
    relay.set_output(True)
    wait_until(lambda: relay.output() is True)
    board.drop()  # unplugged: the board powers down and its relays open
    wait_until(lambda: relay.output() is None)
    board.restore()
    assert not board.coil(3)
    wait_until(lambda: board.coil(3))
    wait_until(lambda: relay.output() is True)
    counters = relay.health().counters
    assert counters["reconnects"] >= 1 and counters["reasserts"] >= 1


def test_power_cycle_behind_an_open_port_is_caught_by_the_read_back(
    relay: relay_modbus.Driver, board: RelayBoardSimulator
) -> None:
    relay.set_output(True)
    wait_until(lambda: relay.output() is True)
    board.power_cycle()
    wait_until(lambda: relay.health().counters.get("mismatches", 0) >= 1, timeout_s=2.0)
    wait_until(lambda: board.coil(3))
    wait_until(lambda: relay.output() is True)


def test_silent_board_times_out_then_recovers(
    relay: relay_modbus.Driver, board: RelayBoardSimulator
) -> None:
    wait_until(lambda: relay.output() is False)
    board.go_silent()
    relay.set_output(True)
    wait_until(lambda: relay.health().counters.get("timeouts", 0) >= 2)
    health = relay.health()
    assert relay.output() is None
    assert health.state is DriverState.FAILED
    assert health.last_error == (
        f"relay (relay.port={board.port_path}): no answer from unit 1 within 0.10 s"
    )
    board.speak()
    wait_until(lambda: relay.output() is True)
    assert relay.health().state is DriverState.OK


def test_crc_errors_truncation_and_garbage_are_counted_and_retried(
    relay: relay_modbus.Driver, board: RelayBoardSimulator
) -> None:
    wait_until(lambda: relay.output() is False)
    board.corrupt_next(1)
    board.inject_garbage(b"\x00\x00\x13\x37")
    relay.set_output(True)
    wait_until(lambda: relay.output() is True)
    counters = relay.health().counters
    assert counters["crc_errors"] >= 1
    assert counters["garbage_bytes"] >= 4
    board.truncate_next(1)
    relay.set_output(False)
    wait_until(lambda: relay.output() is False)
    assert relay.health().counters["timeouts"] >= 1
    assert not board.coil(3)


def test_exception_reply_is_reported_with_its_meaning(board: RelayBoardSimulator) -> None:
    with relay_modbus.Driver(modbus_settings(board.port_path, coil=20)) as relay:
        relay.set_output(True)
        wait_until(lambda: relay.health().counters.get("exceptions", 0) >= 1)
        health = relay.health()
        assert health.last_error is not None
        assert "coil 20: exception 2 (illegal data address)" in health.last_error
        assert relay.output() is None


def test_transient_device_failure_is_retried(
    relay: relay_modbus.Driver, board: RelayBoardSimulator
) -> None:
    wait_until(lambda: relay.output() is False)
    board.fail_next(mb.SERVER_DEVICE_FAILURE, n=2)
    relay.set_output(True)
    wait_until(lambda: relay.output() is True)
    assert relay.health().counters["exceptions"] == 2


# ------------------------------------------------------------------ GPIO via sysfs


class FakeSysfs:
    """A temp folder laid out like /sys/class/gpio; ``export`` is honoured on request."""

    def __init__(self, root: Path, line: int) -> None:
        self.root = root
        self.line = line
        (root / "export").write_text("")

    @property
    def line_dir(self) -> Path:
        return self.root / f"gpio{self.line}"

    def export_requested(self) -> bool:
        return (self.root / "export").read_text().strip() == str(self.line)

    def create_line(self) -> None:
        self.line_dir.mkdir()
        (self.line_dir / "direction").write_text("in\n")
        (self.line_dir / "value").write_text("0\n")

    def remove_line(self) -> None:
        shutil.rmtree(self.line_dir)
        (self.root / "export").write_text("")

    def level(self) -> str:
        return (self.line_dir / "value").read_text().strip()

    def direction(self) -> str:
        return (self.line_dir / "direction").read_text().strip()


def gpio_settings(root: Path, **overrides: object) -> relay_gpio.Settings:
    values: dict[str, object] = {
        "type": "gpio",
        "line": 17,
        "sysfs_root": str(root),
        "export_wait_s": 0.05,
        "verify_interval_s": 0.05,
        "reconnect_initial_s": 0.02,
        "reconnect_max_s": 0.1,
    }
    values.update(overrides)
    return relay_gpio.Settings.model_validate(values)


def test_gpio_drives_the_line_and_reads_it_back(tmp_path: Path) -> None:
    sysfs = FakeSysfs(tmp_path, 17)
    sysfs.create_line()
    with relay_gpio.Driver(gpio_settings(tmp_path)) as relay:
        assert isinstance(relay, RelayOutput)
        wait_until(lambda: relay.output() is False)
        assert sysfs.direction() in ("low", "out")
        relay.set_output(True)
        wait_until(lambda: relay.output() is True)
        assert sysfs.level() == "1"
        relay.set_output(False)
        wait_until(lambda: sysfs.level() == "0")


def test_gpio_active_low_inverts_the_level(tmp_path: Path) -> None:
    sysfs = FakeSysfs(tmp_path, 17)
    sysfs.create_line()
    with relay_gpio.Driver(gpio_settings(tmp_path, active_low=True)) as relay:
        wait_until(lambda: relay.output() is False)
        assert sysfs.level() == "1"  # off = high on an active-low line
        relay.set_output(True)
        wait_until(lambda: relay.output() is True)
        assert sysfs.level() == "0"


def test_gpio_exports_an_absent_line_and_recovers_when_it_is_lost(tmp_path: Path) -> None:
    sysfs = FakeSysfs(tmp_path, 17)
    with relay_gpio.Driver(gpio_settings(tmp_path)) as relay:
        relay.set_output(True)
        wait_until(sysfs.export_requested)
        wait_until(lambda: relay.health().counters.get("open_failures", 0) >= 1)
        assert relay.output() is None
        sysfs.create_line()  # what the kernel does after an export
        wait_until(lambda: relay.output() is True)
        assert sysfs.level() == "1"
        sysfs.remove_line()
        wait_until(lambda: relay.health().counters.get("disconnects", 0) >= 1)
        assert relay.output() is None
        wait_until(sysfs.export_requested)
        sysfs.create_line()
        wait_until(lambda: relay.output() is True)
        assert sysfs.level() == "1"
        assert relay.health().counters["reasserts"] >= 1


def test_gpio_line_changed_behind_our_back_is_set_again(tmp_path: Path) -> None:
    sysfs = FakeSysfs(tmp_path, 17)
    sysfs.create_line()
    with relay_gpio.Driver(gpio_settings(tmp_path)) as relay:
        relay.set_output(True)
        wait_until(lambda: relay.output() is True)
        (sysfs.line_dir / "value").write_text("0\n")
        wait_until(lambda: relay.health().counters.get("mismatches", 0) >= 1)
        wait_until(lambda: sysfs.level() == "1")
