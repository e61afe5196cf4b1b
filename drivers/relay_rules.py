"""Hardware timing limits shared by the relay drivers: what the output should be right now.

The alarm's on-time and hold belong to the daemon (``alarm_output``); a driver only
enforces what the wired equipment itself demands, and the config refuses values of the
two that would disagree (``edge.config``).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from drivers.base import StrictSettings


class RelayTimingSettings(StrictSettings):
    """Limits of the wired equipment, kept even if the daemon stalls with the output on."""

    hardware_max_on_s: float | None = Field(
        None,
        gt=0.0,
        le=86400.0,
        description="equipment protection: the output opens by itself after this long on "
        "(a siren's rated duty, a pump's dry-run limit), whatever the daemon asks; null = no "
        "such limit. The alarm's on-time is alarm_output.on_time_s",
    )
    min_on_s: float = Field(
        0.0,
        ge=0.0,
        le=3600.0,
        description="once on, stay on at least this long (a strobe or sprinkler cycle)",
    )

    @model_validator(mode="after")
    def _max_covers_min(self) -> RelayTimingSettings:
        if self.hardware_max_on_s is not None and self.hardware_max_on_s < self.min_on_s:
            raise ValueError(
                f"hardware_max_on_s ({self.hardware_max_on_s:g} s) must be ≥ min_on_s "
                f"({self.min_on_s:g} s)"
            )
        return self


class OutputRules:
    """The commanded state, shaped by the timing rules. Times are monotonic seconds.

    ``set_output(True)`` closes the output; it opens again when commanded off (but not
    before ``min_on_s``) or after ``hardware_max_on_s`` on, whichever comes first.
    """

    def __init__(self, hardware_max_on_s: float | None, min_on_s: float) -> None:
        self.hardware_max_on_s = hardware_max_on_s
        self.min_on_s = min_on_s
        self._requested = False
        self._on_since: float | None = None
        self.expirations = 0

    @property
    def requested(self) -> bool:
        return self._requested

    def command(self, on: bool, now: float) -> None:
        if on and self._on_since is None:
            self._on_since = now
        self._requested = on

    def desired(self, now: float) -> bool:
        """What the output must be at ``now`` (may end an expired on-time)."""
        on_for = None if self._on_since is None else now - self._on_since
        if self._requested:
            limit_s = self.hardware_max_on_s
            if limit_s is not None and on_for is not None and on_for >= limit_s:
                self._requested = False
                self._on_since = None
                self.expirations += 1
                return False
            return True
        if on_for is not None and on_for < self.min_on_s:
            return True
        self._on_since = None
        return False

    def next_change_s(self, now: float) -> float | None:
        """Seconds until ``desired`` changes by itself (an on-time limit or a hold ends);
        None when only a command can change it."""
        if self._on_since is None:
            return None
        if self._requested:
            if self.hardware_max_on_s is None:
                return None
            return self._on_since + self.hardware_max_on_s - now
        return self._on_since + self.min_on_s - now
