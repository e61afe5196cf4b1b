"""NMEA 0183 GGA/RMC parsing and fix assembly from a byte stream (no I/O).

Sentences need a valid ``*HH`` checksum (a sentence without one is refused, unlike
pynmea2's default). Any two-letter talker is accepted (GP, GN, GL, GA, BD, GB, …).
A position is produced only for a real fix: GGA quality > 0 *and* RMC status ``A`` for
the same epoch, both with a position, and never exactly 0,0 — a receiver without a fix
reports empty or zero fields, and a tower must not land in the Gulf of Guinea.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass

from drivers.base import GnssFix

MAX_SENTENCE_LEN = 128  # the standard says 82; some receivers send longer proprietary lines


class NmeaError(ValueError):
    """An NMEA sentence is invalid (framing, checksum, field count or field value)."""


class NmeaChecksumError(NmeaError):
    """The ``*HH`` checksum is missing, not hex, or does not match."""


@dataclass(frozen=True)
class Gga:
    talker: str
    time_of_day_s: float
    lat: float | None
    lon: float | None
    quality: int
    satellites: int
    hdop: float
    alt_m: float | None


@dataclass(frozen=True)
class Rmc:
    talker: str
    time_of_day_s: float
    valid: bool
    lat: float | None
    lon: float | None
    speed_kn: float | None
    course_deg: float | None
    date_ymd: tuple[int, int, int] | None

    @property
    def t(self) -> float | None:
        """UTC unix seconds of the sentence, None without a date."""
        if self.date_ymd is None:
            return None
        y, m, d = self.date_ymd
        return calendar.timegm((y, m, d, 0, 0, 0)) + self.time_of_day_s


NmeaSentence = Gga | Rmc


def checksum(body: str) -> int:
    """XOR of every character between ``$`` and ``*``."""
    value = 0
    for ch in body:
        value ^= ord(ch)
    return value


def sentence(body: str) -> bytes:
    """``body`` (without ``$``/``*``) → a complete line with checksum and CRLF."""
    return f"${body}*{checksum(body):02X}\r\n".encode("ascii")


def _float(field: str, name: str) -> float | None:
    if field == "":
        return None
    try:
        value = float(field)
    except ValueError:
        raise NmeaError(f"NMEA {name} is not a number: {field!r}") from None
    if not math.isfinite(value):
        raise NmeaError(f"NMEA {name} is not finite: {field!r}")
    return value


def _int(field: str, name: str, default: int = 0) -> int:
    if field == "":
        return default
    if not field.isdigit():
        raise NmeaError(f"NMEA {name} is not an integer: {field!r}")
    return int(field)


def _time_of_day(field: str) -> float:
    if len(field) < 6 or not field[:6].isdigit():
        raise NmeaError(f"NMEA time must be hhmmss[.ss], got {field!r}")
    hh, mm, ss = int(field[0:2]), int(field[2:4]), int(field[4:6])
    frac = 0.0
    if len(field) > 6:
        if field[6] != "." or not field[7:].isdigit():
            raise NmeaError(f"NMEA time must be hhmmss[.ss], got {field!r}")
        frac = float("0" + field[6:]) if len(field) > 7 else 0.0
    if hh > 23 or mm > 59 or ss > 60:
        raise NmeaError(f"NMEA time out of range: {field!r}")
    return hh * 3600 + mm * 60 + ss + frac


def _coordinate(value: str, hemisphere: str, degree_digits: int, name: str) -> float | None:
    """ddmm.mmmm / dddmm.mmmm plus N/S/E/W → signed decimal degrees."""
    if value == "" and hemisphere == "":
        return None
    if value == "" or hemisphere == "":
        raise NmeaError(f"NMEA {name} has only half its fields: {value!r},{hemisphere!r}")
    head = value.split(".", 1)[0]
    if len(head) != degree_digits + 2 or not head.isdigit():
        raise NmeaError(f"NMEA {name} must be {'d' * degree_digits}mm.mmmm, got {value!r}")
    degrees = int(head[:degree_digits])
    minutes = _float(value[degree_digits:], name)
    if minutes is None or minutes >= 60.0:
        raise NmeaError(f"NMEA {name} minutes out of range: {value!r}")
    decimal = degrees + minutes / 60.0
    limit = 90.0 if degree_digits == 2 else 180.0
    if decimal > limit:
        raise NmeaError(f"NMEA {name} beyond ±{limit:.0f}°: {value!r}")
    positive, negative = ("N", "S") if degree_digits == 2 else ("E", "W")
    if hemisphere == positive:
        return decimal
    if hemisphere == negative:
        return -decimal
    raise NmeaError(f"NMEA {name} hemisphere must be {positive} or {negative}, got {hemisphere!r}")


def _date(field: str) -> tuple[int, int, int] | None:
    if field == "":
        return None
    if len(field) != 6 or not field.isdigit():
        raise NmeaError(f"NMEA date must be ddmmyy, got {field!r}")
    # Two-digit year: GPS began in 1980, so 80…99 are 1980…1999 and 00…79 are 2000…2079.
    yy = int(field[4:6])
    d, m, y = int(field[0:2]), int(field[2:4]), (1900 if yy >= 80 else 2000) + yy
    if not 1 <= m <= 12 or not 1 <= d <= calendar.monthrange(y, m)[1]:
        raise NmeaError(f"NMEA date out of range: {field!r}")
    return y, m, d


def _parse_gga(talker: str, f: list[str]) -> Gga:
    if len(f) < 14:
        raise NmeaError(f"NMEA GGA needs 14 fields, got {len(f)}")
    quality = _int(f[5], "GGA fix quality")
    if quality > 9:
        raise NmeaError(f"NMEA GGA fix quality must be 0…9, got {quality}")
    hdop = _float(f[7], "GGA HDOP")
    return Gga(
        talker=talker,
        time_of_day_s=_time_of_day(f[0]),
        lat=_coordinate(f[1], f[2], 2, "latitude"),
        lon=_coordinate(f[3], f[4], 3, "longitude"),
        quality=quality,
        satellites=_int(f[6], "GGA satellites"),
        hdop=math.nan if hdop is None else hdop,
        alt_m=_float(f[8], "GGA altitude"),
    )


def _parse_rmc(talker: str, f: list[str]) -> Rmc:
    if len(f) < 11:
        raise NmeaError(f"NMEA RMC needs at least 11 fields, got {len(f)}")
    if f[1] not in ("A", "V"):
        raise NmeaError(f"NMEA RMC status must be A or V, got {f[1]!r}")
    # NMEA 2.3+ appends a mode indicator; N (data not valid) overrides an A status.
    mode_invalid = len(f) >= 12 and f[11][:1] == "N"
    return Rmc(
        talker=talker,
        time_of_day_s=_time_of_day(f[0]),
        valid=f[1] == "A" and not mode_invalid,
        lat=_coordinate(f[2], f[3], 2, "latitude"),
        lon=_coordinate(f[4], f[5], 3, "longitude"),
        speed_kn=_float(f[6], "RMC speed"),
        course_deg=_float(f[7], "RMC course"),
        date_ymd=_date(f[8]),
    )


def parse_sentence(line: bytes | str) -> NmeaSentence | None:
    """One sentence (with or without CRLF) → Gga, Rmc, or None for another sentence type.

    Raises NmeaError for anything malformed, including a missing or wrong checksum.
    """
    if isinstance(line, bytes):
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise NmeaError("NMEA sentence holds non-ASCII bytes") from None
    else:
        text = line
    text = text.rstrip("\r\n")
    if not text.startswith("$"):
        raise NmeaError(f"NMEA sentence must start with $, got {text[:10]!r}")
    if len(text) < 9 or text[-3] != "*":
        raise NmeaChecksumError(f"NMEA sentence needs a *HH checksum: {text[:90]!r}")
    body, given = text[1:-3], text[-2:]
    try:
        given_value = int(given, 16)
    except ValueError:
        raise NmeaChecksumError(f"NMEA checksum is not hex: {given!r}") from None
    if checksum(body) != given_value:
        raise NmeaChecksumError(
            f"NMEA checksum mismatch: computed {checksum(body):02X}, got {given}"
        )
    fields = body.split(",")
    address = fields[0]
    if len(address) != 5 or not address.isalnum() or not address.isupper():
        raise NmeaError(f"NMEA address must be a talker and a type, got {address!r}")
    talker, kind = address[:2], address[2:]
    if kind == "GGA":
        return _parse_gga(talker, fields[1:])
    if kind == "RMC":
        return _parse_rmc(talker, fields[1:])
    return None


class NmeaDecoder:
    """Splits a byte stream into parsed GGA/RMC sentences. ``feed`` never raises.

    Counters: ``sentences`` parsed, ``other`` (valid sentences of other types),
    ``crc_errors`` (checksum missing or wrong), ``malformed`` (bad fields or a line cut
    short by the next ``$``), ``garbage_bytes`` (outside any sentence).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.sentences = 0
        self.other = 0
        self.crc_errors = 0
        self.malformed = 0
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> list[NmeaSentence]:
        buf = self._buffer
        buf.extend(data)
        out: list[NmeaSentence] = []
        while True:
            start = buf.find(b"$")
            if start < 0:
                self.garbage_bytes += len(buf)
                buf.clear()
                break
            if start > 0:
                self.garbage_bytes += start
                del buf[:start]
            end = buf.find(b"\n")
            nxt = buf.find(b"$", 1)
            if nxt >= 0 and (end < 0 or nxt < end):
                # The line was cut short: a new sentence began before its end.
                self.malformed += 1
                del buf[:nxt]
                continue
            if end < 0:
                if len(buf) > MAX_SENTENCE_LEN:
                    self.malformed += 1
                    self.garbage_bytes += len(buf) - 1
                    del buf[:]
                break
            line = bytes(buf[: end + 1])
            del buf[: end + 1]
            if len(line) > MAX_SENTENCE_LEN + 2:
                self.malformed += 1
                continue
            try:
                parsed = parse_sentence(line)
            except NmeaChecksumError:
                self.crc_errors += 1
                continue
            except NmeaError:
                self.malformed += 1
                continue
            if parsed is None:
                self.other += 1
            else:
                self.sentences += 1
                out.append(parsed)
        return out


