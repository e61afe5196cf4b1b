"""Control socket: the real server with real handlers, the CLI client, head pause and ptz."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.base import DriverHealth, DriverState, PtzStatus
from edge.control import (
    ControlClient,
    ControlError,
    ControlServer,
    DaemonNotRunning,
    HeadPause,
    register_ptz_handlers,
    socket_is_private,
    socket_path,
    status_document,
)
from tests.towers import ROOT, _env, towerwatch


@pytest.fixture
def runtime() -> Iterator[Path]:
    # Unix socket paths are limited to 108 bytes: pytest's tmp_path can be longer.
    folder = Path(tempfile.mkdtemp(prefix="tw-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class TowerState:
    """What a daemon would publish for the status handler (mutable between calls)."""

    def __init__(self) -> None:
        self.state = "online"
        self.reasons: list[str] = []
        self.ptz = DriverHealth("ptz", DriverState.OK)

    def status(self, _args: dict[str, Any]) -> dict[str, Any]:
        return status_document(
            tower_id="sim-tower-01",
            state=self.state,
            reasons=self.reasons,
            uptime_s=12.5,
            devices={
                "thermal": DriverHealth("thermal", DriverState.OK, counters={"frames": 90}),
                "ptz": self.ptz,
                "lidar": {
                    "state": "failed",
                    "last_error": "lidar: no frame for 5.0 s",
                    "last_error_at": 1_790_000_000.0,
                    "counters": {},
                },
            },  # fmt: skip
            broker={"connected": True, "last_error": None},
            outbox_depth=3,
            patrol={"pan_deg": 123.4, "tilt_deg": -0.3, "cycle_s": 48.0, "paused": False},
            detection_range_m=20_400.0,
            open_alarms=[{"alarm_id": "a-1", "bearing_deg": 101.2, "state": "confirmed"}],
            frame_rate_hz=9.0,
        )


def _status_cli(runtime: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        towerwatch("status", "--runtime-dir", str(runtime), *args),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_json_through_the_socket_returns_every_field(runtime: Path) -> None:
    tower = TowerState()
    with ControlServer(socket_path(runtime), {"status": tower.status}):
        result = _status_cli(runtime, "--json")
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        for key in ("state", "devices", "broker", "outbox_depth", "patrol", "detection_range_m",
                    "open_alarms", "frame_rate_hz", "cpu_s", "memory_mb", "version", "uptime_s"):  # fmt: skip
            assert key in doc, key
        assert doc["devices"]["lidar"]["last_error"] == "lidar: no frame for 5.0 s"
        assert doc["devices"]["thermal"]["counters"] == {"frames": 90}
        assert doc["open_alarms"][0]["alarm_id"] == "a-1"
        assert doc["memory_mb"] > 1.0

        tower.state, tower.reasons = "degraded", ["lidar failed"]
        table = _status_cli(runtime)
        assert table.returncode == 1
        assert "DEGRADED" in table.stdout
        assert "reason: lidar failed" in table.stdout
        assert "lidar: no frame for 5.0 s" in table.stdout
        assert "20.4 km" in table.stdout


def test_status_without_a_daemon_is_one_line_and_exit_2(runtime: Path) -> None:
    result = _status_cli(runtime)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert "no daemon running" in result.stderr


def test_protocol_errors_are_replies_and_the_server_keeps_serving(runtime: Path) -> None:
    def broken(_args: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    def refuse(_args: dict[str, Any]) -> dict[str, Any]:
        raise ControlError("not now")

    path = socket_path(runtime)
    with ControlServer(path, {"broken": broken, "refuse": refuse}) as server:
        assert socket_is_private(path)
        client = ControlClient(path)
        assert client.call("ping")["pid"] == os.getpid()
        with pytest.raises(ControlError, match="unknown command 'nope'"):
            client.call("nope")
        with pytest.raises(ControlError, match="not now"):
            client.call("refuse")
        with pytest.raises(ControlError, match="internal error: boom"):
            client.call("broken")
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(path))
            reader = raw.makefile("rb")
            raw.sendall(b"not json\n")
            assert json.loads(reader.readline()) == {"ok": False, "error": "request is not JSON"}
            raw.sendall(b'{"command": "commands"}\n')  # several requests on one connection
            assert "status" not in json.loads(reader.readline())["result"]["commands"]
        assert "broken" in client.call("commands")["commands"]
        assert server.errors == 1


def test_a_stale_socket_is_replaced_and_a_live_one_refused(runtime: Path) -> None:
    path = socket_path(runtime)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a daemon that was killed
    with pytest.raises(DaemonNotRunning):
        ControlClient(path).call("ping")
    with ControlServer(path):
        assert ControlClient(path).call("ping")["version"]
        with pytest.raises(ControlError, match="already serves"):
            ControlServer(path).start()
    assert not path.exists()


def test_a_head_pause_expires_and_belongs_to_its_owner() -> None:
    now = [100.0]
    pause = HeadPause(clock=lambda: now[0])
    assert not pause.paused()
    pause.pause("calibrate", 60.0)
    assert pause.paused()
    with pytest.raises(ControlError, match="paused by 'calibrate'"):
        pause.pause("ptz", 10.0)
    now[0] += 61.0
    assert not pause.paused()  # a crashed tool cannot keep the tower blind
    pause.pause("ptz", 10.0)
    with pytest.raises(ControlError):
        pause.resume("calibrate")
    pause.resume("ptz")
    assert pause.state() == {"paused": False}
    with pytest.raises(ControlError, match="timeout_s"):
        pause.pause("x", 0.0)


class RecordingHead:
    """A head that remembers where it was sent."""

    def __init__(self) -> None:
        self.pan_deg, self.tilt_deg = 0.0, 0.0

    def absolute_move(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None = None) -> None:
        self.pan_deg, self.tilt_deg = pan_deg, tilt_deg

    def relative_move(self, dpan_deg: float, dtilt_deg: float) -> None:
        self.pan_deg = (self.pan_deg + dpan_deg) % 360.0
        self.tilt_deg += dtilt_deg

    def stop(self) -> None:
        pass

    def status(self) -> PtzStatus:
        return PtzStatus(self.pan_deg, self.tilt_deg, 5.86, False, 0.0)


def test_ptz_moves_need_the_pause(runtime: Path) -> None:
    path = socket_path(runtime)
    head = RecordingHead()
    pause = HeadPause()
    with ControlServer(path) as server:
        pause.register(server)
        register_ptz_handlers(server, head, pause)
        client = ControlClient(path)
        with pytest.raises(ControlError, match="pause the head first"):
            client.call("ptz.goto", pan_deg=10.0, tilt_deg=-1.0)
        assert client.call("head.pause", owner="test", timeout_s=30)["paused"] is True
        assert client.call("ptz.goto", pan_deg=10.0, tilt_deg=-1.0)["pan_deg"] == 10.0
        assert client.call("ptz.jog", dpan_deg=-20.0, dtilt_deg=0.5)["pan_deg"] == 350.0
        with pytest.raises(ControlError, match="pan_deg must be a number"):
            client.call("ptz.goto", pan_deg="north", tilt_deg=0.0)
        client.call("head.resume", owner="test")
        assert client.call("head.state") == {"paused": False}
