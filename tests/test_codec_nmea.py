"""NMEA 0183 GGA/RMC: checksums required, any talker, fixes only when both sentences agree."""

from __future__ import annotations

import calendar
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import codec_nmea as nm

# The classic reference sentences (NMEA 0183 examples, Munich 1994).
GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
RMC = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"
# A receiver without a fix: empty position, quality 0, status V.
GGA_NO_FIX = nm.sentence("GNGGA,123520.00,,,,,0,00,99.99,,,,,,")
RMC_NO_FIX = nm.sentence("GNRMC,123520.00,V,,,,,,,230394,,,N")


def test_reference_gga_parses() -> None:
    gga = nm.parse_sentence(GGA)
    assert isinstance(gga, nm.Gga)
    assert gga.talker == "GP"
    assert gga.lat == pytest.approx(48.1173)
    assert gga.lon == pytest.approx(11.516667, abs=1e-6)
    assert (gga.quality, gga.satellites, gga.hdop, gga.alt_m) == (1, 8, 0.9, 545.4)
    assert gga.time_of_day_s == 12 * 3600 + 35 * 60 + 19


def test_reference_rmc_parses_with_date() -> None:
    rmc = nm.parse_sentence(RMC)
    assert isinstance(rmc, nm.Rmc)
    assert rmc.valid and rmc.date_ymd == (1994, 3, 23)
    assert rmc.t == calendar.timegm((1994, 3, 23, 12, 35, 19))


@pytest.mark.parametrize("talker", ["GP", "GN", "BD", "GB", "GL", "GA"])
def test_any_talker_is_accepted(talker: str) -> None:
    body = f"{talker}GGA,010203.50,5130.0000,S,00030.0000,W,2,12,0.7,12.0,M,0.0,M,,"
    gga = nm.parse_sentence(nm.sentence(body))
    assert isinstance(gga, nm.Gga)
    assert (gga.talker, gga.lat, gga.lon) == (talker, -51.5, -0.5)
    assert gga.time_of_day_s == pytest.approx(3723.5)


def test_checksum_is_required_and_checked() -> None:
    with pytest.raises(nm.NmeaChecksumError):
        nm.parse_sentence(GGA.replace(b"*47", b""))
    with pytest.raises(nm.NmeaChecksumError):
        nm.parse_sentence(GGA.replace(b"*47", b"*48"))
    assert nm.parse_sentence(RMC.replace(b"*6A", b"*6a")) is not None  # hex case is free


@pytest.mark.parametrize(
    "body",
    [
        "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,abc,M,46.9,M,,",  # altitude
        "GPGGA,123519,4867.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",  # minutes ≥ 60
        "GPGGA,123519,4807.038,X,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",  # hemisphere
        "GPGGA,123519,4807.038,N",  # too few fields
        "GPRMC,123519,Q,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W",  # status
        "GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,310294,003.1,W",  # 31 Feb
        "GPRMC,256019,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W",  # hour 25
    ],
)
def test_malformed_fields_raise_the_codec_error(body: str) -> None:
    with pytest.raises(nm.NmeaError):
        nm.parse_sentence(nm.sentence(body))


def test_other_sentence_types_are_valid_but_ignored() -> None:
    assert nm.parse_sentence(nm.sentence("GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1")) is None


def test_fix_needs_gga_and_rmc_of_the_same_epoch_in_either_order() -> None:
    assembler = nm.FixAssembler()
    gga, rmc = nm.parse_sentence(GGA), nm.parse_sentence(RMC)
    assert gga is not None and rmc is not None
    assert assembler.update(rmc) is None
    fix = assembler.update(gga)
    assert fix is not None
    assert fix.t == calendar.timegm((1994, 3, 23, 12, 35, 19))
    assert (fix.lat, fix.fix_quality, fix.satellites, fix.alt_m) == (
        pytest.approx(48.1173),
        1,
        8,
        545.4,
    )
    assert assembler.update(gga) is None  # one fix per epoch