class FixAssembler:
    """Pairs the GGA and RMC of one epoch into a GnssFix, only when both say "fix"."""

    def __init__(self) -> None:
        self._gga: Gga | None = None
        self._rmc: Rmc | None = None
        self._emitted_epoch: tuple[float, float] | None = None

    def update(self, item: NmeaSentence) -> GnssFix | None:
        """Feed one sentence; returns a fix when it completes a valid epoch, else None."""
        if isinstance(item, Gga):
            self._gga = item
        else:
            self._rmc = item
        gga, rmc = self._gga, self._rmc
        if gga is None or rmc is None or abs(gga.time_of_day_s - rmc.time_of_day_s) > 1e-3:
            return None
        t = rmc.t
        if t is None:
            return None
        epoch = (t, gga.time_of_day_s)
        if epoch == self._emitted_epoch:
            return None
        lat, lon = gga.lat, gga.lon
        if not is_real_fix(gga, rmc) or lat is None or lon is None:
            return None
        self._emitted_epoch = epoch
        return GnssFix(
            t=t,
            lat=lat,
            lon=lon,
            alt_m=math.nan if gga.alt_m is None else gga.alt_m,
            fix_quality=gga.quality,
            satellites=gga.satellites,
            hdop=gga.hdop,
        )


def is_real_fix(gga: Gga, rmc: Rmc) -> bool:
    """GGA quality > 0, RMC status A, a position present, and not the 0,0 of "no fix"."""
    if gga.quality <= 0 or not rmc.valid or gga.lat is None or gga.lon is None:
        return False
    return not (gga.lat == 0.0 and gga.lon == 0.0)
