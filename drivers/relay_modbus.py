"""Relay output on a Modbus RTU relay board over RS-485 (type ``modbus_rtu``).

``set_output`` only records the command; the port's worker thread makes the coil follow
it (with the on-time and hold rules), writes with function 0x05, reads the coil back
with 0x01, and reads it back again every ``verify_interval_s``. After a reconnect, or
when a read-back disagrees (the board lost power on its own), it asserts the commanded
state again. ``output`` is what the board last confirmed, None while unknown.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

import structlog
from pydantic import Field

from drivers import codec_modbus as mb
from drivers.base import DeviceUnavailable, DriverState, SecretStore
from drivers.relay_rules import OutputRules, RelayTimingSettings
from drivers.serial_link import CounterSync, PortIO, SerialDriver, SerialPortSettings

_log = structlog.get_logger(__name__)


class Settings(SerialPortSettings, RelayTimingSettings):
    """One coil of a Modbus RTU relay board."""

    type: Literal["modbus_rtu"] = Field(description="driver type: Modbus RTU relay board")
    port: str = Field(min_length=1, description="serial device or pyserial URL (RS-485 adapter)")
    unit: int = Field(1, ge=1, le=247, description="the board's Modbus unit address")
    coil: int = Field(0, ge=0, le=0xFFFF, description="coil number of the relay (0-based)")
    reply_timeout_s: float = Field(
        0.2, ge=0.01, le=5.0, description="how long to wait for the board's answer"
    )
    retry_interval_s: float = Field(
        0.2, ge=0.01, le=60.0, description="wait after a failed exchange before trying again"
    )
    verify_interval_s: float = Field(
        5.0, ge=0.05, le=3600.0, description="how often the coil is read back"
    )


class Driver(SerialDriver):
    """A relay coil. ``set_output`` never blocks on the board and never raises for it."""

    def __init__(self, settings: Settings, secrets: SecretStore | None = None) -> None:
        super().__init__("relay", settings)
        self.settings = settings
        self._lock = threading.Lock()
        self._rules = OutputRules(settings.hardware_max_on_s, settings.min_on_s)
        self._confirmed: bool | None = None
        self._next_attempt = 0.0
        self._last_verify = 0.0
        self._asserted_once = False
        self._decoder = mb.ModbusRtuDecoder(mb.Side.RESPONSE)
        self._counters = CounterSync(
            self._health, {"crc_errors": "crc_errors", "garbage_bytes": "garbage_bytes"}
        )

    def close(self) -> None:
        super().close()
        with self._lock:
            self._confirmed = None

    def set_output(self, on: bool) -> None:
        with self._lock:
            self._rules.command(on, time.monotonic())
            self._next_attempt = 0.0
        self._wake_worker()  # the coil follows at once, not at the worker's next deadline
        _log.info("relay_commanded", device=self.label, on=on)

    def output(self) -> bool | None:
        if not self._link.connected:
            return None  # whatever the board does now, nobody can confirm it
        with self._lock:
            return self._confirmed

    # ----------------------------------------------------------------- exchanges

    def _exchange(self, io: PortIO, request: bytes, function: int) -> mb.ModbusFrame:
        """One request and its answer (half duplex); raises DeviceUnavailable."""
        io.drain()
        self._decoder.flush()  # what came before the request is not its answer
        self._counters.sync(self._decoder)
        io.write(request)
        deadline = time.monotonic() + self.settings.reply_timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            answer = self._answer_among(self._decoder.feed(io.read(remaining)), function)
            if answer is not None:
                return answer
        # The board fell silent. A stray byte ahead of a corrupt answer makes a frame that
        # never completes; silence ends it, and the corrupt answer is counted as one.
        self._decoder.flush()  # a valid answer would have been found behind it already
        self._counters.sync(self._decoder)
        self._health.count("timeouts")
        raise DeviceUnavailable(
            f"{self.label}: no answer from unit {self.settings.unit} within "
            f"{self.settings.reply_timeout_s:.2f} s"
        )

    def _answer_among(self, frames: list[mb.ModbusFrame], function: int) -> mb.ModbusFrame | None:
        """The answer to ``function`` among decoded frames, skipping stale or foreign ones;
        raises DeviceUnavailable when the board answered with an exception."""
        self._counters.sync(self._decoder)
        for frame in frames:
            if getattr(frame, "unit", None) != self.settings.unit:
                continue
            if isinstance(frame, mb.ExceptionResponse):
                if frame.function != function:
                    continue
                self._health.count("exceptions")
                raise DeviceUnavailable(
                    f"{self.label}: unit {self.settings.unit} coil {self.settings.coil}: "
                    f"exception {frame.code} ({frame.description})"
                )
            if function == mb.WRITE_SINGLE_COIL and isinstance(frame, mb.WriteSingleCoil):
                return frame
            if function == mb.READ_COILS and isinstance(frame, mb.ReadCoilsResponse):
                return frame
        return None

    def _write(self, io: PortIO, on: bool) -> None:
        request = mb.write_single_coil(self.settings.unit, self.settings.coil, on)
        echo = self._exchange(io, request, mb.WRITE_SINGLE_COIL)
        if not isinstance(echo, mb.WriteSingleCoil) or (echo.coil, echo.on) != (
            self.settings.coil,
            on,
        ):
            raise DeviceUnavailable(f"{self.label}: board echoed {echo} to a coil write")
        self._health.count("writes")

    def _read_back(self, io: PortIO) -> bool:
        request = mb.read_coils(self.settings.unit, self.settings.coil, 1)
        answer = self._exchange(io, request, mb.READ_COILS)
        if not isinstance(answer, mb.ReadCoilsResponse) or not answer.coils:
            raise DeviceUnavailable(f"{self.label}: board answered {answer} to a coil read")
        return answer.coils[0]

    # ----------------------------------------------------------------- worker hooks

    def _on_data(self, data: bytes) -> None:
        # Bytes outside an exchange: late or foreign answers, line noise. Only counted.
        self._decoder.feed(data)
        self._counters.sync(self._decoder)

    def _on_connect(self, io: PortIO) -> None:
        # Whatever the board did while we were away (power cycle, someone's hand), the
        # commanded state is asserted again and read back.
        self._decoder = mb.ModbusRtuDecoder(mb.Side.RESPONSE)
        self._counters.forget()
        with self._lock:
            self._confirmed = None
            self._next_attempt = 0.0

    def _on_idle(self, io: PortIO) -> float | None:
        self._follow_rules(io, time.monotonic())
        now = time.monotonic()
        with self._lock:
            if now < self._next_attempt:
                return self._next_attempt - now  # nothing is tried before the retry
            change_s = self._rules.next_change_s(now)
        verify_s = self._last_verify + self.settings.verify_interval_s - now
        return verify_s if change_s is None else min(verify_s, change_s)

    def _follow_rules(self, io: PortIO, now: float) -> None:
        """Make the coil what the rules want now, or read it back when that is due."""
        with self._lock:
            desired = self._rules.desired(now)
            confirmed = self._confirmed
            if now < self._next_attempt:
                return
        verify_due = now - self._last_verify >= self.settings.verify_interval_s
        if confirmed == desired and not verify_due:
            return
        try:
            if confirmed != desired:
                if self._asserted_once and confirmed is None:
                    self._health.count("reasserts")
                self._write(io, desired)
            state = self._read_back(io)
        except DeviceUnavailable as exc:
            with self._lock:
                self._confirmed = None
                self._next_attempt = now + self.settings.retry_interval_s
            self._health.error(str(exc), "failed_exchanges")
            self._health.set_state(DriverState.FAILED)
            return
        self._asserted_once = True
        self._last_verify = time.monotonic()
        if confirmed is not None and state != confirmed and confirmed == desired:
            self._health.error(
                f"{self.label}: coil {self.settings.coil} read back {state}, expected "
                f"{desired}; asserting again",
                "mismatches",
            )
        with self._lock:
            self._confirmed = state
            if state != desired:
                self._next_attempt = time.monotonic() + self.settings.retry_interval_s
        self._health.set_state(DriverState.OK)
