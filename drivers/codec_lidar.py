"""Smoke-lidar framing (drivers/LIDAR_PROTOCOL.md): encode messages, decode a byte stream (no I/O)."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

SYNC = b"\xaa\x55"
HEADER_LEN = 5  # sync (2) + type (1) + length (2)
CRC_LEN = 2
MAX_PAYLOAD = 32768

TYPE_SCAN = 0x01
TYPE_PROFILE = 0x02
TYPE_STATUS_REQUEST = 0x03
TYPE_STATUS = 0x04
TYPE_ACK = 0x05
TYPE_ERROR = 0x06
KNOWN_TYPES = frozenset(
    (TYPE_SCAN, TYPE_PROFILE, TYPE_STATUS_REQUEST, TYPE_STATUS, TYPE_ACK, TYPE_ERROR)
)

ENCODING_U16 = 0
ENCODING_F32 = 1

STATE_IDLE = 0
STATE_SCANNING = 1
STATE_FAULT = 2

ERROR_BAD_PARAMETER = 1
ERROR_BUSY = 2
ERROR_LASER_FAULT = 3
ERROR_UNKNOWN_COMMAND = 4

_SCAN = struct.Struct("<HffH")
_PROFILE_HEAD = struct.Struct("<HdffffHBH")
_STATUS = struct.Struct("<dBfH")
_ACK = struct.Struct("<HB")
_ERROR_HEAD = struct.Struct("<HB")
_HEADER = struct.Struct("<BH")


class LidarFrameError(ValueError):
    """A lidar message or frame is invalid (bad CRC, length, type, payload or value)."""


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF); b"123456789" → 0x29B1."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


# ------------------------------------------------------------------- messages


@dataclass(frozen=True)
class ScanCommand:
    seq: int
    azimuth_deg: float
    elevation_deg: float
    shots: int


@dataclass(frozen=True)
class ProfileMessage:
    seq: int
    t: float
    azimuth_deg: float
    elevation_deg: float
    first_bin_m: float
    bin_m: float
    shots: int
    bins: np.ndarray  # float32 mean counts per shot
    encoding: int = ENCODING_F32


@dataclass(frozen=True)
class StatusRequest:
    """Ask the lidar for a status frame (the message has no payload)."""


@dataclass(frozen=True)
class Status:
    t: float
    state: int
    laser_temp_c: float
    fault_code: int


@dataclass(frozen=True)
class Ack:
    seq: int
    acked_type: int


@dataclass(frozen=True)
class ErrorMessage:
    seq: int
    code: int
    text: str


LidarMessage = ScanCommand | ProfileMessage | StatusRequest | Status | Ack | ErrorMessage


def _frame(msg_type: int, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise LidarFrameError(f"lidar payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = _HEADER.pack(msg_type, len(payload)) + payload
    return SYNC + body + crc16_ccitt(body).to_bytes(2, "little")


def _check_u16(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise LidarFrameError(f"lidar {name} must be 0…65535, got {value}")


def _check_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise LidarFrameError(f"lidar {name} must be finite, got {value}")


def encode(message: LidarMessage) -> bytes:
    """One message → one complete frame; raises LidarFrameError for values out of range."""
    if isinstance(message, ScanCommand):
        _check_u16("seq", message.seq)
        _check_finite("azimuth_deg", message.azimuth_deg)
        if not -90.0 <= message.elevation_deg <= 90.0:
            raise LidarFrameError(f"lidar elevation must be −90…90°, got {message.elevation_deg}")
        if not 1 <= message.shots <= 0xFFFF:
            raise LidarFrameError(f"lidar shots must be 1…65535, got {message.shots}")
        payload = _SCAN.pack(
            message.seq, message.azimuth_deg % 360.0, message.elevation_deg, message.shots
        )
        return _frame(TYPE_SCAN, payload)
    if isinstance(message, ProfileMessage):
        _check_u16("seq", message.seq)
        _check_u16("shots", message.shots)
        bins = np.asarray(message.bins)
        if bins.ndim != 1:
            raise LidarFrameError(f"lidar bins must be one-dimensional, got shape {bins.shape}")
        if message.encoding == ENCODING_U16:
            data = np.clip(np.rint(bins), 0, 0xFFFF).astype("<u2").tobytes()
        elif message.encoding == ENCODING_F32:
            data = bins.astype("<f4").tobytes()
        else:
            raise LidarFrameError(f"lidar bin encoding must be 0 or 1, got {message.encoding}")
        head = _PROFILE_HEAD.pack(
            message.seq,
            message.t,
            message.azimuth_deg,
            message.elevation_deg,
            message.first_bin_m,
            message.bin_m,
            message.shots,
            message.encoding,
            bins.size,
        )
        return _frame(TYPE_PROFILE, head + data)
    if isinstance(message, StatusRequest):
        return _frame(TYPE_STATUS_REQUEST, b"")
    if isinstance(message, Status):
        if not 0 <= message.state <= 0xFF:
            raise LidarFrameError(f"lidar state must be a byte, got {message.state}")
        _check_u16("fault_code", message.fault_code)
        return _frame(
            TYPE_STATUS,
            _STATUS.pack(message.t, message.state, message.laser_temp_c, message.fault_code),
        )
    if isinstance(message, Ack):
        _check_u16("seq", message.seq)
        if message.acked_type not in KNOWN_TYPES:
            raise LidarFrameError(f"lidar ack of unknown type {message.acked_type}")
        return _frame(TYPE_ACK, _ACK.pack(message.seq, message.acked_type))
    _check_u16("seq", message.seq)
    if not 0 <= message.code <= 0xFF:
        raise LidarFrameError(f"lidar error code must be a byte, got {message.code}")
    return _frame(
        TYPE_ERROR, _ERROR_HEAD.pack(message.seq, message.code) + message.text.encode("utf-8")
    )


def decode_payload(msg_type: int, payload: bytes) -> LidarMessage:
    """A CRC-checked payload → its message; raises LidarFrameError when it is malformed."""
    size = len(payload)
    if msg_type == TYPE_SCAN:
        if size != _SCAN.size:
            raise LidarFrameError(f"lidar scan command must be {_SCAN.size} bytes, got {size}")
        seq, azimuth, elevation, shots = _SCAN.unpack(payload)
        if not (math.isfinite(azimuth) and math.isfinite(elevation)) or shots == 0:
            raise LidarFrameError("lidar scan command has a non-finite angle or zero shots")
        return ScanCommand(seq, azimuth, elevation, shots)
    if msg_type == TYPE_PROFILE:
        if size < _PROFILE_HEAD.size:
            raise LidarFrameError(f"lidar profile shorter than its {_PROFILE_HEAD.size}-byte head")
        seq, t, azimuth, elevation, first_bin_m, bin_m, shots, encoding, n_bins = (
            _PROFILE_HEAD.unpack_from(payload)
        )
        if encoding == ENCODING_U16:
            dtype, width = "<u2", 2
        elif encoding == ENCODING_F32:
            dtype, width = "<f4", 4
        else:
            raise LidarFrameError(f"lidar profile has unknown bin encoding {encoding}")
        if size != _PROFILE_HEAD.size + n_bins * width:
            raise LidarFrameError(
                f"lidar profile says {n_bins} bins but carries {size - _PROFILE_HEAD.size} bytes"
            )
        if not all(math.isfinite(v) for v in (t, azimuth, elevation, first_bin_m, bin_m)):
            raise LidarFrameError("lidar profile has a non-finite time, angle or range")
        if bin_m <= 0.0 or first_bin_m < 0.0:
            raise LidarFrameError(
                f"lidar profile bins must start at >= 0 m and be > 0 m wide, "
                f"got first_bin_m={first_bin_m:g} bin_m={bin_m:g}"
            )
        bins = np.frombuffer(payload, dtype=dtype, offset=_PROFILE_HEAD.size).astype(np.float32)
        if not np.isfinite(bins).all():
            raise LidarFrameError("lidar profile has NaN or infinite bins")
        return ProfileMessage(seq, t, azimuth, elevation, first_bin_m, bin_m, shots, bins, encoding)
    if msg_type == TYPE_STATUS_REQUEST:
        if size != 0:
            raise LidarFrameError(f"lidar status request must be empty, got {size} bytes")
        return StatusRequest()
    if msg_type == TYPE_STATUS:
        if size != _STATUS.size:
            raise LidarFrameError(f"lidar status must be {_STATUS.size} bytes, got {size}")
        return Status(*_STATUS.unpack(payload))
    if msg_type == TYPE_ACK:
        if size != _ACK.size:
            raise LidarFrameError(f"lidar ack must be {_ACK.size} bytes, got {size}")
        return Ack(*_ACK.unpack(payload))
    if msg_type == TYPE_ERROR:
        if size < _ERROR_HEAD.size:
            raise LidarFrameError(f"lidar error must be at least {_ERROR_HEAD.size} bytes")
        seq, code = _ERROR_HEAD.unpack_from(payload)
        return ErrorMessage(seq, code, payload[_ERROR_HEAD.size :].decode("utf-8", "replace"))
    raise LidarFrameError(f"lidar message type {msg_type:#04x} is unknown")


def decode(frame: bytes) -> LidarMessage:
    """Exactly one complete frame → its message; raises LidarFrameError."""
    if len(frame) < HEADER_LEN + CRC_LEN or frame[:2] != SYNC:
        raise LidarFrameError("lidar frame must start with AA 55 and hold a header and CRC")
    msg_type, length = _HEADER.unpack_from(frame, 2)
    if len(frame) != HEADER_LEN + length + CRC_LEN:
        raise LidarFrameError(
            f"lidar frame length field says {length} payload bytes, frame has {len(frame)} bytes"
        )
    body = frame[2 : HEADER_LEN + length]
    if crc16_ccitt(body) != int.from_bytes(frame[-2:], "little"):
        raise LidarFrameError("lidar frame CRC mismatch")
    return decode_payload(msg_type, frame[HEADER_LEN : HEADER_LEN + length])


class LidarDecoder:
    """Splits a byte stream into messages, resynchronising on AA 55. ``feed`` never raises."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buffer = bytearray()
        self._max_payload = max_payload
        self.frames = 0
        self.crc_errors = 0
        self.length_errors = 0
        self.malformed = 0
        self.garbage_bytes = 0

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def _complete_frame_after_start(self) -> int | None:
        """Offset of the next sync that begins a complete, CRC-valid frame, if any."""
        buf = self._buffer
        offset = buf.find(SYNC, 1)
        while 0 < offset <= len(buf) - HEADER_LEN - CRC_LEN:
            msg_type, length = _HEADER.unpack_from(buf, offset + 2)
            end = offset + HEADER_LEN + length + CRC_LEN
            if msg_type in KNOWN_TYPES and length <= self._max_payload and end <= len(buf):
                body = bytes(buf[offset + 2 : end - CRC_LEN])
                if crc16_ccitt(body) == int.from_bytes(buf[end - CRC_LEN : end], "little"):
                    return offset
            offset = buf.find(SYNC, offset + 1)
        return None

    def _skip_sync(self) -> None:
        self.garbage_bytes += 1
        del self._buffer[:1]

    def feed(self, data: bytes) -> list[LidarMessage]:
        buf = self._buffer
        buf.extend(data)
        messages: list[LidarMessage] = []
        while True:
            start = buf.find(SYNC)
            if start < 0:
                # Keep a trailing AA: it may be the first half of the next sync.
                keep = 1 if buf.endswith(SYNC[:1]) else 0
                self.garbage_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                break
            if start > 0:
                self.garbage_bytes += start
                del buf[:start]
            if len(buf) < HEADER_LEN:
                break
            msg_type, length = _HEADER.unpack_from(buf, 2)
            if msg_type not in KNOWN_TYPES or length > self._max_payload:
                self.length_errors += 1
                self._skip_sync()
                continue
            total = HEADER_LEN + length + CRC_LEN
            if len(buf) < total:
                # A truncated frame followed by a short good one: take the good one now
                # rather than wait for the bytes the truncated header still claims.
                later = self._complete_frame_after_start()
                if later is None:
                    break
                self.crc_errors += 1
                self.garbage_bytes += later
                del buf[:later]
                continue
            body = bytes(buf[2 : HEADER_LEN + length])
            if crc16_ccitt(body) != int.from_bytes(buf[total - CRC_LEN : total], "little"):
                self.crc_errors += 1
                self._skip_sync()
                continue
            payload = body[3:]
            del buf[:total]
            try:
                messages.append(decode_payload(msg_type, payload))
            except LidarFrameError:
                self.malformed += 1
                continue
            self.frames += 1
        return messages
