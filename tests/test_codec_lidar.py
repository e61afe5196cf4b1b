"""Lidar framing (drivers/LIDAR_PROTOCOL.md): round trips, CRC, resynchronisation, fuzzing."""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import codec_lidar as cl


def _profile(encoding: int = cl.ENCODING_F32, n: int = 5) -> cl.ProfileMessage:
    return cl.ProfileMessage(
        seq=7,
        t=1_700_000_000.25,
        azimuth_deg=123.5,
        elevation_deg=-1.25,
        first_bin_m=30.0,
        bin_m=7.5,
        shots=100,
        bins=np.arange(n, dtype=np.float32) * 10.0,
        encoding=encoding,
    )


def test_crc_matches_the_ccitt_false_check_value() -> None:
    assert cl.crc16_ccitt(b"123456789") == 0x29B1


def test_scan_command_bytes_match_the_protocol_document_example() -> None:
    frame = cl.encode(cl.ScanCommand(seq=1, azimuth_deg=90.0, elevation_deg=0.5, shots=100))
    assert frame == bytes.fromhex("AA55 01 0C00 0100 0000B442 0000003F 6400 C1D2")
    assert cl.decode(frame) == cl.ScanCommand(1, 90.0, 0.5, 100)


@pytest.mark.parametrize("encoding", [cl.ENCODING_U16, cl.ENCODING_F32])
def test_profile_round_trips_in_both_bin_encodings(encoding: int) -> None:
    message = _profile(encoding)
    decoded = cl.decode(cl.encode(message))
    assert isinstance(decoded, cl.ProfileMessage)
    assert (decoded.seq, decoded.t, decoded.shots, decoded.encoding) == (
        7,
        message.t,
        100,
        encoding,
    )
    assert decoded.azimuth_deg == pytest.approx(123.5)
    assert decoded.bins.dtype == np.float32
    np.testing.assert_array_equal(decoded.bins, message.bins)


def test_u16_bins_saturate_instead_of_wrapping() -> None:
    message = cl.ProfileMessage(1, 0.0, 0.0, 0.0, 0.0, 1.0, 1, np.array([-5.0, 70000.0]), 0)
    decoded = cl.decode(cl.encode(message))
    assert isinstance(decoded, cl.ProfileMessage)
    assert decoded.bins.tolist() == [0.0, 65535.0]


@pytest.mark.parametrize(
    "message",
    [
        cl.StatusRequest(),
        cl.Status(t=1.5, state=cl.STATE_FAULT, laser_temp_c=41.0, fault_code=3),
        cl.Ack(seq=65535, acked_type=cl.TYPE_SCAN),
        cl.ErrorMessage(seq=2, code=cl.ERROR_BUSY, text="laser busy"),
    ],
)
def test_small_messages_round_trip(message: cl.LidarMessage) -> None:
    assert cl.decode(cl.encode(message)) == message


def test_invalid_values_raise_the_codec_error() -> None:
    with pytest.raises(cl.LidarFrameError):
        cl.encode(cl.ScanCommand(1, 0.0, 95.0, 10))
    with pytest.raises(cl.LidarFrameError):
        cl.encode(cl.ScanCommand(1, 0.0, 0.0, 0))
    with pytest.raises(cl.LidarFrameError):
        cl.encode(cl.ProfileMessage(1, 0.0, 0.0, 0.0, 0.0, 1.0, 1, np.zeros(20000), 1))
    with pytest.raises(cl.LidarFrameError, match="CRC"):
        cl.decode(cl.encode(cl.StatusRequest())[:-1] + b"\x00")


def test_decoder_counts_garbage_crc_and_length_errors_and_resynchronises() -> None:
    good = cl.encode(_profile())
    bad_crc = bytearray(good)
    bad_crc[10] ^= 0xFF
    too_long = cl.SYNC + bytes((cl.TYPE_PROFILE,)) + (60000).to_bytes(2, "little")
    decoder = cl.LidarDecoder()
    messages = decoder.feed(b"noise" + bytes(bad_crc) + too_long + good)
    assert len(messages) == 1 and isinstance(messages[0], cl.ProfileMessage)
    assert (decoder.crc_errors, decoder.length_errors, decoder.frames) == (1, 1, 1)
    assert decoder.garbage_bytes >= 5


def test_truncated_frame_does_not_hide_the_next_one() -> None:
    good = cl.encode(_profile(n=50))
    decoder = cl.LidarDecoder()
    messages = decoder.feed(good[:40] + good)
    assert [type(m) for m in messages] == [cl.ProfileMessage]
    assert decoder.crc_errors == 1


def test_frame_with_good_crc_but_inconsistent_payload_is_counted_malformed() -> None:
    payload = cl.encode(_profile(n=4))[cl.HEADER_LEN : -cl.CRC_LEN] + b"\x00"  # one stray byte
    body = bytes((cl.TYPE_PROFILE,)) + len(payload).to_bytes(2, "little") + payload
    frame = cl.SYNC + body + cl.crc16_ccitt(body).to_bytes(2, "little")
    decoder = cl.LidarDecoder()
    assert decoder.feed(frame + cl.encode(cl.StatusRequest())) == [cl.StatusRequest()]
    assert decoder.malformed == 1


def test_split_sync_across_reads_is_kept() -> None:
    good = cl.encode(cl.Ack(3, cl.TYPE_SCAN))
    decoder = cl.LidarDecoder()
    assert decoder.feed(b"xx" + good[:1]) == []
    assert decoder.feed(good[1:]) == [cl.Ack(3, cl.TYPE_SCAN)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_decode_raises_only_its_own_error(data: bytes) -> None:
    with contextlib.suppress(cl.LidarFrameError):
        cl.decode(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFF), st.binary(max_size=60))
def test_decode_payload_with_any_type_raises_only_its_own_error(
    msg_type: int, payload: bytes
) -> None:
    with contextlib.suppress(cl.LidarFrameError):
        cl.decode_payload(msg_type, payload)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_decoder_never_raises_and_recovers_after_any_bytes(chunks: list[bytes]) -> None:
    decoder = cl.LidarDecoder(max_payload=64)
    for chunk in chunks:
        decoder.feed(chunk)
    # A partial frame may still hold the decoder; enough filler pushes it through its CRC check.
    decoder.feed(b"\x00" * 80)
    ack = cl.Ack(9, cl.TYPE_SCAN)
    assert ack in decoder.feed(cl.encode(ack))


def test_truncated_long_frame_does_not_delay_a_short_one_behind_it() -> None:
    decoder = cl.LidarDecoder()
    ack = cl.Ack(4, cl.TYPE_SCAN)
    assert decoder.feed(cl.encode(_profile(n=200))[:30] + cl.encode(ack)) == [ack]
    assert decoder.crc_errors == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"bin_m": 0.0}, "bins must start"),
        ({"bin_m": -7.5}, "bins must start"),
        ({"first_bin_m": -1.0}, "bins must start"),
        ({"t": float("nan")}, "non-finite"),
        ({"bins": np.array([1.0, np.nan], dtype=np.float32)}, "NaN or infinite bins"),
    ],
)
def test_a_profile_no_lidar_can_measure_is_refused_by_the_decoder(
    change: dict[str, object], reason: str
) -> None:
    frame = cl.encode(dataclasses.replace(_profile(), **change))  # type: ignore[arg-type]
    with pytest.raises(cl.LidarFrameError, match=reason):
        cl.decode(frame)
