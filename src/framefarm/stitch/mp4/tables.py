"""A track's sample tables: read from a ``trak`` box into one entry per sample, and written back.

``Track`` holds, per sample, its size, its offset in the file, its duration and composition offset,
which samples are sync samples and which ones no other sample depends on; plus the boxes a joined
file copies as they are (sample description, media header, handler, ...). ``encode_*`` turn such
lists back into table boxes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby

from framefarm.stitch.mp4.boxes import Box, Buffer, Mp4Error, Truncated, box, find, full_box, inside, need, raw, version

TABLES = frozenset({b"stsd", b"stts", b"ctts", b"stss", b"sdtp", b"stsz", b"stsc", b"stco", b"co64"})
DEPENDS_YES, DEPENDS_NO = 1, 2  # sdtp's two-bit answers (0: unknown)


class NotJoinable(Exception):
    """These files are valid, but not ones the direct join handles (ffmpeg's concat then does it)."""


@dataclass
class Track:
    handler: bytes  # b"vide", b"soun", ...
    timescale: int
    tkhd: bytes  # whole boxes, copied into a joined file (durations and track id patched)
    mdhd: bytes
    hdlr: bytes
    media_header: bytes  # vmhd / smhd
    dinf: bytes
    stsd: bytes
    sizes: list[int]
    offsets: list[int]
    durations: list[int]
    composition: list[int] | None  # None: no ctts (every offset 0)
    composition_version: int
    sync: list[int] | None  # 1-based sample numbers; None: every sample is a sync sample
    edit: tuple[int, int] | None  # the edit list's one edit: (duration in the movie's timescale, media time)
    other_tables: list[bytes] = field(default_factory=list)  # e.g. an audio track's sgpd/sbgp
    disposable: list[bool] | None = None  # per sample, from sdtp: no other sample depends on it (None: no sdtp)

    @property
    def duration(self) -> int:
        return sum(self.durations)

    @property
    def media_time(self) -> int | None:
        return None if self.edit is None else self.edit[1]

    @property
    def codec(self) -> bytes:
        """The sample entry's four characters (b"avc1", b"mp4a", ...): after the stsd box's header (8),
        its version and entry count (8), and the entry's size (4)."""
        return self.stsd[20:24]


def read_track(data: Buffer, trak: Box, *, extra_tables: bool = False) -> Track:
    """The track in ``trak``; NotJoinable when it uses what a plain concatenation cannot carry
    (several sample descriptions, edit lists other than one plain edit, extra sample tables unless
    ``extra_tables``)."""
    mdia = need(data, trak, b"mdia")
    mdhd, hdlr = need(data, mdia, b"mdhd"), need(data, mdia, b"hdlr")
    minf = need(data, mdia, b"minf")
    stbl = need(data, minf, b"stbl")
    header = next((b for b in inside(data, minf) if b.kind in (b"vmhd", b"smhd", b"nmhd", b"sthd")), None)
    if header is None:
        raise NotJoinable("a track with no media header")
    tables = {b.kind: b for b in inside(data, stbl)}
    others = [b for b in inside(data, stbl) if b.kind not in TABLES]
    if others and not extra_tables:
        raise NotJoinable(f"sample table box {others[0].kind.decode(errors='replace')}")
    if b"stz2" in tables or b"stsz" not in tables or b"stsd" not in tables or b"stts" not in tables:
        raise NotJoinable("a sample table without stsz, stsd or stts")
    if struct.unpack_from(">I", data, tables[b"stsd"].body + 4)[0] != 1:
        raise NotJoinable("more than one sample description")
    timescale = struct.unpack_from(">I", data, mdhd.body + (20 if version(data, mdhd) == 1 else 12))[0]
    handler = bytes(data[hdlr.body + 8:hdlr.body + 12])
    sizes = _sizes(data, tables[b"stsz"], video=handler == b"vide")
    durations = _expand(data, tables[b"stts"], samples=len(sizes))
    composition = None
    composition_version = 0
    if b"ctts" in tables:
        composition_version = version(data, tables[b"ctts"])
        composition = _expand(data, tables[b"ctts"], samples=len(sizes), signed=composition_version == 1)
    sync = None
    if b"stss" in tables:
        count = struct.unpack_from(">I", data, tables[b"stss"].body + 4)[0]
        _fits(tables[b"stss"], 8 + 4 * count)
        sync = list(struct.unpack_from(f">{count}I", data, tables[b"stss"].body + 8))
    chunk_box = tables.get(b"co64") or tables.get(b"stco")
    if chunk_box is None or b"stsc" not in tables:
        raise Mp4Error("a sample table without chunk offsets")
    offsets = _offsets(data, tables[b"stsc"], chunk_box, sizes)
    return Track(handler=handler, timescale=timescale,
                 tkhd=raw(data, need(data, trak, b"tkhd")), mdhd=raw(data, mdhd), hdlr=raw(data, hdlr),
                 media_header=raw(data, header), dinf=raw(data, need(data, minf, b"dinf")),
                 stsd=raw(data, tables[b"stsd"]), sizes=sizes, offsets=offsets, durations=durations,
                 composition=composition, composition_version=composition_version, sync=sync,
                 edit=_edit(data, trak), other_tables=[raw(data, b) for b in others],
                 disposable=_disposable(data, tables[b"sdtp"], len(sizes)) if b"sdtp" in tables else None)


def _sizes(data: Buffer, stsz: Box, *, video: bool) -> list[int]:
    uniform, count = struct.unpack_from(">II", data, stsz.body + 4)
    if uniform and video:  # e.g. a chunk of one frame: its samples are packets all the same
        if uniform * count > len(data):
            raise Truncated(f"the file is truncated: {count} samples of {uniform} bytes run past its end")
        return [uniform] * count
    if uniform:  # raw audio's samples are single sample frames, read in chunks: no packets to copy
        raise NotJoinable("samples of one fixed size (raw audio)")
    _fits(stsz, 12 + 4 * count)
    return list(struct.unpack_from(f">{count}I", data, stsz.body + 12))


def _disposable(data: Buffer, sdtp: Box, samples: int) -> list[bool]:
    """Whether each sample is depended on by none, as ffmpeg's reader tells it (a sample past the
    table's end is not)."""
    flags = bytes(data[sdtp.body + 4:min(sdtp.end, sdtp.body + 4 + samples)])
    return [(flag >> 2) & 3 == DEPENDS_NO for flag in flags] + [False] * (samples - len(flags))


def _expand(data: Buffer, table: Box, *, samples: int, signed: bool = False) -> list[int]:
    """stts / ctts: (count, value) runs, one value per sample; Mp4Error unless they are ``samples``
    (stsz's), told before any is expanded (a damaged count would ask for billions)."""
    (entries,) = struct.unpack_from(">I", data, table.body + 4)
    _fits(table, 8 + 8 * entries)
    runs = struct.unpack_from(f">{2 * entries}{'i' if signed else 'I'}", data, table.body + 8)
    listed = sum(count & 0xFFFFFFFF for count in runs[::2])
    if listed != samples:
        raise Mp4Error(f"{table.kind.decode(errors='replace')} lists {listed} samples, stsz {samples}")
    values: list[int] = []
    for index in range(0, len(runs), 2):
        values += [runs[index + 1]] * (runs[index] & 0xFFFFFFFF)
    return values


def _offsets(data: Buffer, stsc: Box, chunks: Box, sizes: Sequence[int]) -> list[int]:
    """Every sample's offset in the file, from the sample-to-chunk runs and the chunks' offsets."""
    (count,) = struct.unpack_from(">I", data, chunks.body + 4)
    wide = chunks.kind == b"co64"
    _fits(chunks, 8 + (8 if wide else 4) * count)
    starts = struct.unpack_from(f">{count}{'Q' if wide else 'I'}", data, chunks.body + 8)
    (runs,) = struct.unpack_from(">I", data, stsc.body + 4)
    _fits(stsc, 8 + 12 * runs)
    entries = [struct.unpack_from(">III", data, stsc.body + 8 + 12 * index) for index in range(runs)]
    offsets: list[int] = []
    sample = 0
    for index, (first, per_chunk, _description) in enumerate(entries):
        last = entries[index + 1][0] - 1 if index + 1 < len(entries) else count
        for chunk in range(first - 1, last):
            position = starts[chunk]
            for size in sizes[sample:sample + per_chunk]:
                offsets.append(position)
                position += size
            sample += per_chunk
    if len(offsets) != len(sizes):
        raise Mp4Error(f"the chunk tables place {len(offsets)} samples, stsz lists {len(sizes)}")
    return offsets


def _edit(data: Buffer, trak: Box) -> tuple[int, int] | None:
    elst = find(data, trak, b"edts", b"elst")
    if elst is None:
        return None
    wide = version(data, elst) == 1
    (count,) = struct.unpack_from(">I", data, elst.body + 4)
    if count == 0:
        return None
    if count != 1:
        raise NotJoinable(f"an edit list of {count} edits")
    _fits(elst, 8 + (20 if wide else 12))
    duration, media_time, rate = struct.unpack_from(">QqI" if wide else ">IiI", data, elst.body + 8)
    if media_time < 0 or rate != 0x10000:
        raise NotJoinable("an edit list with an empty edit or another rate")
    return int(duration), int(media_time)


def _fits(table: Box, length: int) -> None:
    if table.header + length > table.size:
        raise Mp4Error(f"{table.kind.decode(errors='replace')} lists more entries than it holds")


# -- writing ---------------------------------------------------------------------------------------

def encode_elst(duration: int, media_time: int) -> bytes:
    """An edit list of one edit: ``duration`` (movie timescale) of the media from ``media_time``."""
    if duration <= 0xFFFFFFFF and media_time <= 0x7FFFFFFF:
        return box(b"edts", full_box(b"elst", 0, 0, struct.pack(">IIiI", 1, duration, media_time, 0x10000)))
    return box(b"edts", full_box(b"elst", 1, 0, struct.pack(">IQqI", 1, duration, media_time, 0x10000)))


def encode_stts(durations: Sequence[int]) -> bytes:
    runs = [(len(list(group)), value) for value, group in groupby(durations)]
    return full_box(b"stts", 0, 0, struct.pack(f">I{2 * len(runs)}I", len(runs), *_flat(runs)))


def encode_ctts(offsets: Sequence[int], box_version: int) -> bytes:
    runs = [(len(list(group)), value) for value, group in groupby(offsets)]
    kind = "i" if box_version == 1 else "I"
    return full_box(b"ctts", box_version, 0, struct.pack(">I", len(runs)),
                    struct.pack(f">{2 * len(runs)}{kind}", *_flat(runs)))


def encode_stss(sync: Sequence[int]) -> bytes:
    return full_box(b"stss", 0, 0, struct.pack(f">I{len(sync)}I", len(sync), *sync))


def encode_sdtp(disposable: Sequence[bool], sync: Sequence[bool]) -> bytes:
    """Sample dependencies as ffmpeg's muxer writes them: a sync sample depends on no other, any other
    does; a disposable one has none depending on it (unknown for the rest)."""
    flags = bytes((DEPENDS_NO if key else DEPENDS_YES) << 4 | (DEPENDS_NO << 2 if spare else 0)
                  for spare, key in zip(disposable, sync, strict=True))
    return full_box(b"sdtp", 0, 0, flags)


def encode_stsz(sizes: Sequence[int]) -> bytes:
    return full_box(b"stsz", 0, 0, struct.pack(f">II{len(sizes)}I", 0, len(sizes), *sizes))


def encode_stsc(samples_per_chunk: Sequence[int]) -> bytes:
    """One entry where the number of samples per chunk changes (every chunk uses description 1)."""
    entries: list[tuple[int, int, int]] = []
    for index, count in enumerate(samples_per_chunk):
        if not entries or entries[-1][1] != count:
            entries.append((index + 1, count, 1))
    return full_box(b"stsc", 0, 0, struct.pack(f">I{3 * len(entries)}I", len(entries), *_flat(entries)))


def encode_chunk_offsets(offsets: Sequence[int]) -> bytes:
    """stco, or co64 when an offset needs more than 32 bits."""
    if not offsets or max(offsets) <= 0xFFFFFFFF:
        return full_box(b"stco", 0, 0, struct.pack(f">I{len(offsets)}I", len(offsets), *offsets))
    return full_box(b"co64", 0, 0, struct.pack(f">I{len(offsets)}Q", len(offsets), *offsets))


def table_bytes_bound(samples: int, chunks: int) -> int:
    """The most bytes the tables of ``samples`` samples in ``chunks`` chunks can take: per sample its
    size, a duration run, a composition run, a sync entry and its dependencies; per chunk an offset and
    an stsc entry."""
    return 7 * 16 + samples * (4 + 8 + 8 + 4 + 1) + chunks * (8 + 12)


def _flat(rows: Sequence[tuple[int, ...]]) -> list[int]:
    return [value for row in rows for value in row]


__all__ = ["NotJoinable", "Track", "box", "encode_chunk_offsets", "encode_ctts", "encode_elst", "encode_sdtp",
           "encode_stsc", "encode_stss", "encode_stsz", "encode_stts", "read_track", "table_bytes_bound"]
