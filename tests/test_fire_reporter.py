"""The fire reporter: the siren before the disk and the broker; bearings stated with their σ."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from edge.alarms import AlarmBook
from edge.config import KnownSource, TowerConfig, load_config
from edge.confirm import Verdict
from edge.fire_reporter import FireReporter, bearing_sigma_deg
from edge.geodesy import destination
from edge.geolocation import bearing_elevation_to
from edge.lidar_probe import ProbeResult
from edge.lidar_sweep import SmokeFix
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


def reporter_for(
    cfg: TowerConfig, tmp_path: Path, log: list[str] | None = None
) -> tuple[FireReporter, Sink]:
    """A reporter on a fresh alarm book; given a log, its sink and relay write to it."""
    sink = Sink([] if log is None else log)
    relay = None if log is None else Relay(log)
    book = AlarmBook(tmp_path / "alarms.json", cfg.tower.id, cfg.alarm)
    return FireReporter(cfg, book, sink, relay), sink


@pytest.fixture
def cfg(tmp_path: Path) -> TowerConfig:
    return load_config(ROOT / "config" / "simulated.yaml", [f"storage.state_dir={tmp_path}"])


def test_a_new_fire_closes_the_relay_then_stores_and_sends(
    cfg: TowerConfig, tmp_path: Path
) -> None:
    log: list[str] = []
    reporter, sink = reporter_for(cfg, tmp_path, log)
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


def _fire_at_10_km(cfg: TowerConfig, reporter: FireReporter) -> Verdict:
    """A confirmed fire 10 km out on bearing 135° over the config's flat reed."""
    lat, lon = destination(cfg.tower.lat, cfg.tower.lon, 135.0, 10_000.0)
    ground_m = cfg.tower.ground_elevation_m + cfg.geolocation.canopy_height_m
    _, elevation = bearing_elevation_to(reporter.site, lat, lon, ground_m,
                                        cfg.geolocation.refraction_k)  # fmt: skip
    return Verdict("confirmed", "fire", 135.0, elevation, 60.0, 1e-8, 0.9, {"persistence": 1.0})


def _plume(verdict: Verdict, range_m: float) -> ProbeResult:
    beam_deg = verdict.elevation_deg + 0.5  # the probe aims above the fire: smoke rises
    return ProbeResult(135.0, verdict.elevation_deg, True, range_m, {"plume_range_m": range_m},
                       beam_elevation_deg=beam_deg)  # fmt: skip


def test_a_lidar_fix_states_the_plumes_drift_in_its_error(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "config" / "simulated.yaml",
                      [f"storage.state_dir={tmp_path}", "weather.wind_speed_m_s=5"])  # fmt: skip
    sink = Sink([])
    reporter = FireReporter(cfg, AlarmBook(tmp_path / "alarms.json", cfg.tower.id, cfg.alarm), sink,
                            None)  # fmt: skip
    fire = _fire_at_10_km(cfg, reporter)
    # the beam crossed the smoke ~90 m above the reed, where a 5 m/s wind has carried
    # smoke rising at 1.5 m/s some 300 m from its fire, in a direction the tower does not know
    sigma_m = reporter.lidar_range_sigma_m(_plume(fire, 10_150.0))
    assert 150.0 < sigma_m < 300.0

    reporter.confirmed(fire, T0 - 10.0, _plume(fire, 10_150.0), T0)

    (alarm,) = sink.alarms
    assert alarm.range_source == "lidar" and not alarm.bearing_only
    assert alarm.range_m is not None and alarm.uncertainty is not None
    # the ellipse is long along the bearing by the drift, not the lidar's 7.5 m
    assert alarm.uncertainty.semi_major_m == pytest.approx(5.991**0.5 * sigma_m, rel=0.15)
    assert alarm.range_m - 2.5 * sigma_m < 10_000.0 < alarm.range_m + 2.5 * sigma_m
    assert alarm.evidence.lidar is not None and alarm.evidence.lidar["range_used"] is True
    assert reporter.lidar_fixes_rejected == 0


