"""The raw radiometric frame stream over TCP: header layout, encoding and parsing.

A client connects and sends a 8-byte hello: ``b"TWFSSUB"`` + one byte stream kind
(1 thermal, 2 visible). The server then sends frames, each a 48-byte little-endian header
followed by the payload:

    offset size field
    0      4    magic b"TWFS"
    4      1    version (1)
    5      1    kind: 1 thermal, 2 visible
    6      1    pixel format: 1 uint16 centikelvin (radiometric), 2 uint8 mono (AGC),
                3 uint8 BGR
    7      1    flags: bit 0 shutter (non-uniformity correction in progress),
                bit 1 pose valid
    8      2    width (px)
    10     2    height (px)
    12     4    sequence number
    16     8    t: the camera's clock, unix seconds UTC (float64)
    24     4    pan_deg (float32, true azimuth of the optical axis, when pose valid)
    28     4    tilt_deg
    32     4    hfov_deg
    36     4    vfov_deg
    40     4    payload length in bytes
    44     4    CRC-32 of the payload

Centikelvin (K × 100) in 16 bits saturates at 655.35 K, as a real radiometric core does.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAGIC = b"TWFS"
VERSION = 1
HELLO_PREFIX = b"TWFSSUB"
HEADER = struct.Struct("<4sBBBBHHIdffffII")
assert HEADER.size == 48

KIND_THERMAL = 1
KIND_VISIBLE = 2
KINDS = {"thermal": KIND_THERMAL, "visible": KIND_VISIBLE}

FORMAT_CENTIKELVIN = 1
FORMAT_MONO8 = 2
FORMAT_BGR8 = 3
_BYTES_PER_PIXEL = {FORMAT_CENTIKELVIN: 2, FORMAT_MONO8: 1, FORMAT_BGR8: 3}

FLAG_SHUTTER = 0x01
FLAG_POSE = 0x02

MAX_PIXELS = 4096 * 4096  # refuse absurd headers rather than allocate gigabytes


class FrameStreamError(Exception):
    """A malformed hello, header or payload."""


class FrameValueError(FrameStreamError):
    """A well-framed header with values no camera sends (absurd time, pose, kind, flags).

    The stream is still in step: the reader skips this frame's payload and goes on.
    """


# A frame time past 2100-01-01 (or before the epoch) is a broken camera clock, not a
# time; the solar and clock maths downstream overflow on values like 1e300.
T_MIN_S = 0.0
T_MAX_S = 4_102_444_800.0
_KNOWN_FLAGS = FLAG_SHUTTER | FLAG_POSE


@dataclass(frozen=True)
class FrameHeader:
    kind: int
    pixel_format: int
    flags: int
    width: int
    height: int
    seq: int
    t: float
    pan_deg: float
    tilt_deg: float
    hfov_deg: float
    vfov_deg: float
    payload_len: int
    payload_crc: int

    @property
    def shutter(self) -> bool:
        return bool(self.flags & FLAG_SHUTTER)

    @property
    def has_pose(self) -> bool:
        return bool(self.flags & FLAG_POSE)


def hello(kind: int) -> bytes:
    return HELLO_PREFIX + bytes([kind])


def parse_hello(data: bytes) -> int:
    if len(data) != len(HELLO_PREFIX) + 1 or not data.startswith(HELLO_PREFIX):
        raise FrameStreamError(f"bad hello {data!r}")
    kind = data[-1]
    if kind not in (KIND_THERMAL, KIND_VISIBLE):
        raise FrameStreamError(f"hello asks for unknown stream kind {kind}")
    return kind


def encode_frame(
    kind: int,
    image: np.ndarray,
    seq: int,
    t: float,
    *,
    pan_deg: float = math.nan,
    tilt_deg: float = math.nan,
    hfov_deg: float = math.nan,
    vfov_deg: float = math.nan,
    shutter: bool = False,
) -> bytes:
    """Header + payload for one frame. float images are Kelvin and go out as centikelvin."""
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        pixel_format, payload = FORMAT_BGR8, np.ascontiguousarray(image).tobytes()
    elif image.dtype == np.uint8 and image.ndim == 2:
        pixel_format, payload = FORMAT_MONO8, np.ascontiguousarray(image).tobytes()
    elif image.ndim == 2 and np.issubdtype(image.dtype, np.floating):
        counts = np.clip(np.rint(np.nan_to_num(image, nan=0.0) * 100.0), 0, 65535)
        pixel_format, payload = FORMAT_CENTIKELVIN, counts.astype("<u2").tobytes()
    else:
        raise FrameStreamError(f"cannot encode an image of {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    pose_valid = all(math.isfinite(v) for v in (pan_deg, tilt_deg, hfov_deg))
    flags = (FLAG_SHUTTER if shutter else 0) | (FLAG_POSE if pose_valid else 0)
    header = HEADER.pack(
        MAGIC,
        VERSION,
        kind,
        pixel_format,
        flags,
        width,
        height,
        seq & 0xFFFFFFFF,
        t,
        pan_deg,
        tilt_deg,
        hfov_deg,
        vfov_deg,
        len(payload),
        zlib.crc32(payload),
    )
    return header + payload


def unchecked_header(data: bytes | bytearray) -> FrameHeader:
    """The fields as sent, without checks: only for skipping a frame `parse_header` refused
    with FrameValueError (its framing fields were checked then)."""
    (_, _, kind, pixel_format, flags, width, height, seq, t, pan, tilt, hfov, vfov,
     payload_len, crc) = HEADER.unpack(data)  # fmt: skip
    return FrameHeader(kind, pixel_format, flags, width, height, seq, t, pan, tilt, hfov, vfov,
                       payload_len, crc)  # fmt: skip


def parse_header(data: bytes | bytearray) -> FrameHeader:
    """Header bytes → FrameHeader; FrameStreamError when the framing is broken (resync by
    reconnecting), FrameValueError when only this frame's values are absurd."""
    if len(data) != HEADER.size:
        raise FrameStreamError(f"header must be {HEADER.size} bytes, got {len(data)}")
    (magic, version, kind, pixel_format, flags, width, height, seq, t, pan, tilt, hfov, vfov,
     payload_len, crc) = HEADER.unpack(data)  # fmt: skip
    if magic != MAGIC:
        raise FrameStreamError(f"bad magic {magic!r}")
    if version != VERSION:
        raise FrameStreamError(f"unsupported stream version {version}")
    if pixel_format not in _BYTES_PER_PIXEL:
        raise FrameStreamError(f"unknown pixel format {pixel_format}")
    if not 0 < width * height <= MAX_PIXELS:
        raise FrameStreamError(f"frame size {width}x{height} out of range")
    expected = width * height * _BYTES_PER_PIXEL[pixel_format]
    if payload_len != expected:
        raise FrameStreamError(
            f"payload length {payload_len} does not match {width}x{height} format {pixel_format}"
        )
    # Framing is sound from here on: what follows rejects the frame, not the stream.
    if kind not in (KIND_THERMAL, KIND_VISIBLE):
        raise FrameValueError(f"unknown stream kind {kind}")
    if flags & ~_KNOWN_FLAGS:
        raise FrameValueError(f"unknown flag bits 0x{flags & ~_KNOWN_FLAGS:02x}")
    if not (math.isfinite(t) and T_MIN_S <= t <= T_MAX_S):
        raise FrameValueError(f"frame time {t!r} is not a time between 1970 and 2100")
    if flags & FLAG_POSE:
        _check_pose(pan, tilt, hfov, vfov)
    return FrameHeader(kind, pixel_format, flags, width, height, seq, t, pan, tilt, hfov, vfov,
                       payload_len, crc)  # fmt: skip