def test_no_fix_sentences_never_produce_a_position() -> None:
    assembler = nm.FixAssembler()
    for raw in (GGA_NO_FIX, RMC_NO_FIX):
        item = nm.parse_sentence(raw)
        assert item is not None
        assert assembler.update(item) is None


def test_status_v_with_a_stale_position_is_not_a_fix() -> None:
    rmc_void = nm.parse_sentence(RMC.replace(b",A,", b",V,").replace(b"*6A", b"*7D"))
    gga = nm.parse_sentence(GGA)
    assert isinstance(rmc_void, nm.Rmc) and not rmc_void.valid
    assert gga is not None
    assembler = nm.FixAssembler()
    assembler.update(rmc_void)
    assert assembler.update(gga) is None


def test_zero_zero_is_never_a_fix_even_with_quality_and_status_a() -> None:
    gga = nm.parse_sentence(nm.sentence("GNGGA,000001,0000.000,N,00000.000,E,1,05,1.0,0.0,M,,M,,"))
    rmc = nm.parse_sentence(nm.sentence("GNRMC,000001,A,0000.000,N,00000.000,E,0,0,010124,,,A"))
    assert gga is not None and rmc is not None
    assembler = nm.FixAssembler()
    assembler.update(gga)
    assert assembler.update(rmc) is None


def test_rmc_mode_n_overrides_status_a() -> None:
    rmc = nm.parse_sentence(nm.sentence("GNRMC,000001,A,4807.038,N,01131.000,E,0,0,010124,,,N"))
    assert isinstance(rmc, nm.Rmc) and not rmc.valid


def test_decoder_counts_checksum_errors_truncation_and_garbage() -> None:
    decoder = nm.NmeaDecoder()
    stream = (
        b"\x00\xffjunk"
        + GGA.replace(b"*47", b"*00")
        + GGA[:30]  # cut short by the next sentence
        + RMC
        + nm.sentence("GPGSV,1,1,00")
    )
    out = decoder.feed(stream[:17]) + decoder.feed(stream[17:])
    assert [type(s) for s in out] == [nm.Rmc]
    assert (decoder.crc_errors, decoder.malformed, decoder.other) == (1, 1, 1)
    assert decoder.garbage_bytes == 6


def test_decoder_drops_an_endless_line() -> None:
    decoder = nm.NmeaDecoder()
    decoder.feed(b"$" + b"A" * 300)
    assert decoder.malformed == 1
    assert decoder.feed(b"\r\n" + GGA) != []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100))
def test_parse_sentence_raises_only_its_own_error(data: bytes) -> None:
    with contextlib.suppress(nm.NmeaError):
        nm.parse_sentence(data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["GGA", "RMC"]).flatmap(
            lambda kind: st.lists(
                st.text(alphabet="0123456789.,NSEWAV-", max_size=12), min_size=1, max_size=14
            ).map(lambda fields: f"GN{kind}," + ",".join(fields))
        ),
        max_size=5,
    )
)
def test_checksummed_nonsense_fields_raise_only_the_codec_error(bodies: list[str]) -> None:
    # Valid checksums get the fuzz past framing and into the field parsers.
    decoder = nm.NmeaDecoder()
    assembler = nm.FixAssembler()
    for body in bodies:
        try:
            parsed = nm.parse_sentence(nm.sentence(body))
        except nm.NmeaError:
            continue
        if parsed is not None:
            fix = assembler.update(parsed)
            assert fix is None or (fix.fix_quality > 0 and (fix.lat, fix.lon) != (0.0, 0.0))
    decoder.feed("".join(f"${b}\r\n" for b in bodies).encode())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=50), max_size=8))
def test_decoder_never_raises_and_recovers(chunks: list[bytes]) -> None:
    decoder = nm.NmeaDecoder()
    for chunk in chunks:
        decoder.feed(chunk)
    out = decoder.feed(b"\r\n" + GGA)
    assert out and out[-1] == nm.parse_sentence(GGA)
