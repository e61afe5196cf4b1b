"""Owns the PTZ head in its own thread so a slow or dead head never stalls frame processing.

The main loop posts a target (newest wins) and reads the newest status; the worker sends
the move, polls the head's status and records errors for the health report. It polls
fast while the head moves or may still start to, and slowly once it stands still: an
ONVIF status call costs the gateway a few ms of CPU, and a dwell needs no 10 Hz pose.
Nor is it asked during the part of a slew it cannot have finished yet: the worker
remembers how long moves of each size took (``SlewHistory``).
Whatever a driver raises, the worker catches at its outer boundary, logs with the traceback, counts
it in `health()` and carries on after a pause: a head's bug never ends the thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

import structlog

from detectors.geometry import signed_delta_deg
from drivers.base import DriverError, NamedThread, PtzHead, PtzStatus
from edge.thread_health import FailureRecord, ThreadHealth

log = structlog.get_logger(__name__)

ARRIVAL_TOLERANCE_DEG = 0.05  # head position within this of the target: arrived
# After a move is sent the head may report "not moving" for a moment before it starts;
# polling stays fast until it is seen at the target, or at least this long.
FAST_AFTER_MOVE_S = 2.0
# A move is not polled before this fraction of the quickest time a move of about its
# size has taken (the slack absorbs a head that is faster today than it was).
QUIET_FRACTION = 0.8


@dataclass(frozen=True)
class PtzTarget:
    request_id: int
    pan_deg: float
    tilt_deg: float
    hfov_deg: float | None


@dataclass(frozen=True)
class PtzReading:
    status: PtzStatus | None
    sent_request_id: int  # the newest target handed to the head
    status_after_request_id: int  # the newest target this status was read after
    error: str | None


class SlewHistory:
    """How long the head took to arrive (still, at the target) for moves of each size.

    A patrol repeats moves of one size, so the next one's duration is known to within a
    poll: a move no larger than it (and at least half its size, to stay comparable)
    took no longer than it will. Polling a head before then spends a SOAP call (about
    1.2 ms of the gateway's CPU on the ONVIF driver) for a status that can only say
    "moving".
    """

    def __init__(self, capacity: int = 32) -> None:
        self._moves: deque[tuple[float, float]] = deque(maxlen=capacity)

    def record(self, size_deg: float, duration_s: float) -> None:
        if math.isfinite(size_deg) and math.isfinite(duration_s) and duration_s >= 0.0:
            self._moves.append((size_deg, duration_s))

    def quickest_s(self, size_deg: float) -> float:
        """The shortest time a move of between half this size and this size took; 0 when
        none is known. Sizes are measured from the head's reported start, so "this size"
        allows 10 % for its jitter and backlash (the QUIET_FRACTION slack covers it)."""
        similar = [d for size, d in self._moves if 0.5 * size_deg <= size <= 1.1 * size_deg]
        return min(similar, default=0.0)


def move_size_deg(status: PtzStatus | None, target: PtzTarget) -> float:
    """The larger of the pan and tilt distances to travel; NaN when the start is unknown
    or the zoom changes too (a zoom drive has its own, slower, timing)."""
    if (
        status is None
        or target.hfov_deg is not None
        and abs(target.hfov_deg - status.hfov_deg) > 0.01 * status.hfov_deg
    ):
        return math.nan
    return max(
        abs(signed_delta_deg(status.pan_deg, target.pan_deg)),
        abs(status.tilt_deg - target.tilt_deg),
    )


class PtzWorker:
    def __init__(
        self, head: PtzHead, poll_interval_s: float = 0.1, still_poll_interval_s: float = 1.0
    ) -> None:
        self._head = head
        self._poll_interval_s = poll_interval_s
        # A head standing still is polled this often: a hand on the joystick or a head
        # that drifted is still seen within a second.
        self._still_poll_interval_s = max(still_poll_interval_s, poll_interval_s)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._target: PtzTarget | None = None
        self._in_hand: PtzTarget | None = None
        self._next_id = 0
        self._reading = PtzReading(None, 0, 0, None)
        self._thread: threading.Thread | None = None
        self.move_errors = 0
        self.status_errors = 0
        self._failures = FailureRecord()
        self.slews = SlewHistory()

    def health(self) -> ThreadHealth:
        """`ptz worker` thread: alive, unexpected failures (not DriverErrors), last one."""
        thread = self._thread
        alive = thread is not None and thread.is_alive()
        return self._failures.snapshot("ptz worker", alive or thread is None)

    def start(self) -> None:
        self._stop.clear()
        self._thread = NamedThread(target=self._run, name="ptz", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None

    def move_to(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None = None) -> int:
        """Post a target; returns its request id (see ``reading().sent_request_id``)."""
        with self._lock:
            self._next_id += 1
            self._target = PtzTarget(self._next_id, pan_deg, tilt_deg, hfov_deg)
            request_id = self._next_id
        self._wake.set()
        return request_id

    def reading(self) -> PtzReading:
        with self._lock:
            return self._reading

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._serve()
            except Exception as exc:
                # Outer boundary: an unexpected error of a driver (a bug, a library
                # error it does not map) is logged, counted, and the loop restarts.
                self._failures.failed(exc)
                with self._lock:
                    # the target being sent when it failed is retried unless a newer came
                    if self._target is None:
                        self._target = self._in_hand
                    self._in_hand = None
                    previous = self._reading
                    self._reading = PtzReading(
                        previous.status,
                        previous.sent_request_id,
                        previous.status_after_request_id,
                        f"ptz worker: {type(exc).__name__}: {exc}"[:300],
                    )
                log.exception("ptz_worker_failed")
                self._stop.wait(1.0)

    def _serve(self) -> None:
        sent_id = self._reading.sent_request_id
        arriving: PtzTarget | None = None  # sent, not yet seen reached
        fast_until = 0.0
        sent_at = 0.0
        size_deg = math.nan  # of the move arriving
        quiet_until = 0.0  # no poll of the move arriving before then
        while not self._stop.is_set():
            # This round's error only: a failed move is retried next round and stays
            # reported until it goes through; a failed poll until the next one answers.
            last_error: str | None = None
            with self._lock:
                target, self._target = self._target, None
                self._in_hand = target
            if target is not None:
                try:
                    size_deg = move_size_deg(self._reading.status, target)
                    self._head.absolute_move(target.pan_deg, target.tilt_deg, target.hfov_deg)
                    sent_id = target.request_id
                    with self._lock:
                        # said at once: a status poll that fails unexpectedly next must not
                        # lose that the move went out (it is not sent again)
                        self._reading = replace(self._reading, sent_request_id=sent_id)
                    arriving = target
                    sent_at = time.monotonic()
                    fast_until = sent_at + FAST_AFTER_MOVE_S
                    # a move of unknown size (NaN) matches no record: no quiet time
                    quiet_until = sent_at + QUIET_FRACTION * self.slews.quickest_s(size_deg)
                except DriverError as exc:
                    self.move_errors += 1
                    last_error = str(exc)
                    log.warning("ptz move failed", error=last_error)
                    with self._lock:  # retry this target unless a newer one came
                        if self._target is None:
                            self._target = target
            with self._lock:
                self._in_hand = None
            status_request = sent_id
            try:
                status = self._head.status()
            except DriverError as exc:
                self.status_errors += 1
                last_error = last_error or str(exc)
                status = None
            with self._lock:
                previous = self._reading
                self._reading = PtzReading(
                    status if status is not None else previous.status,
                    sent_id,
                    status_request if status is not None else previous.status_after_request_id,
                    last_error,
                )
            if (
                arriving is not None
                and status is not None
                and reached(status, arriving.pan_deg, arriving.tilt_deg)
            ):
                self.slews.record(size_deg, time.monotonic() - sent_at)
                arriving = None
            now = time.monotonic()
            fast = arriving is not None and now < fast_until
            pause = self._pause_s(status, last_error, fast)
            if arriving is not None and last_error is None:
                pause = max(pause, quiet_until - now)
            self._wake.wait(pause)
            self._wake.clear()
            if self._stop.is_set():
                break

    def _pause_s(self, status: PtzStatus | None, error: str | None, arriving: bool) -> float:
        """How long to wait for a new target before polling the head again."""
        if error is not None:
            return 1.0
        if status is None or status.moving or arriving:
            return self._poll_interval_s
        return self._still_poll_interval_s


def reached(status: PtzStatus, pan_deg: float, tilt_deg: float) -> bool:
    """The head stands still at this pose."""
    return (
        not status.moving
        and abs(signed_delta_deg(status.pan_deg, pan_deg)) <= ARRIVAL_TOLERANCE_DEG
        and abs(status.tilt_deg - tilt_deg) <= ARRIVAL_TOLERANCE_DEG
    )
