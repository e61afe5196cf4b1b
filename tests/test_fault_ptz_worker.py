"""The PTZ worker survives whatever a head driver raises and says so in its health."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from drivers.base import DriverError, PtzStatus
from edge.ptz_worker import PtzWorker


def wait_until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


class BuggyHead:
    """Raises non-driver errors on the first move and the first status read."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.moves: list[tuple[float, float]] = []
        self.move_bombs = [KeyError("profile")]
        self.status_bombs = [ZeroDivisionError("division by zero")]
        self.pan_deg = 0.0
        self.tilt_deg = 0.0

    def absolute_move(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None) -> None:
        with self.lock:
            if self.move_bombs:
                raise self.move_bombs.pop()
            self.moves.append((pan_deg, tilt_deg))
            self.pan_deg, self.tilt_deg = pan_deg, tilt_deg

    def status(self) -> PtzStatus:
        with self.lock:
            if self.status_bombs:
                raise self.status_bombs.pop()
            return PtzStatus(self.pan_deg, self.tilt_deg, 25.0, False, time.time())


def test_unexpected_errors_are_counted_and_the_move_still_lands() -> None:
    head = BuggyHead()
    worker = PtzWorker(head, poll_interval_s=0.01)  # type: ignore[arg-type]
    worker.start()
    try:
        request = worker.move_to(120.0, -2.0)
        wait_until(lambda: worker.reading().sent_request_id == request, timeout_s=15.0)
        wait_until(lambda: (s := worker.reading().status) is not None and s.pan_deg == 120.0)
        health = worker.health()
        assert health.alive
        assert health.failures == 2
        assert health.last_error is not None
        assert head.moves == [(120.0, -2.0)]
    finally:
        worker.stop()
    assert worker.health().alive  # stopped on purpose is not "died"


class HeadNotReadyAtFirst:
    """Answers status with a DriverError until it has booted, then normally."""

    def __init__(self, failing_polls: int) -> None:
        self.lock = threading.Lock()
        self.failing_polls = failing_polls
        self.moves: list[tuple[float, float]] = []

    def absolute_move(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None) -> None:
        with self.lock:
            self.moves.append((pan_deg, tilt_deg))

    def status(self) -> PtzStatus:
        with self.lock:
            if self.failing_polls > 0:
                self.failing_polls -= 1
                raise DriverError("ptz: not connected yet")
            return PtzStatus(10.0, 0.0, 25.0, False, time.time())


def test_a_failed_status_poll_is_reported_only_until_a_poll_answers() -> None:
    head = HeadNotReadyAtFirst(failing_polls=2)
    worker = PtzWorker(head, poll_interval_s=0.01)  # type: ignore[arg-type]
    worker.start()
    try:
        wait_until(lambda: worker.reading().error is not None)
        assert "not connected" in str(worker.reading().error)
        # no move is ever sent: the error must clear because the head answered
        wait_until(lambda: worker.reading().status is not None)
        assert worker.reading().error is None
        assert worker.status_errors == 2
        assert head.moves == []
    finally:
        worker.stop()


class HeadRefusingMoves:
    """Answers status but refuses the first moves with a DriverError."""

    def __init__(self, failing_moves: int) -> None:
        self.lock = threading.Lock()
        self.failing_moves = failing_moves
        self.moves: list[tuple[float, float]] = []

    def absolute_move(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None) -> None:
        with self.lock:
            if self.failing_moves > 0:
                self.failing_moves -= 1
                raise DriverError("ptz: SOAP fault ter:InvalidPosition")
            self.moves.append((pan_deg, tilt_deg))

    def status(self) -> PtzStatus:
        return PtzStatus(0.0, 0.0, 25.0, False, time.time())


def test_a_failed_move_stays_reported_until_its_retry_goes_through() -> None:
    head = HeadRefusingMoves(failing_moves=2)
    worker = PtzWorker(head, poll_interval_s=0.01)  # type: ignore[arg-type]
    worker.start()
    try:
        request = worker.move_to(45.0, -1.0)
        wait_until(lambda: worker.reading().error is not None)
        assert "InvalidPosition" in str(worker.reading().error)  # the poll answered, yet
        wait_until(lambda: worker.reading().sent_request_id == request, timeout_s=15.0)
        assert worker.reading().error is None
        assert head.moves == [(45.0, -1.0)]
        assert worker.move_errors == 2
    finally:
        worker.stop()
