"""The fire reporter: the siren before the disk and the broker; bearings stated with their σ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.alarms import AlarmBook
from edge.config import TowerConfig, load_config
from edge.confirm import Verdict
from edge.fire_reporter import FireReporter, bearing_sigma_deg
from edge.messages import AlarmMessage

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_750_000_000.0


class Sink:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.alarms: list[AlarmMessage] = []

    def send_alarm(self, message: AlarmMessage) -> int:
        self.log.append(f"alarm {message.state}")
        self.alarms.append(message)
        return len(self.alarms)

    def send_snapshot(self, alarm_id: str, jpeg: bytes) -> Any:
        self.log.append("snapshot")


class Relay:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def set_output(self, on: bool) -> None:
        self.log.append(f"relay {'on' if on else 'off'}")


class ReadOnlyBook(AlarmBook):
    def _save(self) -> None:
        raise OSError(28, "No space left on device")


def verdict() -> Verdict:
    return Verdict("confirmed", "fire", 135.0, -0.32, 60.0, 1e-8, 0.9, {"persistence": 1.0})


@pytest.fixture
def cfg(tmp_path: Path) -> TowerConfig:
    return load_config(ROOT / "config" / "simulated.yaml", [f"storage.state_dir={tmp_path}"])


def test_a_new_fire_closes_the_relay_then_stores_and_sends(
    cfg: TowerConfig, tmp_path: Path
) -> None:
    log: list[str] = []
    sink = Sink(log)
    book = AlarmBook(tmp_path / "alarms.json", cfg.tower.id, cfg.alarm)
    reporter = FireReporter(cfg, book, sink, Relay(log))
    reporter.confirmed(verdict(), T0 - 10.0, None, T0)
    assert log == ["relay on", "relay on", "alarm confirmed"]
    (message,) = sink.alarms
    assert message.bearing_sigma_deg == pytest.approx(
        bearing_sigma_deg(cfg.geolocation.sigma_pan_deg, cfg.camera.zoom_hfov_deg, 640)
    )
    # the same fire again is an update: the relay is not touched
    log.clear()
    reporter.confirmed(verdict(), T0 + 100.0, None, T0 + 100.0)
    assert "relay on" not in log


def test_the_siren_sounds_even_when_the_alarm_cannot_be_stored(
    cfg: TowerConfig, tmp_path: Path
) -> None:
    log: list[str] = []
    book = ReadOnlyBook(tmp_path / "alarms.json", cfg.tower.id, cfg.alarm)
    reporter = FireReporter(cfg, book, Sink(log), Relay(log))
    with pytest.raises(OSError, match="No space"):
        reporter.confirmed(verdict(), T0 - 10.0, None, T0)
    assert log == ["relay on"]


def test_relay_on_time_is_held_while_an_alarm_is_open(cfg: TowerConfig, tmp_path: Path) -> None:
    cfg = cfg.model_copy(
        update={"alarm_output": cfg.alarm_output.model_copy(update={"on_time_s": 60.0})}
    )
    log: list[str] = []
    book = AlarmBook(tmp_path / "alarms.json", cfg.tower.id, cfg.alarm)
    reporter = FireReporter(cfg, book, Sink(log), Relay(log))
    reporter.confirmed(verdict(), T0 - 10.0, None, T0)
    reporter.housekeeping(T0 + 61.0)
    assert "relay off" not in log  # the alarm is still open
    reporter.relay_reset()
    assert log[-1] == "relay off"


def test_a_bearing_sigma_is_never_zero() -> None:
    assert bearing_sigma_deg(0.0, 2.93, 640) == pytest.approx(2.93 / 640 / 12**0.5)
    assert bearing_sigma_deg(0.05, 2.93, 640) > 0.05


def test_a_restart_closes_the_relay_again_unless_it_was_reset(
    cfg: TowerConfig, tmp_path: Path
) -> None:
    path = tmp_path / "alarms.json"
    log: list[str] = []
    reporter = FireReporter(cfg, AlarmBook(path, cfg.tower.id, cfg.alarm), Sink(log), Relay(log))
    reporter.confirmed(verdict(), T0 - 10.0, None, T0)

    after: list[str] = []
    restarted = FireReporter(cfg, AlarmBook(path, cfg.tower.id, cfg.alarm), Sink(after),
                             Relay(after))  # fmt: skip
    restarted.resume()
    assert after[0] == "relay on" and "alarm confirmed" in after  # and the alarm is resent

    restarted.relay_reset()
    again: list[str] = []
    FireReporter(cfg, AlarmBook(path, cfg.tower.id, cfg.alarm), Sink(again), Relay(again)).resume()
    assert "relay on" not in again
