"""A serial worker survives a bug in its hooks, and a dead one does not read healthy."""

from __future__ import annotations

import time
from collections.abc import Callable

from drivers.base import Backoff, DriverState, HealthTracker
from drivers.serial_link import SerialLink


def wait_until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_failing_hook_is_counted_and_the_port_reopened() -> None:
    health = HealthTracker("lidar")
    failures = [ValueError("decoder bug")]
    connects: list[int] = []

    def on_connect(io: object) -> None:
        connects.append(1)
        if failures:
            raise failures.pop()

    link = SerialLink(
        label="lidar (lidar.port=loop://)",
        url="loop://",
        baudrate=115200,
        health=health,
        on_data=lambda data: None,
        on_connect=on_connect,
        backoff=Backoff(0.01, 0.05),
    )
    link.start()
    try:
        wait_until(lambda: len(connects) >= 2 and link.connected)
        snapshot = health.snapshot()
        assert snapshot.counters["worker_failures"] == 1
        assert snapshot.state is DriverState.OK
        assert "worker failed: ValueError: decoder bug" in (snapshot.last_error or "")
        assert not link.worker_dead
    finally:
        link.stop()
    assert not link.worker_dead  # stopped on purpose
