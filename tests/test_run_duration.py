"""`towerwatch run --duration` ends on time when a camera-clocked tower's frames stop."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import MosquittoBroker
from tests.towers import SimTowerRun

ROOT = Path(__file__).resolve().parent.parent
MISSION = ROOT / "benchmarks" / "scenarios" / "mission-2m-10km.yaml"
DURATION_S = 15.0  # tower seconds
SHUTDOWN_SLACK_S = 15.0  # closing the devices and the uplink on a loaded machine


def _wait_for_first_frame(run: SimTowerRun, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert run.daemon is not None and run.daemon.poll() is None, "daemon exited early"
        if any(e.get("event") == "first frame" for e in run.daemon_events()):
            return
        time.sleep(0.2)
    raise AssertionError(f"no frame reached the daemon in {timeout_s} s")


def test_a_camera_clocked_daemon_ends_on_time_after_its_frames_stop(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    run = SimTowerRun(tmp_path, MISSION, mqtt_broker.port)  # time_source: camera
    try:
        run.start_tower()
        run.start_daemon(duration_s=DURATION_S)
        _wait_for_first_frame(run, 120.0)
        assert run.tower is not None
        run.tower.send_signal(signal.SIGTERM)  # the frames stop; the tower clock freezes
        run.tower.wait(timeout=30)
        stopped = time.monotonic()
        try:
            code = run.wait_daemon(timeout_s=DURATION_S + SHUTDOWN_SLACK_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the daemon overran --duration {DURATION_S:g} by more than "
                f"{SHUTDOWN_SLACK_S:g} s after its frames stopped"
            ) from None
        assert code == 0
        assert time.monotonic() - stopped <= DURATION_S + SHUTDOWN_SLACK_S
    finally:
        run.stop()
