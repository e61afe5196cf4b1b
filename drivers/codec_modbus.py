"""Modbus RTU framing for relay boards: read coils (0x01), write single coil (0x05), exceptions.

An RTU frame is ``unit function data… crc_lo crc_hi`` with CRC-16/Modbus (reflected
poly 0xA001, init 0xFFFF, low byte first). Real RTU delimits frames by 3.5 characters of
silence, which a pty or a USB adapter does not preserve, so the stream decoder infers
each frame's length from its function code and checks the CRC, sliding one byte at a
time after garbage. Requests and responses have different shapes for the same function,
so a decoder is built for one side of the line.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

READ_COILS = 0x01
WRITE_SINGLE_COIL = 0x05
EXCEPTION_FLAG = 0x80

COIL_ON = 0xFF00
COIL_OFF = 0x0000

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
SERVER_DEVICE_FAILURE = 0x04

EXCEPTION_NAMES = {
    ILLEGAL_FUNCTION: "illegal function",
    ILLEGAL_DATA_ADDRESS: "illegal data address",
    ILLEGAL_DATA_VALUE: "illegal data value",
    SERVER_DEVICE_FAILURE: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x0B: "gateway target device failed to respond",
}

MAX_READ_COILS = 2000  # Modbus application protocol v1.1b3 §6.1


class ModbusError(ValueError):
    """A Modbus RTU frame or value is invalid (length, CRC, function or range)."""


class Side(enum.Enum):
    """Which frames a decoder expects: requests (a server) or responses (a client)."""

    REQUEST = "request"
    RESPONSE = "response"


def crc16_modbus(data: bytes) -> int:
    """CRC-16/Modbus; b"123456789" → 0x4B37."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _with_crc(pdu: bytes) -> bytes:
    return pdu + crc16_modbus(pdu).to_bytes(2, "little")


@dataclass(frozen=True)
class WriteSingleCoil:
    """A 0x05 request, or its echo as the response. ``value`` is FF00 (on) or 0000 (off)
    on a correct frame; anything else is kept so a server can refuse it."""

    unit: int
    coil: int
    value: int

    @property
    def on(self) -> bool:
        return self.value == COIL_ON


@dataclass(frozen=True)
class ReadCoilsRequest:
    unit: int
    start: int
    count: int


@dataclass(frozen=True)
class ReadCoilsResponse:
    """Coil states packed LSB first; ``coils`` holds all ``8 × byte_count`` bits."""

    unit: int
    coils: tuple[bool, ...]


@dataclass(frozen=True)
class ExceptionResponse:
    unit: int
    function: int  # the request's function code (without the 0x80 flag)
    code: int

    @property
    def description(self) -> str:
        return EXCEPTION_NAMES.get(self.code, f"exception {self.code:#04x}")


ModbusFrame = WriteSingleCoil | ReadCoilsRequest | ReadCoilsResponse | ExceptionResponse


