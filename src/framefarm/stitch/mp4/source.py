"""One input of a join: an MP4 file mapped into memory, with its first video (or audio) track read.

``Mp4Source.open(path, "vide")`` reads the file's boxes; it refuses (``NotJoinable``) a fragmented
file, a track with no samples, or a codec whose samples ffmpeg's concat would rewrite in a way the
join does not (``CODECS_AS_THEY_ARE``, and H.264 by ``h264``). ``join_key`` is what must be equal
between chunks for their samples to follow one another under one sample description.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from framefarm.stitch.mp4 import h264
from framefarm.stitch.mp4.boxes import Box, Mp4Error, Truncated, children, find, inside, need, raw
from framefarm.stitch.mp4.tables import NotJoinable, Track, read_track

# Sample entries whose samples ffmpeg's concat and MP4 muxer pass on untouched: HEVC with its hvcC,
# VP9. (H.264 is rewritten at IDR pictures, which ``h264`` repeats; any other codec goes to ffmpeg.)
CODECS_AS_THEY_ARE = frozenset({b"hvc1", b"hev1", b"vp09"})
FIRST_BOXES = frozenset({b"ftyp", b"free", b"skip", b"wide", b"moov", b"mdat"})  # what an MP4 file starts with
VISUAL_ENTRY_FIELDS = (8, 50)  # a visual sample entry's fields before its compressor name
VISUAL_ENTRY_BOXES = 86  # where its boxes start (after the name, depth and a reserved field)


@dataclass
class Mp4Source:
    path: Path
    data: mmap.mmap
    fd: int
    ftyp: bytes
    mvhd: bytes
    udta: bytes | None
    track: Track
    pieces: dict[int, list[h264.Piece]] = field(default_factory=dict)  # samples written otherwise

    @classmethod
    def open(cls, path: Path, handler: bytes, *, read_samples: bool = True) -> Mp4Source:
        """The first ``handler`` (b"vide"/b"soun") track of the file at ``path``; with
        ``read_samples``, an H.264 track's samples are read for what the join writes otherwise."""
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                raise Mp4Error(f"{path} is empty")
            data = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except BaseException:
            os.close(fd)
            raise
        try:
            return cls._read(path, data, fd, handler, read_samples)
        except BaseException:
            data.close()
            os.close(fd)
            raise

    @classmethod
    def _read(cls, path: Path, data: mmap.mmap, fd: int, handler: bytes, read_samples: bool) -> Mp4Source:
        if data[4:8] not in FIRST_BOXES:
            raise NotJoinable("not an MP4 file")
        try:
            top = {box.kind: box for box in children(data, 0, len(data))}
        except Mp4Error as exc:
            raise Truncated(f"the file is truncated: {exc}") from None
        if b"moof" in top:
            raise NotJoinable("a fragmented MP4")
        if b"ftyp" not in top or b"moov" not in top:
            raise NotJoinable("not an MP4 file (no ftyp or moov)")
        moov = top[b"moov"]
        if find(data, moov, b"mvex") is not None:
            raise NotJoinable("a fragmented MP4")
        track = _first_track(data, moov, handler)
        if not track.sizes:
            raise NotJoinable("a track with no samples")
        if track.offsets[-1] + track.sizes[-1] > len(data) or min(track.offsets) < 0:
            raise Truncated("the file is truncated: its samples run past its end")
        source = cls(path=path, data=data, fd=fd, ftyp=raw(data, top[b"ftyp"]),
                     mvhd=raw(data, need(data, moov, b"mvhd")),
                     udta=raw(data, top_udta) if (top_udta := find(data, moov, b"udta")) else None, track=track)
        if handler == b"vide":
            if track.edit is None and _shown_from(track) != 0:
                raise NotJoinable("no edit list, its first frame shown late (a B-frame delay the join cannot tell)")
            if track.codec == b"avc1":
                if read_samples:
                    source.pieces = h264.sample_pieces(data, h264.avc_config(track.stsd), track.offsets,
                                                       track.sizes)
            elif track.codec not in CODECS_AS_THEY_ARE:
                raise NotJoinable(f"codec {track.codec.decode(errors='replace')}")
        return source

    @property
    def movie_timescale(self) -> int:
        at = 12 + (16 if self.mvhd[8] == 1 else 8)  # header, version and flags, creation/modification
        return int(struct.unpack_from(">I", self.mvhd, at)[0])

    def join_key(self) -> str:
        """``mp4:<codec>:<digest>:<shift>``: chunks whose digests are equal can follow one another (the
        same sample description but the encoder's name and bit rates, which differ between chunks, and
        the same timescale); ``shift`` is where the first edit starts in the media (an encoder's
        B-frame delay; a chunk too short to have B-frames has none), which may only fall from one
        chunk to the next (``join.Mp4Join.add``)."""
        entry = self.track.stsd[16:]
        kept = [entry[slice(*VISUAL_ENTRY_FIELDS)]]
        kept += [bytes(entry[box.start:box.end]) for box in children(entry, VISUAL_ENTRY_BOXES, len(entry))
                 if box.kind != b"btrt"]
        kept.append(struct.pack(">I", self.track.timescale))
        digest = hashlib.sha256(b"".join(kept)).hexdigest()[:32]
        return f"mp4:{self.track.codec.decode(errors='replace')}:{digest}:{self.track.media_time or 0}"

    def close(self) -> None:
        self.data.close()
        os.close(self.fd)

    def __enter__(self) -> Mp4Source:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def _first_track(data: mmap.mmap, moov: Box, handler: bytes) -> Track:
    for trak in (box for box in inside(data, moov) if box.kind == b"trak"):
        hdlr = find(data, trak, b"mdia", b"hdlr")
        if hdlr is not None and data[hdlr.body + 8:hdlr.body + 12] == handler:
            return read_track(data, trak, extra_tables=handler != b"vide")
    raise NotJoinable(f"no {'video' if handler == b'vide' else 'audio'} track")


def _shown_from(track: Track) -> int:
    """When the track's first frame is shown (its earliest composition time): an edit list's media
    time says where a B-frame delay ends; with none, only this does (and ffmpeg's concat goes by it)."""
    if track.composition is None:
        return 0
    shown, decoded = track.composition[0], 0
    for duration, offset in zip(track.durations, track.composition, strict=True):
        shown, decoded = min(shown, decoded + offset), decoded + duration
    return shown


def join_key(path: str | os.PathLike[str]) -> str | None:
    """The key of the video in the file at ``path`` (for its media record), or None when the join
    cannot take it (ffmpeg's concat then joins the job's chunks)."""
    try:
        with Mp4Source.open(Path(path), b"vide", read_samples=False) as source:
            return source.join_key()
    except (NotJoinable, Mp4Error, OSError, ValueError):
        return None
