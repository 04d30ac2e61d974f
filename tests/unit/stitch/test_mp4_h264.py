"""``stitch.mp4.h264`` on hand-built H.264 samples: what ffmpeg's concat writes for them, derived by hand
from ``h264_mp4toannexb`` (parameter sets from the avcC put in at IDR pictures and buffering period
SEIs; empty units dropped; 3-byte start codes after the first unit) and the MP4 muxer's start-code
search (4-byte lengths; a unit's trailing zero taken for the first byte of a 4-byte start code)."""

from __future__ import annotations

import pytest

from framefarm.stitch.mp4.boxes import Mp4Error
from framefarm.stitch.mp4.h264 import AvcConfig, avc_config, sample_pieces

# NAL units: the header byte's low 5 bits are the type; a slice's next bit is first_mb_in_slice == 0.
SPS = bytes.fromhex("6764000aacd9")
PPS = bytes.fromhex("68ebe3cb")
SPS_IN_BAND = bytes.fromhex("6764000bacd9")
PPS_IN_BAND = bytes.fromhex("68ebe3cc")
IDR = bytes.fromhex("6588840021")  # the first slice of an IDR picture
IDR_NEXT = bytes.fromhex("6520400021")  # a later slice of it (first_mb_in_slice > 0)
SLICE = bytes.fromhex("419a0210")  # a non-IDR slice
SEI = bytes.fromhex("06050280")  # user data (payload type 5)
BUFFERING = bytes.fromhex("0600018080")  # a buffering period SEI (payload type 0)
AUD = bytes.fromhex("0910")

CONFIG = AvcConfig(length_size=4, sps=(SPS,), pps=(PPS,))


def units(*nals: bytes, length_size: int = 4) -> bytes:
    """NAL units as an MP4 sample carries them: each after its length."""
    return b"".join(len(nal).to_bytes(length_size, "big") + nal for nal in nals)


def joined(samples: list[bytes], config: AvcConfig = CONFIG) -> tuple[list[bytes], set[int]]:
    """What the join writes for one input's ``samples`` (laid out one after another after 100 bytes of
    something else), and which samples it writes otherwise than they are."""
    data = bytes(100) + b"".join(samples)
    offsets = [100 + sum(len(sample) for sample in samples[:index]) for index in range(len(samples))]
    sizes = [len(sample) for sample in samples]
    changed = sample_pieces(data, config, offsets, sizes)
    written = []
    for index, (offset, size) in enumerate(zip(offsets, sizes, strict=True)):
        pieces = changed.get(index, [(offset, size)])
        written.append(b"".join(piece if isinstance(piece, bytes) else data[piece[0]:sum(piece)] for piece in pieces))
    return written, set(changed)


def test_an_idr_picture_gets_the_avcc_parameter_sets_before_its_first_slice():
    # GIVEN an IDR picture of two slices behind an SEI, then a picture of a non-IDR slice
    samples = [units(SEI, IDR, IDR_NEXT), units(SLICE)]
    # WHEN joined
    written, changed = joined(samples)
    # THEN the SPS and PPS go before the first IDR slice only; the other picture is copied as it is
    assert written == [units(SEI, SPS, PPS, IDR, IDR_NEXT), units(SLICE)]
    assert changed == {0}


def test_every_idr_picture_of_an_all_intra_stream_gets_them():
    # GIVEN IDR pictures one after the other (the last of two slices), no other slice between them
    samples = [units(IDR), units(IDR), units(IDR, IDR_NEXT)]
    # WHEN joined, THEN each picture's first slice (first_mb_in_slice 0) gets the parameter sets
    assert joined(samples)[0] == [units(SPS, PPS, IDR), units(SPS, PPS, IDR), units(SPS, PPS, IDR, IDR_NEXT)]


def test_a_buffering_period_sei_gets_them_before_it():
    # GIVEN IDR pictures behind a buffering period SEI (x264's nal-hrd), with a non-IDR picture between
    samples = [units(SEI, BUFFERING, IDR), units(SLICE), units(BUFFERING, IDR)]
    # WHEN joined
    written, _ = joined(samples)
    # THEN the parameter sets go before the buffering period SEI, and not again before the slice
    assert written == [units(SEI, SPS, PPS, BUFFERING, IDR), units(SLICE), units(SPS, PPS, BUFFERING, IDR)]


def test_a_buffering_period_sei_of_an_all_intra_stream_gets_them_only_until_a_non_idr_slice():
    # GIVEN IDR pictures behind buffering period SEIs, one after the other: the filter's "seen" flags
    # are only cleared by a non-IDR slice
    samples = [units(BUFFERING, IDR), units(BUFFERING, IDR), units(SLICE), units(BUFFERING, IDR)]
    # WHEN joined, THEN the second IDR picture gets no parameter sets; the one after the slice does
    assert joined(samples)[0] == [units(SPS, PPS, BUFFERING, IDR), units(BUFFERING, IDR), units(SLICE),
                                  units(SPS, PPS, BUFFERING, IDR)]


