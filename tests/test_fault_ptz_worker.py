"""The PTZ worker survives whatever a head driver raises and says so in its health."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from drivers.base import DriverError, PtzStatus
from edge import ptz_worker
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


class HeadFailingOnTheStatusAfterAMove(BuggyHead):
    """Moves fine; the first status read after a move raises a non-driver error."""

    def __init__(self) -> None:
        super().__init__()
        self.move_bombs = []
        self.status_bombs = []

    def absolute_move(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None) -> None:
        super().absolute_move(pan_deg, tilt_deg, hfov_deg)
        with self.lock:
            self.status_bombs = [ZeroDivisionError("division by zero")]


def test_a_move_stays_sent_when_the_next_status_read_fails_unexpectedly() -> None:
    head = HeadFailingOnTheStatusAfterAMove()
    worker = PtzWorker(head, poll_interval_s=0.01)  # type: ignore[arg-type]
    worker.start()
    try:
        wait_until(lambda: worker.reading().status is not None)
        request = worker.move_to(120.0, -2.0)
        wait_until(lambda: worker.reading().sent_request_id == request, timeout_s=15.0)
        wait_until(lambda: (s := worker.reading().status) is not None and s.pan_deg == 120.0)
        assert worker.health().failures == 1
        assert head.moves == [(120.0, -2.0)]  # not sent twice
    finally:
        worker.stop()


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


class CountingHead:
    """A head that moves for a given number of status polls after each move, then stands
    at the target (or short of it)."""

    def __init__(self, polls_moving: int, stops_short_deg: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.polls = 0
        self.polls_moving = polls_moving
        self.moving_left = 0
        self.stops_short_deg = stops_short_deg
        self.pan_deg = 0.0

    def absolute_move(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None) -> None:
        with self.lock:
            self.moving_left = self.polls_moving
            self.pan_deg = pan_deg - self.stops_short_deg

    def status(self) -> PtzStatus:
        with self.lock:
            self.polls += 1
            moving = self.moving_left > 0
            self.moving_left = max(self.moving_left - 1, 0)
            return PtzStatus(self.pan_deg, 0.0, 25.0, moving, time.time())

    def count(self) -> int:
        with self.lock:
            return self.polls


def test_a_head_is_polled_fast_until_it_arrives_then_slowly() -> None:
    head = CountingHead(polls_moving=30)
    worker = PtzWorker(head, poll_interval_s=0.01, still_poll_interval_s=5.0)  # type: ignore[arg-type]
    worker.start()
    try:
        worker.move_to(10.0, 0.0)
        # 30 polls while it moves, at the fast interval: well within one slow interval
        wait_until(lambda: head.count() >= 30, timeout_s=4.0)
        wait_until(lambda: (s := worker.reading().status) is not None and not s.moving)
        arrived = head.count()
        # seen at the target: slow at once, not only after the move's fast window (2 s)
        threading.Event().wait(1.0)  # an interval in which a still head is not asked again
        assert head.count() - arrived <= 1
        # a new target wakes the worker at once, whatever the slow interval
        request = worker.move_to(20.0, 0.0)
        wait_until(lambda: worker.reading().sent_request_id == request, timeout_s=2.0)
        wait_until(lambda: head.count() >= arrived + 30, timeout_s=2.0)
    finally:
        worker.stop()


def test_a_head_that_stops_short_is_polled_fast_for_the_move_window_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ptz_worker, "FAST_AFTER_MOVE_S", 0.5)
    head = CountingHead(polls_moving=5, stops_short_deg=1.0)
    worker = PtzWorker(head, poll_interval_s=0.01, still_poll_interval_s=5.0)  # type: ignore[arg-type]
    worker.start()
    try:
        worker.move_to(10.0, 0.0)
        # still fast after it stopped short, hoping it goes on: more than the 5 moving polls
        wait_until(lambda: head.count() >= 20, timeout_s=4.0)
        stopped = threading.Event()
        stopped.wait(0.6)  # past the move window
        after_window = head.count()
        stopped.wait(1.0)
        assert head.count() - after_window <= 1
    finally:
        worker.stop()


class TimedHead:
    """Arrives a fixed time after each move, as a real slew of one size does."""

    def __init__(self, slew_s: float) -> None:
        self.lock = threading.Lock()
        self.slew_s = slew_s
        self.pan_deg = 0.0
        self.arrive_at = 0.0
        self.polls = 0

    def absolute_move(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None) -> None:
        with self.lock:
            self.pan_deg = pan_deg
            self.arrive_at = time.monotonic() + self.slew_s

    def status(self) -> PtzStatus:
        with self.lock:
            self.polls += 1
            moving = time.monotonic() < self.arrive_at
            return PtzStatus(self.pan_deg if not moving else self.pan_deg - 1.0, 0.0, 25.0,
                             moving, time.time())  # fmt: skip

    def count(self) -> int:
        with self.lock:
            return self.polls


def test_a_move_of_a_known_size_is_not_polled_before_it_can_have_arrived() -> None:
    head = TimedHead(slew_s=0.5)
    worker = PtzWorker(head, poll_interval_s=0.01, still_poll_interval_s=5.0)  # type: ignore[arg-type]
    worker.start()
    try:
        wait_until(lambda: worker.reading().status is not None)

        def move(pan_deg: float) -> int:
            before = head.count()
            request = worker.move_to(pan_deg, 0.0)
            wait_until(
                lambda: (r := worker.reading()).status_after_request_id >= request
                and r.status is not None
                and ptz_worker.reached(r.status, pan_deg, 0.0)
            )
            return head.count() - before

        first = move(5.0)  # nothing known yet: polled all the way, about 50 times
        second = move(10.0)  # the same size: quiet for 0.8 of the first's time
        assert first >= 20
        assert second <= first // 2
        assert worker.slews.quickest_s(5.0) >= 0.5
        # a move of another size has no comparable record: polled all the way
        third = move(30.0)
        assert third >= 20
    finally:
        worker.stop()


def test_slew_history_compares_moves_of_about_the_same_size() -> None:
    slews = ptz_worker.SlewHistory(capacity=4)
    assert slews.quickest_s(5.4) == 0.0  # nothing known: no quiet time
    slews.record(5.45, 0.70)  # a patrol step, measured from a jittering start
    slews.record(5.38, 0.64)
    assert slews.quickest_s(5.4) == pytest.approx(0.64)
    assert slews.quickest_s(4.0) == 0.0  # larger moves say nothing about a smaller one
    assert slews.quickest_s(12.0) == 0.0  # nor do much smaller ones about a larger one
    slews.record(float("nan"), 0.1)  # a move whose start was unknown is not kept
    for _ in range(4):
        slews.record(5.4, 0.80)  # the oldest are forgotten
    assert slews.quickest_s(5.4) == pytest.approx(0.80)
