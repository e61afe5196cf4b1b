"""`towerwatch test-alarm` and `relay test`: through the control socket, and the relay directly."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers import relay_modbus
from edge import messages
from edge.control import (
    ControlServer,
    register_command_handler,
    register_relay_handlers,
    socket_path,
)
from edge.messages import Command, CommandError, parse_command
from simulators.relay_board import RelayBoardSimulator
from tests.towers import ROOT, SIM_CONFIG, _env, towerwatch


@pytest.fixture
def runtime() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="tw-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(towerwatch(*args), cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=90)  # fmt: skip


def test_test_alarm_takes_the_hubs_command_path(runtime: Path) -> None:
    queued: queue.Queue[Command] = queue.Queue()

    def on_command(verb: str, payload: bytes) -> dict[str, Any]:
        # What the daemon's MQTT command handler does: validate, queue for the main loop.
        queued.put_nowait(parse_command(verb, payload))
        return {"queued": True}

    server = ControlServer(socket_path(runtime))
    register_command_handler(server, on_command)
    with server:
        result = _cli("test-alarm", "--runtime-dir", str(runtime), "--request-id", "t-7", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"queued": True}
        command = queued.get_nowait()
        assert isinstance(command, messages.TestAlarmCommand) and command.request_id == "t-7"
        with pytest.raises(CommandError):
            parse_command("launch", b"{}")
        from edge.control import ControlClient, ControlError

        with pytest.raises(ControlError, match="unknown command 'launch'"):
            ControlClient(socket_path(runtime)).call("command", verb="launch")


def test_test_alarm_without_a_daemon_is_exit_2(runtime: Path) -> None:
    result = _cli("test-alarm", "--runtime-dir", str(runtime))
    assert result.returncode == 2
    assert "no daemon running" in result.stderr


@pytest.fixture
def board(tmp_path: Path) -> Iterator[RelayBoardSimulator]:
    sim = RelayBoardSimulator(unit=1, coils=8, link_path=str(tmp_path / "relay"))
    sim.start()
    yield sim
    sim.stop()


class CoilWatch:
    """Samples the board's coil so a test can see the pulse it was given."""

    def __init__(self, board: RelayBoardSimulator) -> None:
        self.states: list[bool] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(board,), daemon=True)
        self._thread.start()

    def _run(self, board: RelayBoardSimulator) -> None:
        while not self._stop.wait(0.01):
            if not self.states or self.states[-1] != board.coil(0):
                self.states.append(board.coil(0))

    def stop(self) -> list[bool]:
        self._stop.set()
        self._thread.join()
        return self.states


def test_relay_test_opens_the_board_itself_without_a_daemon(
    runtime: Path, board: RelayBoardSimulator
) -> None:
    watch = CoilWatch(board)
    result = _cli("relay", "test", "--config", str(SIM_CONFIG), "--set",
                  f"relay.port={board.port_path}", "--runtime-dir", str(runtime), "--yes",
                  "--seconds", "0.3", "--json")  # fmt: skip
    states = watch.stop()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["on_s"] == 0.3
    assert True in states and states[-1] is False
    assert board.coil(0) is False


def test_relay_test_goes_through_the_daemons_driver(
    runtime: Path, board: RelayBoardSimulator
) -> None:
    settings = relay_modbus.Settings(type="modbus_rtu", port=board.port_path, unit=1, coil=0)
    with relay_modbus.Driver(settings) as relay:
        server = ControlServer(socket_path(runtime))
        register_relay_handlers(server, relay)
        watch = CoilWatch(board)
        with server:
            result = _cli("relay", "test", "--config", str(SIM_CONFIG), "--runtime-dir",
                          str(runtime), "--yes", "--seconds", "0.3")  # fmt: skip
        states = watch.stop()
    assert result.returncode == 0, result.stderr
    assert "relay ok" in result.stdout
    assert True in states and states[-1] is False