def test_a_lidar_range_the_camera_contradicts_is_reported_not_trusted(
    cfg: TowerConfig, tmp_path: Path
) -> None:
    sink = Sink([])
    reporter = FireReporter(cfg, AlarmBook(tmp_path / "alarms.json", cfg.tower.id, cfg.alarm), sink,
                            None)  # fmt: skip
    fire = _fire_at_10_km(cfg, reporter)
    # a return at 2 km: a plume of something nearer on the bearing, or a mast; the camera's
    # line of sight meets the ground no nearer than ~7 km
    reporter.confirmed(fire, T0 - 10.0, _plume(fire, 2_000.0), T0)

    (alarm,) = sink.alarms
    assert alarm.range_source == "earth" and alarm.bearing_only
    assert alarm.range_min_m is not None and alarm.range_min_m > 5_000.0
    assert alarm.evidence.lidar is not None and alarm.evidence.lidar["range_used"] is False
    assert alarm.evidence.lidar["plume_range_m"] == 2_000.0
    assert reporter.lidar_fixes_rejected == 1


def _smoke(range_m: float = 4000.0, azimuth_deg: float = 250.0) -> SmokeFix:
    return SmokeFix(T0 - 30.0, azimuth_deg, 0.0, range_m, 80.0, 4, 300.0, {"found_by": "sweep"})


def _no_flame() -> Verdict:
    return Verdict("dismissed", "transient", 250.0, -0.5, float("nan"), 0.0, 0.0, {"frames": 25})


def test_smoke_without_a_flame_raises_a_located_alarm_on_the_lidar_fix(
    cfg: TowerConfig, tmp_path: Path
) -> None:
    log: list[str] = []
    reporter, sink = reporter_for(cfg, tmp_path, log)
    reporter.smoke_alarm(_smoke(), _no_flame(), None, T0)
    assert log[0] == "relay on" and "alarm confirmed" in log
    (message,) = sink.alarms
    assert message.range_source == "lidar" and not message.bearing_only
    assert message.range_m == pytest.approx(4000.0, abs=1.0)
    assert message.first_seen < message.confirmed_at  # first seen when the sweep met it
    lidar = message.evidence.lidar
    assert lidar is not None and lidar["found_by"] == "sweep" and lidar["range_used"] is True
    thermal = message.evidence.thermal
    assert thermal is not None and thermal["outcome"] == "dismissed"
    assert message.confidence < 0.74  # below every thermally confirmed fire
    # the fire is upwind of the plume by the drift, in an unknown direction: the drift
    # widens the bearing (across the beam) as much as the range (along it)
    drift_m = reporter.plume_drift_m(4000.0, 0.0)
    assert drift_m > 10.0
    assert message.bearing_sigma_deg >= math.degrees(drift_m / 4000.0)
    assert message.uncertainty is not None
    assert message.uncertainty.semi_minor_m >= 1.9 * drift_m


def test_a_plume_at_a_mapped_stack_is_explained_by_it(cfg: TowerConfig, tmp_path: Path) -> None:
    lat, lon = destination(cfg.tower.lat, cfg.tower.lon, 250.0, 4000.0)
    stack = KnownSource(name="flare-7", kind="flare", lat=lat, lon=lon, height_m=30.0)
    cfg = cfg.model_copy(update={"known_sources": (stack,)})
    reporter, _ = reporter_for(cfg, tmp_path)
    assert reporter.mapped_smoke_source(_smoke()) == "flare-7"
    assert reporter.mapped_smoke_source(_smoke(azimuth_deg=256.0)) is None  # 420 m aside
    assert reporter.mapped_smoke_source(_smoke(range_m=5000.0)) is None


def test_finding_a_smoke_alarms_plume_again_keeps_it_open(cfg: TowerConfig, tmp_path: Path) -> None:
    reporter, _ = reporter_for(cfg, tmp_path)
    reporter.smoke_alarm(_smoke(), _no_flame(), None, T0)
    book = reporter.alarms
    (alarm,) = book.open_alarms()
    reporter.smoke_seen_again(alarm.alarm_id, replace(_smoke(), t=T0 + 200.0), T0 + 200.0)
    (again,) = book.open_alarms()
    assert again.alarm_id == alarm.alarm_id and again.last_seen == T0 + 200.0