def test_parameter_sets_in_band_are_left_alone_and_used_for_later_idr_pictures():
    # GIVEN an IDR picture carrying its own SPS and PPS (other than the avcC's), a non-IDR picture, and an
    # IDR picture without them
    samples = [units(SPS_IN_BAND, PPS_IN_BAND, IDR), units(SLICE), units(IDR)]
    # WHEN joined
    written, changed = joined(samples)
    # THEN the first is copied as it is, and the last gets the in-band sets, the latest seen
    assert written == [samples[0], samples[1], units(SPS_IN_BAND, PPS_IN_BAND, IDR)]
    assert changed == {2}


@pytest.mark.parametrize(("sample", "expected"), [
    (units(PPS_IN_BAND, IDR), units(SPS, PPS_IN_BAND, IDR)),
    (units(SPS_IN_BAND, IDR), units(SPS_IN_BAND, PPS, IDR)),
], ids=["a PPS without an SPS gets the avcC's SPS", "an SPS without a PPS: the avcC's PPS before the slice"])
def test_a_missing_parameter_set_comes_from_the_avcc(sample, expected):
    # GIVEN an IDR picture carrying only one of its parameter sets, WHEN joined, THEN the avcC's other is added
    assert joined([sample])[0] == [expected]


def test_empty_units_are_dropped():
    # GIVEN a picture with an empty unit before its slice, WHEN joined, THEN the empty unit is gone
    written, changed = joined([units(b"", SLICE), units(AUD, SLICE)])
    assert written == [units(SLICE), units(AUD, SLICE)]
    assert changed == {0}


@pytest.mark.parametrize(("sample", "expected"), [
    (units(SEI + b"\0", SLICE), units(SEI, SLICE)),
    (units(SLICE + b"\0"), units(SLICE + b"\0")),
    (units(SEI + b"\0", IDR), units(SEI + b"\0", SPS, PPS, IDR)),
    (units(SPS_IN_BAND + b"\0", PPS_IN_BAND, IDR), units(SPS_IN_BAND + b"\0", PPS_IN_BAND, IDR)),
    (units(AUD, SEI + b"\0\0", SLICE), units(AUD, SEI + b"\0", SLICE)),
], ids=["before a 3-byte start code: dropped", "the last unit: kept", "before an inserted SPS: kept",
        "before an in-band PPS (4-byte start code): kept", "two zeros: one dropped"])
def test_a_units_trailing_zero_is_dropped_only_before_a_3_byte_start_code(sample, expected):
    # GIVEN a picture with a unit ending in a zero byte, WHEN joined, THEN the zero goes where the muxer
    # takes it for the first byte of a 4-byte start code
    written, _ = joined([units(SLICE), sample])
    assert written[1] == expected


def test_an_avcc_parameter_set_ending_in_zero_loses_it_before_the_slice():
    # GIVEN an avcC whose PPS ends in a zero byte, WHEN an IDR picture is joined, THEN the PPS is written
    # without it (the slice after it has a 3-byte start code)
    config = AvcConfig(length_size=4, sps=(SPS,), pps=(PPS + b"\0",))
    assert joined([units(IDR)], config)[0] == [units(SPS, PPS, IDR)]


@pytest.mark.parametrize("length_size", [1, 2, 3])
def test_shorter_lengths_are_written_as_4_bytes(length_size):
    # GIVEN samples whose units' lengths take `length_size` bytes
    config = AvcConfig(length_size=length_size, sps=(SPS,), pps=(PPS,))
    samples = [units(SEI, IDR, length_size=length_size), units(SLICE, length_size=length_size)]
    # WHEN joined, THEN every sample is written with 4-byte lengths (as the MP4 muxer writes them)
    written, changed = joined(samples, config)
    assert written == [units(SEI, SPS, PPS, IDR), units(SLICE)]
    assert changed == {0, 1}


@pytest.mark.parametrize("sample", [units(SLICE)[:-1], units(SLICE) + b"\0\0"],
                         ids=["a unit longer than its sample", "a length cut short"])
def test_a_sample_whose_units_do_not_fit_it_is_an_error(sample):
    # GIVEN a sample whose last unit runs past it, WHEN joined, THEN Mp4Error says so
    with pytest.raises(Mp4Error, match="runs past its sample"):
        joined([sample])


def test_the_avcc_is_read_from_the_sample_description():
    # GIVEN an avc1 sample description whose avcC holds two SPS and one PPS, 2-byte lengths
    avcc = bytes([1, 0x64, 0, 0x0A, 0xFD, 0xE2]) + b"".join(len(u).to_bytes(2, "big") + u for u in (SPS, SPS_IN_BAND))
    avcc += bytes([1]) + len(PPS).to_bytes(2, "big") + PPS
    avcc_box = (8 + len(avcc)).to_bytes(4, "big") + b"avcC" + avcc
    entry = b"avc1" + bytes(78) + avcc_box
    stsd = (16 + 4 + len(entry)).to_bytes(4, "big") + b"stsd" + bytes(4) + (1).to_bytes(4, "big")
    stsd += (4 + len(entry)).to_bytes(4, "big") + entry
    # WHEN read, THEN its length size and parameter sets are those
    assert avc_config(stsd) == AvcConfig(length_size=2, sps=(SPS, SPS_IN_BAND), pps=(PPS,))
