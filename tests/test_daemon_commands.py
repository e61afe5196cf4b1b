"""The daemon's command table: one handler per verb, targets checked before anything is queued."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest

from drivers.base import Frame
from edge.config import load_config
from edge.daemon import TowerDaemon
from edge.detection import Candidate
from edge.looks import LookKind
from edge.messages import COMMAND_MODELS, CommandError, GotoCommand, RecheckCommand
from edge.topics import CommandVerb

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def daemon(tmp_path: Path) -> TowerDaemon:
    cfg = load_config(
        ROOT / "config" / "simulated.yaml", [f"storage.state_dir={tmp_path / 'state'}"]
    )
    return TowerDaemon(cfg, stop=threading.Event())


def test_every_verb_has_one_model_and_one_handler(daemon: TowerDaemon) -> None:
    assert set(COMMAND_MODELS) == set(CommandVerb)
    assert all(model.verb == verb for verb, model in COMMAND_MODELS.items())
    assert set(daemon._command_handlers) == set(CommandVerb)


def test_a_valid_command_is_queued_for_the_main_loop(daemon: TowerDaemon) -> None:
    command = GotoCommand(pan_deg=10.0, tilt_deg=0.0, request_id="r1")
    assert daemon.handle_command(command) == {"queued": True}
    assert daemon.commands.get_nowait() is command


def test_a_recheck_within_range_is_queued(daemon: TowerDaemon) -> None:
    tower = daemon.cfg.tower
    daemon.handle_command(RecheckCommand(lat=tower.lat + 0.05, lon=tower.lon))
    assert daemon.commands.qsize() == 1


@pytest.mark.parametrize(
    ("offset", "reason"),
    [((0.0, 0.0), "own position"), ((0.0, 0.00001), "own position"), ((0.9, 0.0), "max_range_m")],
)
def test_a_recheck_at_the_tower_or_out_of_range_is_refused(
    daemon: TowerDaemon, offset: tuple[float, float], reason: str
) -> None:
    tower = daemon.cfg.tower
    with pytest.raises(CommandError, match=reason):
        daemon.handle_command(RecheckCommand(lat=tower.lat + offset[0], lon=tower.lon + offset[1]))
    assert daemon.commands.empty()


def test_a_recheck_at_the_antipode_is_refused(daemon: TowerDaemon) -> None:
    tower = daemon.cfg.tower
    lon = tower.lon - 180.0 if tower.lon > 0 else tower.lon + 180.0
    with pytest.raises(CommandError, match="max_range_m"):
        daemon.handle_command(RecheckCommand(lat=-tower.lat, lon=lon))
    assert daemon.commands.empty()


def _frame(t: float = 1.75e9, shape: tuple[int, int] = (512, 640), hfov: float = 5.86) -> Frame:
    return Frame(np.full(shape, 290.0, dtype=np.float32), t, 1, True, 135.0, -0.3, hfov)


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (_frame(t=1e300), "frame time"),
        (_frame(t=math.nan), "frame time"),
        (_frame(shape=(480, 640)), "camera.width_px"),
        (_frame(hfov=0.0), "hfov_deg"),
    ],
)
def test_a_bad_frame_is_counted_and_dropped(
    daemon: TowerDaemon, frame: Frame, problem: str
) -> None:
    assert problem in (daemon._frame_problem(frame) or "")
    daemon._process_frame(frame)
    assert daemon.counters["frames_invalid"] == 1
    assert daemon.clock.now() == 0.0  # the camera clock was not moved by it


def test_an_error_while_processing_a_frame_is_counted_not_fatal(daemon: TowerDaemon) -> None:
    # no devices are open here: starting the first look fails inside the frame's handler
    daemon._process_frame(_frame())
    assert daemon.counters["frames_failed"] == 1 and daemon.counters["frames_invalid"] == 0


@pytest.mark.parametrize(
    ("command", "key"),
    [
        (GotoCommand(pan_deg=10.0, tilt_deg=0.0, hold_s=3600.0), "patrol.goto_max_hold_s"),
        (GotoCommand(pan_deg=10.0, tilt_deg=-60.0), "patrol.goto_tilt_min_deg"),
        (GotoCommand(pan_deg=10.0, tilt_deg=45.0), "patrol.goto_tilt_max_deg"),
    ],
)
def test_a_goto_beyond_the_soft_limits_is_refused(
    daemon: TowerDaemon, command: GotoCommand, key: str
) -> None:
    with pytest.raises(CommandError, match=key):
        daemon.handle_command(command)
    assert daemon.commands.empty()


def test_a_goto_waits_for_a_running_confirmation(daemon: TowerDaemon) -> None:
    candidate = Candidate(1.75e9, 135.0, -0.3, 5.86, 320.0, 256.0, 0.6, 30.0, 20.0, 1e-8, True)
    confirming = daemon.looks.confirm_look(candidate)
    daemon.look = confirming
    daemon._goto(GotoCommand(pan_deg=10.0, tilt_deg=0.0), 1.75e9)
    assert daemon.look is confirming
    assert [look.kind for look in daemon.looks.pending] == [LookKind.HOLD]


class _Replies:
    """Stands in for the uplink's final-reply method and records what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, bool, dict | None, str | None]] = []

    def send_command_result(self, verb, request_id, ok, result=None, error=None) -> None:  # type: ignore[no-untyped-def]
        self.sent.append((verb, request_id, ok, result, error))


def test_a_recheck_is_answered_done_when_its_look_ends(daemon: TowerDaemon) -> None:
    replies = _Replies()
    daemon.uplink = replies  # type: ignore[assignment]
    command = RecheckCommand(bearing_deg=120.0, request_id="r7")
    daemon._recheck(command, 1.75e9)
    look = daemon.looks.next_look(1.75e9, [], 0.0, -30.0)
    assert look is not None and look.asked_by is command
    daemon._finish_look(look, 1.75e9 + 5.0)
    [(verb, request_id, ok, result, error)] = replies.sent
    assert (verb, request_id, ok, error) == ("recheck", "r7", True, None)
    assert result is not None and result["pan_deg"] == 120.0


def test_a_goto_into_the_sun_is_answered_refused(daemon: TowerDaemon) -> None:
    from detectors.solar import sun_position

    replies = _Replies()
    daemon.uplink = replies  # type: ignore[assignment]
    daemon.ptz = object()  # type: ignore[assignment]  # never reached: the sun refuses first
    now = 1_750_000_000.0  # mid-afternoon in June at the simulated tower
    sun_az, sun_el = sun_position(now, daemon.cfg.tower.lat, daemon.cfg.tower.lon)
    assert sun_el > 5.0
    daemon._goto(GotoCommand(pan_deg=sun_az, tilt_deg=sun_el, request_id="g1",
                             hold_s=10.0), now)  # fmt: skip
    [(verb, request_id, ok, _, error)] = replies.sent
    assert (verb, request_id, ok) == ("goto", "g1", False)
    assert error is not None and "sun" in error
    assert daemon.look is None
