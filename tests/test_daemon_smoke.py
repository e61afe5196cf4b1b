"""What the daemon does with a plume the lidar sweep found: an open alarm's, a mapped
stack's, or a look at the ground under it, and then an alarm on the lidar's fix."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from edge.config import KnownSource, load_config
from edge.confirm import Verdict
from edge.daemon import TowerDaemon
from edge.fire_reporter import FireReporter
from edge.geodesy import destination
from edge.lidar_sweep import SmokeFix
from edge.looks import LookKind
from edge.messages import AlarmMessage

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_750_000_000.0


class Sink:
    def __init__(self) -> None:
        self.alarms: list[AlarmMessage] = []

    def send_alarm(self, message: AlarmMessage) -> int:
        self.alarms.append(message)
        return len(self.alarms)

    def send_snapshot(self, alarm_id: str, jpeg: bytes) -> Any:
        return None


def make_daemon(tmp_path: Path, *extra: str) -> tuple[TowerDaemon, Sink]:
    cfg = load_config(ROOT / "config" / "simulated.yaml",
                      [f"storage.state_dir={tmp_path / 'state'}", *extra])  # fmt: skip
    daemon = TowerDaemon(cfg, stop=threading.Event())
    sink = Sink()
    daemon.fires = FireReporter(cfg, daemon.alarms, sink, None)
    return daemon, sink


def smoke(azimuth_deg: float = 250.0, range_m: float = 4000.0) -> SmokeFix:
    return SmokeFix(T0 - 20.0, azimuth_deg, 0.0, range_m, 80.0, 4, 300.0, {"found_by": "sweep"})


NO_FLAME = Verdict("dismissed", "transient", 250.0, -0.6, float("nan"), 0.0, 0.0, {"frames": 30})


def test_smoke_turns_the_camera_to_the_ground_under_it_first(tmp_path: Path) -> None:
    daemon, _ = make_daemon(tmp_path)
    daemon._on_smoke(smoke(), T0)
    (look,) = daemon.looks.pending
    assert look.kind == LookKind.CONFIRM and look.smoke is not None
    assert look.pan_deg == pytest.approx(250.0)
    # the ground 4 km out, seen from the mast, lies below the horizontal
    assert -1.0 < look.tilt_deg < 0.0
    assert look.hfov_deg == daemon.cfg.camera.zoom_hfov_deg
    assert daemon.counters["smoke_found"] == 1 and daemon.counters["smoke_looks"] == 1


def test_smoke_the_camera_cannot_confirm_raises_an_alarm_on_the_lidar_fix(tmp_path: Path) -> None:
    daemon, sink = make_daemon(tmp_path)
    daemon._on_smoke(smoke(), T0)
    look = daemon.looks.pending.pop()  # the look is taken and carried out
    daemon._conclude_confirmation(look, NO_FLAME, T0 + 15.0)
    (alarm,) = sink.alarms
    assert alarm.state == "confirmed" and alarm.range_source == "lidar"
    assert daemon.counters["smoke_alarms"] == 1 and daemon.counters["dismissed"] == 0
    # the same plume found again is that alarm's smoke: no second look, no second alarm
    daemon._on_smoke(smoke(azimuth_deg=251.0), T0 + 400.0)
    assert daemon.counters["smoke_at_open_alarms"] == 1 and daemon.looks.pending == []
    assert {a.alarm_id for a in sink.alarms} == {alarm.alarm_id}


def test_without_the_policy_unconfirmed_smoke_raises_no_alarm(tmp_path: Path) -> None:
    daemon, sink = make_daemon(tmp_path, "lidar_sweep.alarm_without_thermal=false")
    daemon._on_smoke(smoke(), T0)
    (look,) = daemon.looks.pending
    daemon._conclude_confirmation(look, NO_FLAME, T0 + 15.0)
    assert sink.alarms == [] and daemon.counters["smoke_alarms"] == 0


def test_smoke_at_a_mapped_stack_is_counted_not_looked_at(tmp_path: Path) -> None:
    daemon, _ = make_daemon(tmp_path)
    lat, lon = destination(daemon.cfg.tower.lat, daemon.cfg.tower.lon, 250.0, 4000.0)
    stack = KnownSource(name="chimney", kind="chimney", lat=lat, lon=lon, height_m=20.0)
    daemon.cfg = daemon.cfg.model_copy(update={"known_sources": (stack,)})
    assert daemon.fires is not None
    daemon.fires.cfg = daemon.cfg
    daemon._on_smoke(smoke(), T0)
    assert daemon.looks.pending == [] and daemon.counters["smoke_at_mapped_sources"] == 1
