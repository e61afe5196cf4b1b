"""Pelco-D framing: known frames, value encodings, stream resynchronisation, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import codec_pelco_d as pd


def test_pan_reply_from_reference_decodes_to_180_degrees() -> None:
    # docs/hardware/pelco-d.md: a pan query answered FF 01 00 59 46 50 F0 = 180.00°.
    frame = pd.decode_frame(bytes.fromhex("FF 01 00 59 46 50 F0"))
    assert (frame.address, frame.cmd2) == (1, pd.REPLY_PAN)
    assert pd.decode_pan(frame.value) == 180.0
    assert pd.reply(1, pd.REPLY_PAN, 18000).encode() == bytes.fromhex("FF01005946 50F0")


@pytest.mark.parametrize(
    ("frame", "expected_hex"),
    [
        (pd.stop(1), "FF 01 00 00 00 00 01"),
        (pd.preset(1, pd.PRESET_GO, 1), "FF 01 00 07 00 01 09"),
        (pd.preset(2, pd.PRESET_SET, 3), "FF 02 00 03 00 03 08"),
        (pd.query(1, pd.QUERY_PAN), "FF 01 00 51 00 00 52"),
        (pd.query(1, pd.QUERY_TILT), "FF 01 00 53 00 00 54"),
        (pd.set_pan(1, 90.0), "FF 01 00 4B 23 28 97"),
    ],
)
def test_commands_encode_to_manual_frames(frame: pd.PelcoFrame, expected_hex: str) -> None:
    assert frame.encode() == bytes.fromhex(expected_hex)


def test_move_sets_direction_bits_and_speeds() -> None:
    right_up = pd.move(1, 0.5, 0.25)
    assert right_up.cmd2 == pd.RIGHT | pd.UP
    assert (right_up.data1, right_up.data2) == (32, 16)
    left_down_tele = pd.move(1, -1.0, -1.0, zoom=1)
    assert left_down_tele.cmd2 == pd.LEFT | pd.DOWN | pd.ZOOM_TELE
    assert left_down_tele.data1 == pd.PAN_TURBO
    assert pd.speed_fraction(pd.PAN_TURBO) == 1.0
    assert pd.move(1, 0.0, 0.0, zoom=-1) == pd.PelcoFrame(1, 0, pd.ZOOM_WIDE, 0, 0)


@pytest.mark.parametrize(
    ("tilt_deg", "value"), [(0.0, 0), (45.5, 4550), (90.0, 9000), (-15.0, 34500), (-0.01, 35999)]
)
def test_tilt_encoding_puts_negative_angles_below_36000(tilt_deg: float, value: int) -> None:
    assert pd.encode_tilt(tilt_deg) == value
    assert pd.decode_tilt(value) == pytest.approx(tilt_deg)


def test_pan_wraps_into_one_turn() -> None:
    assert pd.encode_pan(360.0) == 0
    assert pd.encode_pan(-1.0) == 35900
    assert pd.encode_pan(359.996) == 0


def test_out_of_range_values_raise_the_codec_error() -> None:
    with pytest.raises(pd.PelcoDError):
        pd.encode_tilt(91.0)
    with pytest.raises(pd.PelcoDError):
        pd.decode_pan(36000)
    with pytest.raises(pd.PelcoDError):
        pd.preset(1, pd.PRESET_GO, 0)
    with pytest.raises(pd.PelcoDError):
        pd.PelcoFrame(256, 0, 0, 0, 0)
    with pytest.raises(pd.PelcoDError, match="checksum"):
        pd.decode_frame(bytes.fromhex("FF 01 00 59 46 50 F1"))


def test_decoder_skips_garbage_and_bad_checksums_and_resynchronises() -> None:
    good = pd.reply(1, pd.REPLY_TILT, 34500).encode()
    corrupt = bytearray(good)
    corrupt[6] ^= 0x55
    decoder = pd.PelcoDDecoder()
    frames = decoder.feed(b"\x00\x13garbage" + bytes(corrupt) + good)
    assert frames == [pd.decode_frame(good)]
    assert decoder.crc_errors >= 1
    assert decoder.garbage_bytes >= 9
    assert decoder.pending_bytes == 0


def test_decoder_joins_a_frame_split_across_reads() -> None:
    good = pd.set_tilt(3, -2.5).encode()
    decoder = pd.PelcoDDecoder()
    assert decoder.feed(good[:3]) == []
    assert decoder.feed(good[3:]) == [pd.PelcoFrame(3, 0, pd.SET_TILT, 0x8B, 0xA6)]  # 35750


def test_truncated_frame_followed_by_a_good_one_still_yields_the_good_one() -> None:
    good = pd.query(1, pd.QUERY_ZOOM).encode()
    decoder = pd.PelcoDDecoder()
    assert decoder.feed(good[:4] + good) == [pd.decode_frame(good)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_decode_frame_raises_only_its_own_error(data: bytes) -> None:
    try:
        frame = pd.decode_frame(data)
    except pd.PelcoDError:
        return
    assert frame.encode() == data


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=20), max_size=10), st.integers(1, 255), st.integers(0, 35999))
def test_decoder_never_raises_and_finds_a_frame_after_any_garbage(
    chunks: list[bytes], address: int, value: int
) -> None:
    decoder = pd.PelcoDDecoder()
    for chunk in chunks:
        decoder.feed(chunk)
    # Flush whatever partial candidate the garbage left behind, then a clean frame must come through.
    good = pd.reply(address, pd.REPLY_PAN, value)
    decoder.feed(b"\x00" * 7)
    assert good in decoder.feed(good.encode())
