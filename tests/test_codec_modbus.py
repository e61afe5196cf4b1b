"""Modbus RTU framing for relay boards: known frames, CRC, exceptions, stream decoding, fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import codec_modbus as mb
from drivers.codec_modbus import Side


def test_crc_matches_the_modbus_check_value() -> None:
    assert mb.crc16_modbus(b"123456789") == 0x4B37


def test_write_single_coil_matches_the_textbook_frames() -> None:
    # Modbus over serial line v1.02 examples: coil 0 of unit 1 on/off.
    assert mb.write_single_coil(1, 0, True) == bytes.fromhex("01 05 00 00 FF 00 8C 3A")
    assert mb.write_single_coil(1, 0, False) == bytes.fromhex("01 05 00 00 00 00 CD CA")


def test_read_coils_request_and_response() -> None:
    assert mb.read_coils(1, 0, 1) == bytes.fromhex("01 01 00 00 00 01 FD CA")
    request = mb.decode_frame(Side.REQUEST, mb.read_coils(17, 19, 10))
    assert request == mb.ReadCoilsRequest(17, 19, 10)
    response = mb.decode_frame(Side.RESPONSE, mb.read_coils_response(1, [True, False, True]))
    assert isinstance(response, mb.ReadCoilsResponse)
    assert response.coils[:3] == (True, False, True)
    assert response.coils[3:] == (False,) * 5


def test_exception_response_round_trips_with_its_meaning() -> None:
    raw = mb.exception_response(1, mb.WRITE_SINGLE_COIL, mb.ILLEGAL_DATA_ADDRESS)
    assert raw[:3] == bytes.fromhex("01 85 02")
    frame = mb.decode_frame(Side.RESPONSE, raw)
    assert frame == mb.ExceptionResponse(1, mb.WRITE_SINGLE_COIL, mb.ILLEGAL_DATA_ADDRESS)
    assert isinstance(frame, mb.ExceptionResponse)
    assert frame.description == "illegal data address"


def test_write_echo_decodes_on_both_sides() -> None:
    raw = mb.write_single_coil(5, 300, True)
    for side in Side:
        frame = mb.decode_frame(side, raw)
        assert frame == mb.WriteSingleCoil(5, 300, mb.COIL_ON)
        assert isinstance(frame, mb.WriteSingleCoil) and frame.on


def test_invalid_frames_and_values_raise_the_codec_error() -> None:
    with pytest.raises(mb.ModbusError, match="CRC"):
        mb.decode_frame(Side.RESPONSE, bytes.fromhex("01 05 00 00 FF 00 8C 3B"))
    with pytest.raises(mb.ModbusError):
        mb.decode_frame(Side.REQUEST, mb.exception_response(1, 5, 2))  # servers never get these
    with pytest.raises(mb.ModbusError):
        mb.write_single_coil(0, 0, True)  # broadcast cannot be read back
    with pytest.raises(mb.ModbusError):
        mb.read_coils(1, 0, 2001)


def test_decoder_resynchronises_after_garbage_and_bad_crc() -> None:
    good = mb.write_single_coil(1, 3, True)
    bad = bytearray(good)
    bad[4] ^= 0x01
    decoder = mb.ModbusRtuDecoder(Side.RESPONSE)
    frames = decoder.feed(b"\x00\xff\x07" + bytes(bad) + good)
    assert frames == [mb.WriteSingleCoil(1, 3, mb.COIL_ON)]
    assert decoder.crc_errors >= 1
    assert decoder.garbage_bytes >= 3


def test_decoder_waits_for_a_split_response() -> None:
    raw = mb.read_coils_response(2, [False] * 9 + [True])
    decoder = mb.ModbusRtuDecoder(Side.RESPONSE)
    assert decoder.feed(raw[:2]) == []
    assert decoder.feed(raw[2:4]) == []
    frames = decoder.feed(raw[4:])
    assert len(frames) == 1
    assert isinstance(frames[0], mb.ReadCoilsResponse) and frames[0].coils[9]


def test_silence_ends_a_stray_partial_frame_and_reveals_the_corrupt_answer_behind_it() -> None:
    # A stray 0x37 reads as unit 55 asking for a 10-byte coil answer; the board's corrupt
    # 8-byte echo behind it can never complete that frame, only silence settles it.
    corrupt = bytearray(mb.write_single_coil(1, 3, True))
    corrupt[-1] ^= 0x01
    decoder = mb.ModbusRtuDecoder(Side.RESPONSE)
    assert decoder.feed(b"\x37" + bytes(corrupt)) == []
    assert decoder.crc_errors == 0
    assert decoder.flush() == []
    assert decoder.crc_errors == 1
    assert decoder.pending_bytes == 0


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(Side)), st.binary(max_size=40))
def test_decode_frame_raises_only_its_own_error(side: Side, data: bytes) -> None:
    with contextlib.suppress(mb.ModbusError):
        mb.decode_frame(side, data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(Side)), st.lists(st.binary(max_size=30), max_size=8))
def test_decoder_never_raises_and_recovers(side: Side, chunks: list[bytes]) -> None:
    decoder = mb.ModbusRtuDecoder(side)
    for chunk in chunks:
        decoder.feed(chunk)
    decoder.flush()
    assert decoder.feed(mb.write_single_coil(9, 1, False)) == [mb.WriteSingleCoil(9, 1, 0)]


def test_truncated_response_does_not_delay_the_next_complete_one() -> None:
    decoder = mb.ModbusRtuDecoder(Side.RESPONSE)
    good = mb.write_single_coil(1, 3, True)
    assert decoder.feed(mb.read_coils_response(1, [True] * 16)[:4] + good) == [
        mb.WriteSingleCoil(1, 3, mb.COIL_ON)
    ]
