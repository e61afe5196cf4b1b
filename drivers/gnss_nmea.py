"""GNSS receiver over serial NMEA 0183 (type ``nmea``): the tower's trusted position."""

from __future__ import annotations

import threading
import time
from typing import Literal

import structlog
from pydantic import Field

from drivers.base import DriverState, GnssFix, SecretStore
from drivers.codec_nmea import FixAssembler, NmeaDecoder
from drivers.serial_link import CounterSync, PortIO, SerialDriver, SerialPortSettings

_log = structlog.get_logger(__name__)


class Settings(SerialPortSettings):
    """A GNSS receiver sending NMEA GGA and RMC sentences over a serial port."""

    type: Literal["nmea"] = Field(description="driver type: NMEA 0183 over a serial port")
    port: str = Field(
        min_length=1,
        description="serial device or pyserial URL (e.g. /dev/ttyACM0, socket://host:port)",
    )
    baudrate: int = Field(9600, description="line speed in baud (NMEA default 4800 or 9600)")
    silence_timeout_s: float = Field(
        5.0, ge=1.0, le=600.0, description="no sentence for this long marks the receiver failed"
    )
    max_fix_age_s: float = Field(
        5.0, ge=1.0, le=3600.0, description="a fix older than this is no longer reported"
    )


class Driver(SerialDriver):
    """Reads NMEA from a background thread; ``latest_fix`` answers from memory."""

    def __init__(self, settings: Settings, secrets: SecretStore | None = None) -> None:
        super().__init__("gnss", settings)
        self.settings = settings
        self._lock = threading.Lock()
        self._decoder = NmeaDecoder()
        self._assembler = FixAssembler()
        self._counters = CounterSync(
            self._health,
            {
                "crc_errors": "crc_errors",
                "malformed": "malformed",
                "garbage_bytes": "garbage_bytes",
                "sentences": "sentences",
            },
        )
        self._fix: GnssFix | None = None
        self._fix_received_at = 0.0
        self._last_sentence_at = time.monotonic()
        self._silent = False

    def latest_fix(self) -> GnssFix | None:
        with self._lock:
            if self._fix is None:
                return None
            if time.monotonic() - self._fix_received_at > self.settings.max_fix_age_s:
                return None
            return self._fix

    # ----------------------------------------------------------------- worker hooks

    def _on_connect(self, io: PortIO) -> None:
        # A partial line from before the loss must not be glued to the new stream.
        self._decoder = NmeaDecoder()
        self._counters.forget()
        self._last_sentence_at = time.monotonic()
        self._silent = False

    def _on_data(self, data: bytes) -> None:
        sentences = self._decoder.feed(data)
        self._counters.sync(self._decoder)
        if not sentences:
            return
        self._last_sentence_at = time.monotonic()
        if self._silent:
            self._silent = False
            self._health.set_state(DriverState.OK)
            _log.info("gnss_sentences_resumed", device=self.label)
        for item in sentences:
            fix = self._assembler.update(item)
            if fix is None:
                continue
            with self._lock:
                first = self._fix is None
                self._fix = fix
                self._fix_received_at = time.monotonic()
            self._health.count("fixes")
            if first:
                _log.info("gnss_fix", device=self.label, lat=fix.lat, lon=fix.lon, alt_m=fix.alt_m)

    def _on_idle(self, io: PortIO) -> float | None:
        if self._silent:
            return None  # only a sentence ends the silence
        quiet_s = time.monotonic() - self._last_sentence_at
        if quiet_s <= self.settings.silence_timeout_s:
            return self.settings.silence_timeout_s - quiet_s
        self._silent = True
        self._health.error(
            f"{self.label}: no NMEA sentence for {self.settings.silence_timeout_s:.1f} s",
            "silences",
        )
        self._health.set_state(DriverState.FAILED)
        _log.warning("gnss_silent", device=self.label, quiet_s=round(quiet_s, 1))
        return None