def _check_pose(pan_deg: float, tilt_deg: float, hfov_deg: float, vfov_deg: float) -> None:
    # vfov may be NaN (unknown: derived from hfov and the aspect ratio), the rest not.
    if not all(math.isfinite(v) for v in (pan_deg, tilt_deg, hfov_deg)) or math.isinf(vfov_deg):
        raise FrameValueError("pose marked valid but holds NaN or infinity")
    if not -360.0 <= pan_deg <= 360.0:
        raise FrameValueError(f"pose pan_deg {pan_deg:g} outside -360..360")
    if not -90.0 <= tilt_deg <= 90.0:
        raise FrameValueError(f"pose tilt_deg {tilt_deg:g} outside -90..90")
    if not (0.0 < hfov_deg < 180.0 and (math.isnan(vfov_deg) or 0.0 < vfov_deg < 180.0)):
        raise FrameValueError(f"pose field of view {hfov_deg:g} x {vfov_deg:g} deg not in (0, 180)")


def decode_payload(header: FrameHeader, payload: bytes | bytearray) -> np.ndarray:
    """The image, in a new array: float32 Kelvin, uint8 mono or uint8 BGR; checks the CRC."""
    if len(payload) != header.payload_len:
        raise FrameStreamError(f"payload truncated: {len(payload)} of {header.payload_len} bytes")
    if zlib.crc32(payload) != header.payload_crc:
        raise FrameStreamError("payload CRC mismatch")
    shape: tuple[int, ...] = (header.height, header.width)
    if header.pixel_format == FORMAT_CENTIKELVIN:
        counts = np.frombuffer(payload, dtype="<u2").reshape(shape)
        return np.multiply(counts, np.float32(0.01), dtype=np.float32)  # one pass, no temporary
    if header.pixel_format == FORMAT_BGR8:
        shape = (*shape, 3)
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape).copy()
