"""Health of a worker thread: alive or not, how often it failed or was restarted, and why."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadHealth:
    """What the status says about one thread (`alive` False means it is gone for good)."""

    name: str
    alive: bool
    failures: int
    restarts: int
    last_error: str | None

    def describe(self) -> str:
        """One line for the status reasons, e.g. `uplink sender thread died: OutboxError: …`."""
        if not self.alive:
            return f"{self.name} thread died: {self.last_error or 'no reason recorded'}"
        if self.last_error is not None:
            return f"{self.name} thread recovered from: {self.last_error}"
        return f"{self.name} thread running"


class FailureRecord:
    """Failure count and newest reason, written by one thread and read by others."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures = 0
        self.restarts = 0
        self.last_error: str | None = None

    def failed(self, err: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = f"{type(err).__name__}: {err}"[:300]

    def restarted(self, reason: str) -> None:
        with self._lock:
            self.restarts += 1
            self.last_error = reason[:300]

    def snapshot(self, name: str, alive: bool) -> ThreadHealth:
        with self._lock:
            return ThreadHealth(name, alive, self.failures, self.restarts, self.last_error)
