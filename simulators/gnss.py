"""Simulated GNSS receiver on a pty: NMEA GGA + RMC once per simulated second."""

from __future__ import annotations

import math
import time

from drivers.codec_nmea import sentence
from simulators.clock import SimClock
from simulators.serial_devices import PtySerialDevice


def _lat_field(lat: float) -> tuple[str, str]:
    minutes = abs(lat) * 60.0
    return f"{int(minutes // 60):02d}{minutes % 60:07.4f}", "N" if lat >= 0 else "S"


def _lon_field(lon: float) -> tuple[str, str]:
    minutes = abs(lon) * 60.0
    return f"{int(minutes // 60):03d}{minutes % 60:07.4f}", "E" if lon >= 0 else "W"


class GnssSimulator(PtySerialDevice):
    """A receiver at a fixed position. Starts without a fix when ``fix_after_s`` > 0 and
    acquires it that many simulated seconds after ``start()``; ``lose_fix()`` and
    ``acquire_fix()`` switch it by hand. Emits RMC then GGA for every whole second of
    the clock (several per wall second when the clock runs fast)."""

    def __init__(
        self,
        clock: SimClock,
        lat: float,
        lon: float,
        alt_m: float,
        *,
        talker: str = "GN",
        fix_after_s: float = 0.0,
        satellites: int = 10,
        hdop: float = 0.8,
        geoid_separation_m: float = 0.0,
        link_path: str | None = None,
    ) -> None:
        super().__init__("gnss", link_path)
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise ValueError(f"gnss simulator: position {lat}, {lon} is not on Earth")
        if len(talker) != 2 or not talker.isalpha() or not talker.isupper():
            raise ValueError(f"gnss simulator: talker must be two capital letters, got {talker!r}")
        self._clock = clock
        self.lat, self.lon, self.alt_m = lat, lon, alt_m
        self.talker = talker
        self.satellites = satellites
        self.hdop = hdop
        self.geoid_separation_m = geoid_separation_m
        self._fix_after_s = fix_after_s
        self._fix_at: float | None = None
        self._forced_fix: bool | None = None
        self._last_second: int | None = None
        self.epochs_sent = 0

    def start(self) -> None:
        self._fix_at = self._clock.now() + self._fix_after_s
        super().start()

    def lose_fix(self) -> None:
        self._forced_fix = False

    def acquire_fix(self) -> None:
        self._forced_fix = True

    def has_fix(self, t: float) -> bool:
        if self._forced_fix is not None:
            return self._forced_fix
        return self._fix_at is not None and t >= self._fix_at

    def handle_bytes(self, data: bytes) -> None:
        # A receiver may be sent configuration sentences; this one ignores them.
        return None

    def tick(self) -> None:
        now = self._clock.now()
        second = math.floor(now)
        if self._last_second is None:
            self._last_second = second - 1
        if second <= self._last_second:
            return
        # At high clock speed several seconds pass per tick: send the latest few only,
        # as a real receiver at 1 Hz would never queue a backlog.
        for epoch in range(max(self._last_second + 1, second - 4), second + 1):
            self._emit(epoch)
        self._last_second = second

    def epoch_sentences(self, epoch_s: int) -> list[bytes]:
        """The RMC and GGA lines for the whole UTC second ``epoch_s``."""
        tm = time.gmtime(epoch_s)
        hhmmss = f"{tm.tm_hour:02d}{tm.tm_min:02d}{tm.tm_sec:02d}.00"
        ddmmyy = f"{tm.tm_mday:02d}{tm.tm_mon:02d}{tm.tm_year % 100:02d}"
        t = self.talker
        if self.has_fix(float(epoch_s)):
            lat, ns = _lat_field(self.lat)
            lon, ew = _lon_field(self.lon)
            rmc = f"{t}RMC,{hhmmss},A,{lat},{ns},{lon},{ew},0.00,0.00,{ddmmyy},,,A"
            gga = (
                f"{t}GGA,{hhmmss},{lat},{ns},{lon},{ew},1,{self.satellites:02d},"
                f"{self.hdop:.1f},{self.alt_m:.1f},M,{self.geoid_separation_m:.1f},M,,"
            )
        else:
            rmc = f"{t}RMC,{hhmmss},V,,,,,,,{ddmmyy},,,N"
            gga = f"{t}GGA,{hhmmss},,,,,0,00,99.99,,,,,,"
        return [sentence(rmc), sentence(gga)]

    def corrupt_checksum(self, frame: bytes) -> bytes:
        # "$...*HH\r\n": change the checksum digits, keep the line ending.
        star = frame.rfind(b"*")
        wrong = (int(frame[star + 1 : star + 3], 16) ^ 0x5A) & 0xFF
        return frame[: star + 1] + f"{wrong:02X}".encode() + frame[star + 3 :]

    def _emit(self, epoch_s: int) -> None:
        for line in self.epoch_sentences(epoch_s):
            self.write(line)
        self.epochs_sent += 1
