"""`towerwatch calibrate thermal`: the expected reading, the daemon's window service, the CLI."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from detectors.radiometry import band_radiance_exact
from edge.cli import cli
from edge.control import (
    ControlClient,
    ControlError,
    ControlServer,
    LatestFrames,
    register_thermal_handlers,
    socket_path,
)
from edge.thermal_check import check, expected_reading_k, reading
from tests.conftest import MosquittoBroker
from tests.towers import ROOT, SIM_CONFIG, SimTowerRun, _env, towerwatch

H, W = 64, 80


def test_a_blackbody_reads_its_temperature_and_a_grey_body_less() -> None:
    assert expected_reading_k(373.15, 1.0, 283.15) == 373.15
    grey = expected_reading_k(373.15, 0.95, 283.15)
    assert 366.0 < grey < 373.15
    # the radiance balance the reading stands for
    want = 0.95 * band_radiance_exact(373.15) + 0.05 * band_radiance_exact(283.15)
    assert band_radiance_exact(grey) == pytest.approx(want, rel=1e-4)
    # a reference at the ambient temperature reads it whatever its emissivity
    assert expected_reading_k(283.15, 0.5, 283.15) == pytest.approx(283.15, abs=0.01)
    with pytest.raises(ValueError, match="emissivity"):
        expected_reading_k(373.15, 0.0, 283.15)


def test_offset_from_one_reference_gain_and_offset_from_two() -> None:
    one = check([reading(373.15, 370.0, [371.0, 372.0, 373.0], 10, 10)], tolerance_k=2.0)
    assert one.offset_k == pytest.approx(2.0) and one.gain is None and one.passed
    assert one.readings[0].noise_k == pytest.approx(1.0)
    # measured = 1.02 · expected − 4
    a = reading(300.0, 300.0, [1.02 * 300.0 - 4.0], 1, 1)
    b = reading(400.0, 400.0, [1.02 * 400.0 - 4.0], 2, 2)
    two = check([a, b], tolerance_k=2.0)
    assert two.gain == pytest.approx(1.02) and two.offset_k == pytest.approx(-4.0)
    assert not two.passed  # +4 K at 400 K
    with pytest.raises(ValueError, match="differ"):
        check([a, reading(300.5, 300.5, [300.0], 2, 2)], tolerance_k=2.0)


@dataclass(frozen=True)
class FakeFrame:
    image: np.ndarray
    t: float
    radiometric: bool = True
    shutter: bool = False


class FakeDaemon:
    """A control server with the real thermal handler, fed frames by a 'main loop' thread."""

    def __init__(self, folder: Path, patches: dict[tuple[int, int], float]) -> None:
        self.frames = LatestFrames()
        self.server = ControlServer(socket_path(folder))
        register_thermal_handlers(self.server, self.frames)
        self.patches = patches
        self.radiometric = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)

    def _feed(self) -> None:
        rng = np.random.default_rng(1)
        n = 0
        while not self._stop.wait(0.005):
            image = (283.15 + rng.normal(0.0, 0.05, (H, W))).astype(np.float32)
            for (u, v), kelvin in self.patches.items():
                image[v - 2 : v + 3, u - 2 : u + 3] = kelvin + rng.normal(0.0, 0.05, (5, 5))
            n += 1
            self.frames.offer(FakeFrame(image, float(n), self.radiometric, shutter=n % 7 == 0))

    def __enter__(self) -> FakeDaemon:
        self.server.start()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.server.stop()


@pytest.fixture
def runtime() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="tw-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _thermal(runtime: Path, *args: str) -> object:
    return CliRunner().invoke(
        cli,
        ["calibrate", "thermal", "--config", str(SIM_CONFIG), "--runtime-dir", str(runtime), *args],
    )


def test_the_window_service_averages_fresh_frames_and_refuses_bad_requests(runtime: Path) -> None:
    with FakeDaemon(runtime, {(39, 31): 350.0}) as daemon:
        client = ControlClient(socket_path(runtime))
        got = client.call("thermal.window", half_px=1, frames=5, timeout_s=5.0)
        assert (got["u_px"], got["v_px"], got["width_px"], got["height_px"]) == (40, 32, W, H)
        assert len(got["mean_k"]) == 5 and len(set(got["t"])) == 5
        assert all(t % 7 != 0 for t in got["t"])  # shutter frames are skipped
        assert np.mean(got["mean_k"]) == pytest.approx(350.0, abs=0.1)
        with pytest.raises(ControlError, match="leaves the 80x64 image"):
            client.call("thermal.window", u_px=79, v_px=10, half_px=2, frames=1, timeout_s=5.0)
        with pytest.raises(ControlError, match="frames must be"):
            client.call("thermal.window", half_px=1, frames=0, timeout_s=5.0)
        daemon.radiometric = False
        with pytest.raises(ControlError, match="not radiometric"):
            client.call("thermal.window", half_px=1, frames=3, timeout_s=5.0)


def test_one_reference_passes_and_an_offset_camera_fails_with_exit_1(runtime: Path) -> None:
    expected = expected_reading_k(373.15, 0.95, 283.15)  # the simulated config's 10 °C air
    with FakeDaemon(runtime, {(40, 32): expected + 0.5}):
        ok = _thermal(runtime, "--reference-k", "373.15", "--json")
        assert ok.exit_code == 0, ok.output
        doc = json.loads(ok.stdout)
        assert doc["passed"] and doc["gain"] is None
        assert doc["offset_k"] == pytest.approx(0.5, abs=0.05)
        (ref,) = doc["references"]
        assert ref["expected_k"] == pytest.approx(expected) and ref["frames"] == 25
        tight = _thermal(runtime, "--reference-k", "373.15", "--tolerance-k", "0.2")
        assert tight.exit_code == 1
        assert "FAIL" in tight.stdout


def test_two_references_give_gain_and_offset(runtime: Path) -> None:
    e1, e2 = expected_reading_k(313.15, 0.98, 283.15), expected_reading_k(373.15, 0.98, 283.15)
    with FakeDaemon(runtime, {(15, 15): 1.01 * e1 - 2.0, (60, 40): 1.01 * e2 - 2.0}):
        result = _thermal(
            runtime,
            "--reference-k",
            "313.15",
            "--reference-k",
            "373.15",
            "--emissivity",
            "0.98",
            "--at-u-px",
            "15",
            "--at-v-px",
            "15",
            "--at-u-px",
            "60",
            "--at-v-px",
            "40",
            "--frames",
            "10",
            "--json",
        )
        doc = json.loads(result.stdout)
        assert doc["gain"] == pytest.approx(1.01, abs=0.002)
        assert doc["offset_k"] == pytest.approx(-2.0, abs=0.2)
        assert [r["u_px"] for r in doc["references"]] == [15, 60]
        assert result.exit_code == (0 if doc["passed"] else 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reference-k", "373.15"], "no daemon running"),
        (["--reference-k", "3000"], "--reference-k must be"),
        (["--reference-k", "300", "--reference-k", "400"], "two positions"),
        (["--reference-k", "300", "--at-u-px", "3"], "go together"),
        (["--reference-k", "300", "--emissivity", "1.5"], "--emissivity"),
    ],
)
def test_without_a_daemon_or_with_bad_options_one_line_and_exit_2(
    runtime: Path, args: list[str], message: str
) -> None:
    result = _thermal(runtime, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_against_the_simulated_tower_through_the_running_daemon(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    import subprocess
    import time

    run = SimTowerRun(
        tmp_path,
        ROOT / "benchmarks" / "scenarios" / "mission-2m-10km.yaml",
        mqtt_broker.port,
        speed=1.0,
    )
    try:
        run.start_tower()
        run.start_daemon()
        deadline = time.monotonic() + 120.0
        while True:
            assert run.daemon is not None and run.daemon.poll() is None, "daemon exited"
            done = subprocess.run(
                towerwatch(
                    "calibrate",
                    "thermal",
                    "--config",
                    str(SIM_CONFIG),
                    "--runtime-dir",
                    str(run.runtime_dir),
                    "--reference-k",
                    "290",
                    "--emissivity",
                    "1",
                    "--frames",
                    "5",
                    "--tolerance-k",
                    "200",
                    "--json",
                ),
                cwd=ROOT,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            if done.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert done.returncode == 0, done.stderr
        (ref,) = json.loads(done.stdout)["references"]
        assert ref["frames"] == 5 and (ref["u_px"], ref["v_px"]) == (320, 256)
        assert 230.0 < ref["measured_k"] < 350.0  # the simulated scene's temperatures
    finally:
        run.stop()
