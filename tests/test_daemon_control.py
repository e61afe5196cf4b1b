"""`towerwatch status --json` and the head pause against a running daemon on the simulated tower."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from edge.config import load_config
from edge.control import ControlClient, socket_path
from tests.conftest import MosquittoBroker
from tests.towers import ROOT, SIM_CONFIG, SimTowerRun, _env, towerwatch

SCENARIO = ROOT / "benchmarks" / "scenarios" / "mission-2m-10km.yaml"
FIELDS = ("tower_id", "state", "reasons", "version", "devices", "broker", "outbox_depth",
          "patrol", "detection_range_m", "open_alarms", "frame_rate_hz", "cpu_s", "memory_mb",
          "drift")  # fmt: skip


def _status(run: SimTowerRun) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        towerwatch("status", "--json", "--runtime-dir", str(run.runtime_dir)),
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _wait_status(run: SimTowerRun, ready: Any, timeout_s: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        assert run.daemon is not None and run.daemon.poll() is None, "daemon exited"
        last = _status(run)
        if last.returncode in (0, 1) and last.stdout.strip():
            doc: dict[str, Any] = json.loads(last.stdout)
            if ready(doc):
                return doc
        time.sleep(0.3)
    raise AssertionError(f"status not ready in {timeout_s} s: {last}")


def test_status_json_of_a_running_daemon_and_the_head_pause(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    run = SimTowerRun(tmp_path, SCENARIO, mqtt_broker.port, speed=1.0)
    try:
        run.start_tower()
        run.start_daemon()
        doc = _wait_status(
            run,
            lambda d: d["patrol"].get("pan_deg") is not None and d["frame_rate_hz"] is not None
            and d["broker"].get("connected"),
        )  # fmt: skip
        for key in FIELDS:
            assert key in doc, key
        assert doc["tower_id"] == load_config(SIM_CONFIG).tower.id
        assert {"thermal", "ptz"} <= set(doc["devices"])
        assert doc["frame_rate_hz"] > 0.0 and doc["memory_mb"] > 0.0
        assert doc["detection_range_m"] > 1000.0
        assert "cycle_s" in doc["patrol"]  # None until the first full patrol cycle

        client = ControlClient(socket_path(run.runtime_dir))
        client.call("head.pause", owner="test", timeout_s=120.0)
        paused = _wait_status(run, lambda d: d["patrol"]["paused"])
        # a slew already sent before the pause ends where it was going: measure after it
        frames = paused["counters"]["frames"]
        held = _wait_status(run, lambda d: d["counters"]["frames"] >= frames + 40)
        later = _wait_status(
            run, lambda d: d["counters"]["frames"] >= held["counters"]["frames"] + 20
        )
        # the patrol left the head alone while the tool held it
        assert abs(later["patrol"]["pan_deg"] - held["patrol"]["pan_deg"]) < 0.05
        client.call("head.resume", owner="test")
        _wait_status(run, lambda d: not d["patrol"]["paused"])
    finally:
        run.stop()
    no_daemon = _status(run)
    assert no_daemon.returncode == 2
    assert len(no_daemon.stderr.strip().splitlines()) == 1