def _check(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ModbusError(f"Modbus {name} must be {low}…{high}, got {value}")


def write_single_coil(unit: int, coil: int, on: bool) -> bytes:
    """The 0x05 request (its normal response is the same 8 bytes echoed)."""
    _check("unit", unit, 1, 247)
    _check("coil", coil, 0, 0xFFFF)
    value = COIL_ON if on else COIL_OFF
    return _with_crc(
        bytes((unit, WRITE_SINGLE_COIL)) + coil.to_bytes(2, "big") + value.to_bytes(2, "big")
    )


def write_single_coil_echo(frame: WriteSingleCoil) -> bytes:
    return _with_crc(
        bytes((frame.unit, WRITE_SINGLE_COIL))
        + frame.coil.to_bytes(2, "big")
        + frame.value.to_bytes(2, "big")
    )


def read_coils(unit: int, start: int, count: int) -> bytes:
    _check("unit", unit, 1, 247)
    _check("start coil", start, 0, 0xFFFF)
    _check("coil count", count, 1, MAX_READ_COILS)
    return _with_crc(
        bytes((unit, READ_COILS)) + start.to_bytes(2, "big") + count.to_bytes(2, "big")
    )


def read_coils_response(unit: int, coils: list[bool] | tuple[bool, ...]) -> bytes:
    _check("unit", unit, 1, 247)
    _check("coil count", len(coils), 1, MAX_READ_COILS)
    packed = bytearray((len(coils) + 7) // 8)
    for i, state in enumerate(coils):
        if state:
            packed[i // 8] |= 1 << (i % 8)
    return _with_crc(bytes((unit, READ_COILS, len(packed))) + bytes(packed))


def exception_response(unit: int, function: int, code: int) -> bytes:
    _check("unit", unit, 1, 247)
    _check("function", function, 1, 0x7F)
    _check("exception code", code, 1, 0xFF)
    return _with_crc(bytes((unit, function | EXCEPTION_FLAG, code)))


def _frame_length(side: Side, buf: bytes | bytearray) -> int | None:
    """Total length of the frame starting at buf[0]; 0 if it cannot be a frame; None if
    more bytes are needed to tell."""
    if len(buf) < 2:
        return None
    function = buf[1]
    if function in (READ_COILS | EXCEPTION_FLAG, WRITE_SINGLE_COIL | EXCEPTION_FLAG):
        return 5 if side is Side.RESPONSE else 0
    if function == WRITE_SINGLE_COIL:
        return 8
    if function == READ_COILS:
        if side is Side.REQUEST:
            return 8
        if len(buf) < 3:
            return None
        byte_count = buf[2]
        return 5 + byte_count if byte_count > 0 else 0
    return 0


def _parse(side: Side, raw: bytes) -> ModbusFrame:
    unit, function = raw[0], raw[1]
    if function & EXCEPTION_FLAG:
        return ExceptionResponse(unit, function & 0x7F, raw[2])
    if function == WRITE_SINGLE_COIL:
        return WriteSingleCoil(
            unit, int.from_bytes(raw[2:4], "big"), int.from_bytes(raw[4:6], "big")
        )
    if side is Side.REQUEST:
        return ReadCoilsRequest(
            unit, int.from_bytes(raw[2:4], "big"), int.from_bytes(raw[4:6], "big")
        )
    bits = tuple(bool(byte >> bit & 1) for byte in raw[3:-2] for bit in range(8))
    return ReadCoilsResponse(unit, bits)


def decode_frame(side: Side, raw: bytes) -> ModbusFrame:
    """Exactly one frame → its value; raises ModbusError when it is not one."""
    length = _frame_length(side, raw)
    if not length:
        raise ModbusError(f"Modbus {side.value}: not a supported frame: {raw[:8].hex(' ')}")
    if len(raw) != length:
        raise ModbusError(f"Modbus {side.value} frame must be {length} bytes, got {len(raw)}")
    if crc16_modbus(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
        raise ModbusError(f"Modbus CRC mismatch in {raw.hex(' ')}")
    return _parse(side, raw)


class ModbusRtuDecoder:
    """Splits a byte stream into frames for one side of the line. ``feed`` never raises.

    A candidate whose function is unsupported, or whose CRC fails, loses its first byte
    and the search goes on from the next one (counted as ``garbage_bytes``; a CRC
    failure also as ``crc_errors``).
    """

    def __init__(self, side: Side) -> None:
        self.side = side
        self._buffer = bytearray()
        self.frames = 0
        self.crc_errors = 0
        self.garbage_bytes = 0

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def flush(self) -> list[ModbusFrame]:
        """The line fell silent: a partial frame will not complete.

        In RTU, silence ends a frame, so a candidate still waiting for bytes is garbage,
        and whatever follows it is examined as frames of its own: a corrupt answer that
        arrived behind a stray byte is counted as a CRC error. Returns the frames found;
        the buffer is empty afterwards (a client does this before each new request).
        """
        return self.feed(b"", line_silent=True)  # drops every byte it cannot frame

    def feed(self, data: bytes, line_silent: bool = False) -> list[ModbusFrame]:
        buf = self._buffer
        buf.extend(data)
        out: list[ModbusFrame] = []
        while buf:
            length = _frame_length(self.side, buf)
            if length == 0 or not 1 <= buf[0] <= 247:
                self.garbage_bytes += 1
                del buf[:1]
                continue
            if line_silent and (length is None or len(buf) < length):
                self.garbage_bytes += 1
                del buf[:1]
                continue
            if length is None or len(buf) < length:
                # An incomplete candidate may be garbage that merely looks like a frame
                # start; if a complete, CRC-valid frame already follows it, take that.
                later = self._complete_frame_after_start()
                if later is None:
                    break
                self.garbage_bytes += later
                del buf[:later]
                continue
            raw = bytes(buf[:length])
            if crc16_modbus(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
                self.crc_errors += 1
                self.garbage_bytes += 1
                del buf[:1]
                continue
            del buf[:length]
            out.append(_parse(self.side, raw))
            self.frames += 1
        return out

    def _complete_frame_after_start(self) -> int | None:
        """Offset of the first complete, CRC-valid frame after buf[0], if any."""
        buf = self._buffer
        for offset in range(1, len(buf) - 4):
            candidate = buf[offset:]
            length = _frame_length(self.side, candidate)
            if not length or len(candidate) < length or not 1 <= candidate[0] <= 247:
                continue
            raw = bytes(candidate[:length])
            if crc16_modbus(raw[:-2]) == int.from_bytes(raw[-2:], "little"):
                return offset
        return None
