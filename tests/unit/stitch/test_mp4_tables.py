"""The joined file's sample tables and headers, on synthetic lists: 64-bit chunk offsets past 4 GB,
version-1 headers past 32-bit durations, sample-to-chunk runs, sample dependencies."""

from __future__ import annotations

import struct

import pytest

from framefarm.stitch.mp4.boxes import children, full_box
from framefarm.stitch.mp4.join import _MOVIE_FIELDS, _TRACK_FIELDS, _with_duration
from framefarm.stitch.mp4.tables import (
    _disposable,
    _offsets,
    encode_chunk_offsets,
    encode_elst,
    encode_sdtp,
    encode_stsc,
)

FOUR_GB = 1 << 32


def parsed(encoded: bytes):
    (found,) = children(encoded, 0, len(encoded))
    return found


def sample_offsets(stsc: bytes, chunk_offsets: bytes, sizes: list[int]) -> list[int]:
    """Where the tables place each sample (as the join reads its inputs)."""
    data = stsc + chunk_offsets
    stsc_box, chunks_box = children(data, 0, len(data))
    return _offsets(data, stsc_box, chunks_box, sizes)


@pytest.mark.parametrize(("last", "kind", "width"), [(FOUR_GB - 1, b"stco", 4), (FOUR_GB, b"co64", 8),
                                                     (5 * FOUR_GB + 7, b"co64", 8)])
def test_chunk_offsets_take_64_bits_once_one_passes_4_gb(last, kind, width):
    # GIVEN chunk offsets the last of which is `last`
    offsets = [40, 1 << 20, last]
    # WHEN written
    encoded = encode_chunk_offsets(offsets)
    # THEN the table is stco while they all fit 32 bits, else co64, and holds them all
    box = parsed(encoded)
    assert box.kind == kind
    count = struct.unpack_from(">I", encoded, box.body + 4)[0]
    assert list(struct.unpack_from(f">{count}{'I' if width == 4 else 'Q'}", encoded, box.body + 8)) == offsets
    # AND the samples are found where they were put
    assert sample_offsets(encode_stsc([1, 1, 1]), encoded, [10, 20, 30]) == offsets


def test_sample_to_chunk_runs_change_only_where_the_samples_per_chunk_do():
    # GIVEN chunks of 3, 3, 3, 2, 2 and 5 samples (a second's runs, the audio between)
    per_chunk = [3, 3, 3, 2, 2, 5]
    # WHEN written
    encoded = encode_stsc(per_chunk)
    # THEN one entry per run: first chunk (1-based), samples per chunk, description 1
    box = parsed(encoded)
    count = struct.unpack_from(">I", encoded, box.body + 4)[0]
    assert list(struct.unpack_from(f">{3 * count}I", encoded, box.body + 8)) == [1, 3, 1, 4, 2, 1, 6, 5, 1]
    # AND read back with the chunks' offsets, every sample is where it was written
    starts = [1000 * (index + 1) for index in range(len(per_chunk))]
    sizes = list(range(1, sum(per_chunk) + 1))
    expected, sample = [], 0
    for start, count in zip(starts, per_chunk, strict=True):
        expected += [start + sum(sizes[sample:sample + index]) for index in range(count)]
        sample += count
    assert sample_offsets(encoded, encode_chunk_offsets(starts), sizes) == expected


def _mdhd(version: int, duration: int) -> bytes:
    if version == 0:
        times = struct.pack(">IIII", 11, 22, 90000, duration)
    else:
        times = struct.pack(">QQIQ", 11, 22, 90000, duration)
    return full_box(b"mdhd", version, 0, times, struct.pack(">HH", 0x55C4, 0))


