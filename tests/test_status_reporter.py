"""The status reporter with an injected clock: no devices, no threads."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.base import DriverHealth, DriverState, GnssFix
from edge.config import load_config
from edge.status_reporter import FRAME_STALE_S, StatusReporter
from edge.uplink import UplinkCounters

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_750_000_000.0


class StepClock:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.tower = T0

    def now(self) -> float:
        return self.tower

    def observe_frame(self, t: float) -> None:
        self.tower = max(self.tower, t)

    def monotonic(self) -> float:
        return self.mono

    def utc(self) -> float:
        return T0 + 0.5


UPLINK = UplinkCounters(
    connected=True, published=0, acked=0, reconnects=2, refused=0, publish_refused=0,
    commands=0, commands_refused=0, outbox_depth=3, outbox_dropped=0, last_error=None,
)  # fmt: skip


@pytest.fixture
def reporter() -> tuple[StatusReporter, StepClock]:
    cfg = load_config(ROOT / "config" / "simulated.yaml")
    clock = StepClock()
    return StatusReporter(cfg, clock, lambda t: True), clock


def status(reporter: StatusReporter, **overrides: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = dict(
        now=T0, health={"ptz": DriverHealth(name="ptz", state=DriverState.OK)},
        ptz_error=None, gnss_fix=None, uplink=UPLINK, counters={"frames": 7},
        patrol_cycle_s=40.0,
    )  # fmt: skip
    values.update(overrides)
    return reporter.message(**values)  # type: ignore[arg-type]


def test_a_tower_seeing_frames_is_online(reporter: tuple[StatusReporter, StepClock]) -> None:
    r, clock = reporter
    r.frame_seen()
    clock.mono += 1.0
    s = status(r)
    assert s.state == "online", s.reasons
    assert s.uptime_s == 1.0 and s.heartbeat_at == "2025-06-15T15:06:40.500Z"
    assert s.counters == {"frames": 7, "mqtt_reconnects": 2, "outbox_dropped": 0}


def test_stale_frames_and_a_ptz_error_say_what_is_wrong(
    reporter: tuple[StatusReporter, StepClock],
) -> None:
    r, clock = reporter
    r.frame_seen()
    clock.mono += FRAME_STALE_S + 0.1
    s = status(r, ptz_error="not connected yet", problems=("alarm book unreadable",))
    assert s.state == "degraded"
    assert s.reasons[:3] == (
        "thermal: no frame for 5 s", "ptz: not connected yet", "alarm book unreadable",
    )  # fmt: skip
    # no contradiction between the reasons and the sensor table
    assert s.sensors["ptz"].state == "degraded" and s.sensors["thermal"].state == "failed"


def test_a_gnss_fix_far_from_the_survey_is_reported(
    reporter: tuple[StatusReporter, StepClock],
) -> None:
    r, _ = reporter
    r.frame_seen()
    far = GnssFix(t=T0, lat=46.91, lon=20.1, alt_m=125.0, fix_quality=1, satellites=9, hdop=0.9)
    assert any(reason.startswith("gnss: fix") for reason in status(r, gnss_fix=far).reasons)


def test_status_period_and_watchdog_run_on_monotonic_time(
    reporter: tuple[StatusReporter, StepClock],
) -> None:
    r, clock = reporter
    period_s = r.cfg.mqtt.status_interval_s
    assert r.status_due()  # at once
    assert not r.status_due()
    clock.mono += period_s - 0.1
    assert not r.status_due()
    clock.mono += 0.1
    assert r.status_due()
    assert not r.watchdog_due()  # no frame yet: never fed
    r.frame_seen()
    assert r.watchdog_due() and not r.watchdog_due()
    clock.mono += 1.0
    assert r.watchdog_due()
    clock.mono += 10.0  # frames stopped: the watchdog starves
    assert not r.watchdog_due()
