"""H.264 samples as ffmpeg's concat writes them: parameter sets carried in band at each IDR picture.

ffmpeg's concat demuxer passes an MP4 input's H.264 through ``h264_mp4toannexb``, which puts the
input's SPS and PPS (from its ``avcC``) in front of the first slice of every IDR picture that does not
carry its own, or in front of its buffering period SEI, and the MP4 muxer turns start codes back into
4-byte lengths. The join writes the same
bytes: every sample is the input's NAL units, 4-byte length first, with those parameter sets added
where the filter adds them (its state machine, per input file, is ``_Filter``) and the one trailing
zero byte the muxer's start-code search drops from a unit followed by a 3-byte start code. A sample
it leaves alone stays one byte range of the input: the join copies it without reading it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from framefarm.stitch.mp4.boxes import Buffer, Mp4Error, children
from framefarm.stitch.mp4.tables import NotJoinable

SLICE, IDR, SEI, SPS, PPS = 1, 5, 6, 7, 8
BUFFERING_PERIOD = 0  # the payload type of the SEI message the filter puts parameter sets in front of
VISUAL_SAMPLE_ENTRY = 8 + 78  # box header, then the visual sample entry's fixed fields: its boxes follow

Piece = tuple[int, int] | bytes  # (offset, length) in the input, or bytes to write as they are


@dataclass(frozen=True)
class AvcConfig:
    length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]


def avc_config(stsd: bytes) -> AvcConfig:
    """The ``avcC`` of an ``avc1`` sample description (the whole stsd box)."""
    entry = 16  # stsd header, version and flags, entry count
    for found in children(stsd, entry + VISUAL_SAMPLE_ENTRY, len(stsd)):
        if found.kind == b"avcC":
            return _parse_avcc(stsd[found.body:found.end])
    raise NotJoinable("an avc1 sample description without avcC")


def _parse_avcc(body: bytes) -> AvcConfig:
    try:
        length_size = (body[4] & 3) + 1
        position, sets = 5, []
        for mask in (0x1F, 0xFF):
            count = body[position] & mask
            position += 1
            units = []
            for _ in range(count):
                (size,) = struct.unpack_from(">H", body, position)
                units.append(bytes(body[position + 2:position + 2 + size]))
                position += 2 + size
            sets.append(tuple(units))
    except (IndexError, struct.error):
        raise Mp4Error("a truncated avcC") from None
    return AvcConfig(length_size, sets[0], sets[1])


@dataclass(frozen=True)
class _Unit:
    start: int  # the unit's offset in the input; -1 for an inserted parameter set
    length: int
    code: int  # the length of the start code the filter writes before it: 3 or 4
    inserted: bytes = b""


class _Filter:
    """The parameter-set insertion of ``h264_mp4toannexb`` for one input file."""

    def __init__(self, config: AvcConfig) -> None:
        self.length_size = config.length_size
        self.sps, self.pps = list(config.sps), list(config.pps)
        self.new_idr, self.sps_seen, self.pps_seen = True, False, False

    def units(self, data: Buffer, offset: int, size: int) -> list[_Unit]:
        """The units the filter writes for the sample at ``offset``: its own, and parameter sets."""
        own = self._split(data, offset, size)
        in_band_sps = [bytes(data[start:start + length]) for start, length in own if data[start] & 0x1F == SPS]
        in_band_pps = [bytes(data[start:start + length]) for start, length in own if data[start] & 0x1F == PPS]
        self.sps = in_band_sps or self.sps
        self.pps = in_band_pps or self.pps
        out: list[_Unit] = []
        for start, length in own:
            kind = data[start] & 0x1F
            if kind == SPS:
                self.sps_seen = self.new_idr = True
            elif kind == PPS:
                self.pps_seen = self.new_idr = True
                if not self.sps_seen and self.sps:
                    out += _inserted(self.sps)
                    self.sps_seen = True
            if not self.new_idr and kind == IDR and length > 1 and data[start + 1] & 0x80:
                self.new_idr = True  # first_mb_in_slice 0: a new IDR picture right after another
            if (kind == SEI and length > 1 and data[start + 1] == BUFFERING_PERIOD and not self.sps_seen
                    and not self.pps_seen):
                out += _inserted(self.sps) + _inserted(self.pps)  # the picture's sets go before its timing
                self.sps_seen, self.pps_seen = bool(self.sps), bool(self.pps)
            if self.new_idr and kind == IDR and not self.sps_seen and not self.pps_seen:
                out += _inserted([*self.sps, *self.pps])
                self.new_idr = False
            elif self.new_idr and kind == IDR and self.sps_seen and not self.pps_seen:
                out += _inserted(self.pps)
            out.append(_Unit(start, length, 4 if kind in (SPS, PPS) or not out else 3))
            if kind == SLICE:
                self.new_idr, self.sps_seen, self.pps_seen = True, False, False
        return out

    def _split(self, data: Buffer, offset: int, size: int) -> list[tuple[int, int]]:
        units, position, end = [], offset, offset + size
        while position < end:
            if position + self.length_size > end:
                raise Mp4Error(f"a NAL unit's length at offset {position} runs past its sample")
            length = int.from_bytes(data[position:position + self.length_size], "big")
            position += self.length_size
            if length > end - position:
                raise Mp4Error(f"a NAL unit at offset {position} runs past its sample")
            if length:  # the filter drops empty units
                units.append((position, length))
            position += length
        return units


def _inserted(units: Sequence[bytes]) -> list[_Unit]:
    return [_Unit(-1, len(unit), 4, unit) for unit in units]


def sample_pieces(data: Buffer, config: AvcConfig, offsets: Sequence[int],
                  sizes: Sequence[int]) -> dict[int, list[Piece]]:
    """For each sample of one input that the join writes differently from the input, its pieces (in
    sample order, 0-based); every other sample is its own byte range."""
    changed: dict[int, list[Piece]] = {}
    state = _Filter(config)
    for index, (offset, size) in enumerate(zip(offsets, sizes, strict=True)):
        units = state.units(data, offset, size)
        pieces: list[Piece] = []
        for position, unit in enumerate(units):
            length = unit.length
            last = unit.inserted[-1:] if unit.inserted else data[unit.start + length - 1:unit.start + length]
            if position + 1 < len(units) and units[position + 1].code == 3 and length > 1 and last == b"\0":
                length -= 1  # the muxer takes this zero for the first byte of a 4-byte start code
            if not unit.inserted and length == unit.length and state.length_size == 4:
                pieces.append((unit.start - 4, length + 4))  # its length and bytes as they are
            else:
                pieces += [length.to_bytes(4, "big"), unit.inserted[:length] if unit.inserted else (unit.start, length)]
        joined = merged(pieces)
        if joined != [(offset, size)]:
            changed[index] = joined
    return changed


def merged(pieces: list[Piece]) -> list[Piece]:
    """Adjacent bytes joined, and byte ranges that follow one another made one."""
    out: list[Piece] = []
    for piece in pieces:
        previous = out[-1] if out else None
        if isinstance(piece, bytes) and isinstance(previous, bytes):
            out[-1] = previous + piece
        elif isinstance(piece, tuple) and isinstance(previous, tuple) and sum(previous) == piece[0]:
            out[-1] = (previous[0], previous[1] + piece[1])
        else:
            out.append(piece)
    return out