@pytest.mark.parametrize(("version", "duration", "written_version"), [
    (0, FOUR_GB - 1, 0), (0, FOUR_GB, 1), (1, 5, 1), (1, 3 * FOUR_GB, 1),
])
def test_a_media_header_becomes_version_1_when_its_duration_passes_32_bits(version, duration, written_version):
    # GIVEN a media header of `version` (timescale 90000, English)
    mdhd = _mdhd(version, 1000)
    # WHEN given `duration`
    written = _with_duration(mdhd, duration, widths=_MOVIE_FIELDS)
    # THEN it is the header of that version with that duration, its other fields kept
    assert written == _mdhd(written_version, duration)


def _tkhd(version: int, track_id: int, duration: int) -> bytes:
    rest = bytes(8) + struct.pack(">hhhH", 0, 0, 0x0100, 0) + bytes(36) + struct.pack(">II", 160 << 16, 120 << 16)
    if version == 0:
        return full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 11, 22, track_id, 0, duration), rest)
    return full_box(b"tkhd", 1, 3, struct.pack(">QQIIQ", 11, 22, track_id, 0, duration), rest)


def test_a_track_header_gets_its_track_id_and_a_64_bit_duration():
    # GIVEN a version-0 track header of track 7
    tkhd = _tkhd(0, 7, 1000)
    # WHEN given track id 1 and a duration past 32 bits
    written = _with_duration(tkhd, 2 * FOUR_GB, widths=_TRACK_FIELDS, track_id=1)
    # THEN it is a version-1 header of track 1 with that duration, flags, matrix and size kept
    assert written == _tkhd(1, 1, 2 * FOUR_GB)


def test_a_movie_header_gets_the_joined_movies_timescale_duration_and_next_track_id():
    # GIVEN a chunk's movie header: timescale 1000, next track id 9
    mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIII", 11, 22, 1000, 5), bytes(76), struct.pack(">I", 9))
    # WHEN given timescale 768000, a duration past 32 bits and next track id 3
    written = _with_duration(mvhd, FOUR_GB + 1, widths=_MOVIE_FIELDS, next_track=3, timescale=768000)
    # THEN it is version 1 with that timescale and duration, and its last field 3
    assert written == full_box(b"mvhd", 1, 0, struct.pack(">QQIQ", 11, 22, 768000, FOUR_GB + 1), bytes(76),
                               struct.pack(">I", 3))


@pytest.mark.parametrize(("duration", "version"), [(FOUR_GB - 1, 0), (FOUR_GB, 1)])
def test_an_edit_past_32_bits_is_written_in_version_1(duration, version):
    # GIVEN an edit of `duration`, WHEN written, THEN its version fits it, and it says what it was given
    edts = encode_elst(duration, 2048)
    assert parsed(edts).kind == b"edts"
    elst_box = edts[8:]
    elst = parsed(elst_box)
    assert elst.kind == b"elst" and elst_box[elst.body] == version
    fields = ">IIiI" if version == 0 else ">IQqI"
    assert struct.unpack_from(fields, elst_box, elst.body + 4) == (1, duration, 2048, 0x10000)


def test_sample_dependencies_are_written_as_ffmpegs_muxer_writes_them():
    # GIVEN samples: a sync sample, a disposable one, one others depend on
    # WHEN their dependencies are written
    encoded = encode_sdtp([False, True, False], [True, False, False])
    # THEN a sync sample depends on none (0x20), the others do (0x10), the disposable one has none
    # depending on it (0x08)
    assert encoded == full_box(b"sdtp", 0, 0, bytes([0x20, 0x18, 0x10]))


def test_sample_dependencies_are_read_as_ffmpegs_reader_reads_them():
    # GIVEN an sdtp table shorter than the track, with every kind of "depended on" answer
    encoded = full_box(b"sdtp", 0, 0, bytes([0x20, 0x18, 0x14, 0x1C, 0x08]))
    # WHEN read for 7 samples
    # THEN a sample is disposable only when none depend on it (answer 2), and those past the table are not
    assert _disposable(encoded, parsed(encoded), 7) == [False, True, False, False, True, False, False]
