"""Pelco-D framing: build and parse 7-byte frames, resynchronising on a byte stream (no I/O).

Frame: ``FF addr cmd1 cmd2 data1 data2 sum`` with sum = (addr + cmd1 + cmd2 + data1 +
data2) mod 256 (Pelco D Protocol Manual TF-0002 v2.1).

Absolute-position extensions (``cmd1 = 00``): ``4B`` set pan, ``4D`` set tilt, ``4F`` set
zoom; ``51``/``53``/``55`` query pan/tilt/zoom, answered with ``59``/``5B``/``5D``. The
value is ``data1:data2`` big-endian.

Angle encoding used here (vendors differ, so it is written down once):
- pan: hundredths of a degree of the head's own pan, 0…35999;
- tilt: hundredths of a degree of the head's own tilt, positive up; a negative tilt t is
  sent as 36000 − |t|·100, so −15° → 34500 and +90° → 9000. Values above 18000 decode
  as negative.
- zoom: a position 0…65535 from the widest to the narrowest field of view, mapped to
  the horizontal field of view geometrically (equal position steps are equal zoom
  ratios, as on a motorised zoom lens): hfov = wide · (tele / wide)^(position / max).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SYNC = 0xFF
FRAME_LEN = 7

# cmd2 bits of a standard motion command (cmd1 = 0).
RIGHT = 0x02
LEFT = 0x04
UP = 0x08
DOWN = 0x10
ZOOM_TELE = 0x20
ZOOM_WIDE = 0x40

# Preset operations (cmd2), preset number in data2.
PRESET_SET = 0x03
PRESET_CLEAR = 0x05
PRESET_GO = 0x07

# Absolute position extensions (cmd2).
SET_PAN = 0x4B
SET_TILT = 0x4D
SET_ZOOM = 0x4F
QUERY_PAN = 0x51
QUERY_TILT = 0x53
QUERY_ZOOM = 0x55
REPLY_PAN = 0x59
REPLY_TILT = 0x5B
REPLY_ZOOM = 0x5D
REPLY_FOR_QUERY = {QUERY_PAN: REPLY_PAN, QUERY_TILT: REPLY_TILT, QUERY_ZOOM: REPLY_ZOOM}

# Speed bytes: 0x00…0x3F, and 0x40 = "turbo" (pan only) on most heads.
SPEED_MAX = 0x3F
PAN_TURBO = 0x40

ZOOM_POSITION_MAX = 0xFFFF
CENTIDEG_PER_TURN = 36000


class PelcoDError(ValueError):
    """A Pelco-D frame or value is invalid (bad length, sync, checksum or range)."""


def checksum(body: bytes | bytearray) -> int:
    """Checksum of the five bytes after the sync byte: their sum modulo 256."""
    return sum(body) & 0xFF


@dataclass(frozen=True)
class PelcoFrame:
    """One Pelco-D frame (sync and checksum are implied)."""

    address: int
    cmd1: int
    cmd2: int
    data1: int
    data2: int

    def __post_init__(self) -> None:
        for name in ("address", "cmd1", "cmd2", "data1", "data2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise PelcoDError(f"Pelco-D {name} must be a byte, got {value}")

    @property
    def value(self) -> int:
        """data1:data2 as one big-endian 16-bit number (the extensions' payload)."""
        return (self.data1 << 8) | self.data2

    def encode(self) -> bytes:
        body = bytes((self.address, self.cmd1, self.cmd2, self.data1, self.data2))
        return bytes((SYNC,)) + body + bytes((checksum(body),))


def decode_frame(raw: bytes) -> PelcoFrame:
    """Exactly one 7-byte frame → PelcoFrame; raises PelcoDError when it is not one."""
    if len(raw) != FRAME_LEN:
        raise PelcoDError(f"Pelco-D frame must be {FRAME_LEN} bytes, got {len(raw)}")
    if raw[0] != SYNC:
        raise PelcoDError(f"Pelco-D frame must start with FF, got {raw[0]:02X}")
    if checksum(raw[1:6]) != raw[6]:
        raise PelcoDError(
            f"Pelco-D checksum mismatch: expected {checksum(raw[1:6]):02X}, got {raw[6]:02X}"
        )
    return PelcoFrame(raw[1], raw[2], raw[3], raw[4], raw[5])


# ------------------------------------------------------------------- values


def encode_pan(raw_pan_deg: float) -> int:
    """Head pan in degrees → 0…35999 hundredths (wrapped into one turn)."""
    return round(raw_pan_deg * 100.0) % CENTIDEG_PER_TURN


def decode_pan(value: int) -> float:
    if not 0 <= value < CENTIDEG_PER_TURN:
        raise PelcoDError(f"Pelco-D pan value must be 0…35999, got {value}")
    return value / 100.0


def encode_tilt(raw_tilt_deg: float) -> int:
    """Head tilt in degrees (−90…90, positive up) → hundredths; negative as 36000 − |t|."""
    if not -90.0 <= raw_tilt_deg <= 90.0:
        raise PelcoDError(f"Pelco-D tilt must be within −90…90°, got {raw_tilt_deg}")
    centideg = round(raw_tilt_deg * 100.0)
    return centideg if centideg >= 0 else CENTIDEG_PER_TURN + centideg


def decode_tilt(value: int) -> float:
    if not 0 <= value < CENTIDEG_PER_TURN:
        raise PelcoDError(f"Pelco-D tilt value must be 0…35999, got {value}")
    return (value - CENTIDEG_PER_TURN if value > CENTIDEG_PER_TURN // 2 else value) / 100.0


def zoom_position_to_hfov(
    position: int, hfov_wide_deg: float, hfov_tele_deg: float, position_max: int = ZOOM_POSITION_MAX
) -> float:
    """Zoom position (0 = widest) → horizontal field of view in degrees."""
    fraction = min(max(position / position_max, 0.0), 1.0)
    return hfov_wide_deg * (hfov_tele_deg / hfov_wide_deg) ** fraction


def hfov_to_zoom_position(
    hfov_deg: float,
    hfov_wide_deg: float,
    hfov_tele_deg: float,
    position_max: int = ZOOM_POSITION_MAX,
) -> int:
    """Horizontal field of view in degrees → zoom position, clamped to the lens's range."""
    if not (math.isfinite(hfov_deg) and hfov_deg > 0.0):
        raise PelcoDError(f"Pelco-D field of view must be a positive angle, got {hfov_deg}")
    fraction = math.log(hfov_deg / hfov_wide_deg) / math.log(hfov_tele_deg / hfov_wide_deg)
    return round(min(max(fraction, 0.0), 1.0) * position_max)


# ------------------------------------------------------------------- commands


def _value_frame(address: int, cmd2: int, value: int) -> PelcoFrame:
    if not 0 <= value <= 0xFFFF:
        raise PelcoDError(f"Pelco-D value must be 0…65535, got {value}")
    return PelcoFrame(address, 0x00, cmd2, value >> 8, value & 0xFF)


def stop(address: int) -> PelcoFrame:
    return PelcoFrame(address, 0x00, 0x00, 0x00, 0x00)


def move(address: int, pan_speed: float, tilt_speed: float, zoom: int = 0) -> PelcoFrame:
    """Continuous move: speeds in [-1, 1] of full speed (+pan = right, +tilt = up);
    zoom > 0 zooms tele, < 0 wide. Full pan speed uses the turbo byte."""
    if not (-1.0 <= pan_speed <= 1.0 and -1.0 <= tilt_speed <= 1.0):
        raise PelcoDError(f"Pelco-D speeds must be within [-1, 1], got {pan_speed}, {tilt_speed}")
    cmd2 = 0
    if pan_speed > 0:
        cmd2 |= RIGHT
    elif pan_speed < 0:
        cmd2 |= LEFT
    if tilt_speed > 0:
        cmd2 |= UP
    elif tilt_speed < 0:
        cmd2 |= DOWN
    if zoom > 0:
        cmd2 |= ZOOM_TELE
    elif zoom < 0:
        cmd2 |= ZOOM_WIDE
    pan_byte = PAN_TURBO if abs(pan_speed) >= 1.0 else max(1, round(abs(pan_speed) * SPEED_MAX))
    tilt_byte = max(1, round(abs(tilt_speed) * SPEED_MAX))
    return PelcoFrame(
        address, 0x00, cmd2, pan_byte if pan_speed else 0, tilt_byte if tilt_speed else 0
    )


def speed_fraction(speed_byte: int) -> float:
    """A pan/tilt speed byte → fraction of full speed (turbo = 1.0)."""
    return min(speed_byte, SPEED_MAX) / SPEED_MAX


def preset(address: int, operation: int, number: int) -> PelcoFrame:
    if operation not in (PRESET_SET, PRESET_CLEAR, PRESET_GO):
        raise PelcoDError(f"Pelco-D preset operation must be 03, 05 or 07, got {operation:02X}")
    if not 1 <= number <= 0xFF:
        raise PelcoDError(f"Pelco-D preset number must be 1…255, got {number}")
    return PelcoFrame(address, 0x00, operation, 0x00, number)


def set_pan(address: int, raw_pan_deg: float) -> PelcoFrame:
    return _value_frame(address, SET_PAN, encode_pan(raw_pan_deg))


def set_tilt(address: int, raw_tilt_deg: float) -> PelcoFrame:
    return _value_frame(address, SET_TILT, encode_tilt(raw_tilt_deg))


def set_zoom(address: int, zoom_position: int) -> PelcoFrame:
    return _value_frame(address, SET_ZOOM, zoom_position)


def query(address: int, cmd2: int) -> PelcoFrame:
    if cmd2 not in REPLY_FOR_QUERY:
        raise PelcoDError(f"Pelco-D query must be 51, 53 or 55, got {cmd2:02X}")
    return PelcoFrame(address, 0x00, cmd2, 0x00, 0x00)


def reply(address: int, cmd2: int, value: int) -> PelcoFrame:
    """A head's answer to a query (cmd2 = 59, 5B or 5D)."""
    if cmd2 not in REPLY_FOR_QUERY.values():
        raise PelcoDError(f"Pelco-D reply must be 59, 5B or 5D, got {cmd2:02X}")
    return _value_frame(address, cmd2, value)


# ------------------------------------------------------------------- stream


class PelcoDDecoder:
    """Splits a byte stream into valid frames.

    Bytes before a sync byte are garbage. A 7-byte candidate with a wrong checksum
    counts as a checksum error and only its sync byte is dropped, because on a noisy
    RS-485 line the real frame may start inside it (data bytes may be FF too).
    ``feed`` never raises.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames = 0
        self.crc_errors = 0
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> list[PelcoFrame]:
        self._buffer.extend(data)
        frames: list[PelcoFrame] = []
        buf = self._buffer
        while True:
            start = buf.find(SYNC)
            if start < 0:
                self.garbage_bytes += len(buf)
                buf.clear()
                break
            if start > 0:
                self.garbage_bytes += start
                del buf[:start]
            if len(buf) < FRAME_LEN:
                break
            if checksum(buf[1:6]) != buf[6]:
                self.crc_errors += 1
                self.garbage_bytes += 1
                del buf[:1]
                continue
            frames.append(PelcoFrame(buf[1], buf[2], buf[3], buf[4], buf[5]))
            self.frames += 1
            del buf[:FRAME_LEN]
        return frames

    @property
    def pending_bytes(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buffer)
