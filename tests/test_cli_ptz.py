"""`towerwatch ptz` and `calibrate sight` through a running daemon's control socket; bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from drivers.base import PtzStatus
from edge.control import ControlServer, HeadPause, register_ptz_handlers, socket_path
from tests.towers import ROOT, SIM_CONFIG, _env, towerwatch


class Head:
    """A head that is where it was last sent."""

    def __init__(self) -> None:
        self.pan_deg, self.tilt_deg = 42.0, -0.3

    def absolute_move(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None = None) -> None:
        self.pan_deg, self.tilt_deg = pan_deg, tilt_deg

    def relative_move(self, dpan_deg: float, dtilt_deg: float) -> None:
        self.pan_deg = (self.pan_deg + dpan_deg) % 360.0
        self.tilt_deg += dtilt_deg

    def stop(self) -> None:
        pass

    def status(self) -> PtzStatus:
        return PtzStatus(self.pan_deg, self.tilt_deg, 5.86, False, 0.0)


@pytest.fixture
def daemon() -> Iterator[tuple[Path, Head, HeadPause]]:
    folder = Path(tempfile.mkdtemp(prefix="tw-", dir="/tmp"))
    head, pause = Head(), HeadPause()
    server = ControlServer(socket_path(folder))
    pause.register(server)
    register_ptz_handlers(server, head, pause)
    with server:
        yield folder, head, pause
    shutil.rmtree(folder, ignore_errors=True)


def _run(*args: str, config: Path = SIM_CONFIG) -> subprocess.CompletedProcess[str]:
    return subprocess.run(towerwatch(*args[:2], "--config", str(config), *args[2:]), cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=60)  # fmt: skip


def test_goto_borrows_the_head_and_release_gives_it_back(
    daemon: tuple[Path, Head, HeadPause],
) -> None:
    folder, head, pause = daemon
    moved = _run("ptz", "goto", "--bearing", "123.5", "--tilt", "-0.4", "--runtime-dir",
                 str(folder), "--json")  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert (head.pan_deg, head.tilt_deg) == (123.5, -0.4)
    assert pause.paused()
    jog = _run("ptz", "jog", "--pan", "0.5", "--runtime-dir", str(folder))
    assert jog.returncode == 0, jog.stderr
    assert head.pan_deg == pytest.approx(124.0)
    where = _run("ptz", "where", "--raw", "--json", "--runtime-dir", str(folder))
    assert json.loads(where.stdout)["pan_raw_deg"] == pytest.approx(124.0)  # zero calibration
    released = subprocess.run(towerwatch("ptz", "release", "--runtime-dir", str(folder)), cwd=ROOT,
                              env=_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert released.returncode == 0, released.stderr
    assert not pause.paused()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--bearing", "400"), "out of range"),
        (("--bearing", "10", "--tilt", "95"), "out of range"),
        (("--lat", "46.9"), "--lat and --lon go together"),
        ((), "give either --bearing"),
    ],
)
def test_bad_targets_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = _run("ptz", "goto", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_daemon_for_release_is_exit_2(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="tw-", dir="/tmp"))
    try:
        result = subprocess.run(towerwatch("ptz", "release", "--runtime-dir", str(folder)),
                                cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert result.returncode == 2
    assert "no daemon running" in result.stderr


def test_sight_records_raw_angles_and_refuses_an_unknown_landmark(
    daemon: tuple[Path, Head, HeadPause], tmp_path: Path
) -> None:
    folder, head, _pause = daemon
    config = tmp_path / "tower.yaml"
    config.write_text(SIM_CONFIG.read_text().replace(
        "  zoom_hfov:", "  calibration: {pan_offset_deg: 10.0}\n  zoom_hfov:"))  # fmt: skip
    landmarks = tmp_path / "landmarks.yaml"
    landmarks.write_text(yaml.safe_dump({"landmarks": [
        {"name": "water tower", "lat": 46.95, "lon": 20.14, "height_m": 125.0}]}))  # fmt: skip
    head.pan_deg, head.tilt_deg = 30.25, 0.5
    ok = _run("calibrate", "sight", "--landmarks", str(landmarks), "water tower",
              "--runtime-dir", str(folder), config=config)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    entry = yaml.safe_load(landmarks.read_text())["landmarks"][0]
    assert entry["pan_raw_deg"] == pytest.approx(20.25)  # true 30.25° − offset 10°
    assert entry["tilt_raw_deg"] == pytest.approx(0.5)
    off = _run("calibrate", "sight", "--landmarks", str(landmarks), "water tower", "--u-px",
               "600", "--v-px", "40", "--runtime-dir", str(folder), config=config)  # fmt: skip
    assert off.returncode == 0, off.stderr
    assert yaml.safe_load(landmarks.read_text())["landmarks"][0]["off_centre"][0]["u_px"] == 600
    unknown = _run("calibrate", "sight", "--landmarks", str(landmarks), "chimney",
                   "--runtime-dir", str(folder), config=config)  # fmt: skip
    assert unknown.returncode == 2
    assert "unknown landmark 'chimney'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
