"""Mp4Join: chunk videos joined into one MP4 by copying their samples, written once, index in front.

The file is laid out as ``ftyp``, the space reserved for the index (a ``free`` box the size of the
worst case the chunks' frame counts allow), then one ``mdat`` that only ever grows: each chunk's
samples are copied into it as the chunk comes (the kernel copies the bytes: ``os.copy_file_range``;
only the few samples ``h264`` rewrites pass through Python), in decoding order with the audio
track's samples when there is one (as ffmpeg's muxer interleaves them, so the media data is the
same bytes), in runs of at most a second. At the end the index goes into the reserved space, the
rest of which stays ``free``; were it ever too small, the index is appended
instead (the file stays whole; only the index is not in front). The samples, their order, timestamps
and bytes are those ffmpeg's concat would write.
"""

from __future__ import annotations

import bisect
import errno
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from framefarm.stitch.mp4.boxes import Mp4Error, box, children
from framefarm.stitch.mp4.h264 import Piece, merged
from framefarm.stitch.mp4.source import Mp4Source
from framefarm.stitch.mp4.tables import (
    Track,
    encode_chunk_offsets,
    encode_ctts,
    encode_elst,
    encode_sdtp,
    encode_stsc,
    encode_stss,
    encode_stsz,
    encode_stts,
    table_bytes_bound,
)

INTERLEAVE_SECONDS = 1  # a run of one track's samples covers at most this much time
INDEX_FIXED_BYTES = 64 * 1024  # the index beside its tables: headers, descriptions, tags
MDAT_HEADER = struct.Struct(">I4sQ")  # size 1, "mdat", then its 64-bit size: the media data may pass 4 GB
COPY_BLOCK = 1 << 20  # per read/write where the kernel cannot copy between the files
KERNEL_COPY_UNAVAILABLE = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP})


def index_reserve(video_samples: int, audio: Track | None) -> int:
    """Bytes to reserve for the index of ``video_samples`` video samples and ``audio``."""
    reserve = INDEX_FIXED_BYTES + table_bytes_bound(video_samples, video_samples)
    if audio is not None:
        reserve += table_bytes_bound(len(audio.sizes), len(audio.sizes)) + len(audio.stsd)
        reserve += sum(len(table) for table in audio.other_tables)
    return reserve


@dataclass
class _Written:
    """A track of the output as written so far."""

    sizes: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    composition: list[int] = field(default_factory=list)
    sync: list[int] = field(default_factory=list)
    all_sync: bool = True
    disposable: list[bool] = field(default_factory=list)
    chunk_offsets: list[int] = field(default_factory=list)
    chunk_samples: list[int] = field(default_factory=list)

    @property
    def duration(self) -> int:
        return sum(self.durations)


class Mp4Join:
    """``with Mp4Join(path, reserve, audio) as join: join.start(first); join.add(s) ...; join.finish()``."""

    def __init__(self, path: Path, *, reserve: int, audio: Mp4Source | None = None) -> None:
        self.path, self.reserve, self.audio = path, reserve, audio
        self._fd = -1
        self._position = 0
        self._head = 0
        self._first: Mp4Source | None = None
        self._video = _Written()
        self._audio = _Written()
        self._audio_next = 0  # the next audio sample to write
        self._audio_time = 0  # its decoding time (audio timescale, before the edit list's shift)
        self._video_time = 0  # the next video sample's (video timescale, likewise)
        self._shift: int | None = None  # the last chunk's edit media time (its B-frame delay)
        self._copiers = ["copy_file_range", "sendfile"]  # what copies between files here, best first
        self.index_in_front: bool | None = None

    def __enter__(self) -> Mp4Join:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        os.close(self._fd)

    def start(self, first: Mp4Source) -> int:
        """Write the head: the first chunk's file type, the reserved space, the media data's header.
        Returns where the bytes start that are only ever appended."""
        self._first = first
        self._write(first.ftyp)
        self._head = self._position
        self._write(_free(self.reserve))
        self._write(MDAT_HEADER.pack(1, b"mdat", 0))
        return self._position

    def add(self, source: Mp4Source) -> None:
        """Append a chunk's video samples, each after the audio samples that come before it."""
        first = self._require_first()
        track = source.track
        if track.timescale != first.track.timescale:
            raise Mp4Error(f"{source.path}: timescale {track.timescale}, the first chunk's {first.track.timescale}")
        self._shift_to(source)
        limit = INTERLEAVE_SECONDS * track.timescale
        start = span = 0
        for index, duration in enumerate(track.durations):
            due = self._audio_due(self._video_time - (first.track.media_time or 0), track.timescale)
            if index > start and (due > self._audio_next or span + duration > limit):
                self._video_run(source, start, index)
                start, span = index, 0
            self._audio_run(due)
            span += duration
            self._video_time += duration
        self._video_run(source, start, len(track.durations))

    def _shift_to(self, source: Mp4Source) -> None:
        """A chunk whose media starts with less delay than the one before (a tail of one or two frames
        from an encoder with B-frames): its samples decode that much later, so the sample before them
        lasts that much longer, as ffmpeg's concat writes it. More delay cannot be had (decoding times
        would go back): Mp4Error."""
        shift = source.track.media_time or 0
        gap = (self._shift if self._shift is not None else shift) - shift
        if gap < 0:
            raise Mp4Error(f"{source.path}: its media starts {-gap} ticks later than the chunk before's")
        if gap:
            self._video.durations[-1] += gap
            self._video_time += gap
        self._shift = shift

    def finish(self) -> None:
        """The rest of the audio, then the index (in front if it fits) and the media data's size."""
        first = self._require_first()
        if self.audio is not None:
            self._audio_run(len(self.audio.track.sizes))
        media_end = self._position
        _pwrite(self._fd, struct.pack(">Q", media_end - (self._head + self.reserve)), self._head + self.reserve + 8)
        index = self._index(first)
        room = self.reserve - len(index)
        self.index_in_front = room == 0 or room >= 8
        if self.index_in_front:
            _pwrite(self._fd, index + (_free(room) if room else b""), self._head)
        else:
            self._write(index)

    # -- samples ---------------------------------------------------------------------------------

    def _video_run(self, source: Mp4Source, start: int, end: int) -> None:
        track, written = source.track, self._video
        base = len(written.sizes)
        written.chunk_offsets.append(self._position)
        written.chunk_samples.append(end - start)
        pieces: list[Piece] = []
        for index in range(start, end):
            sample = source.pieces.get(index) or [(track.offsets[index], track.sizes[index])]
            pieces += sample
            written.sizes.append(sum(len(p) if isinstance(p, bytes) else p[1] for p in sample))
        written.durations += track.durations[start:end]
        written.composition += track.composition[start:end] if track.composition else [0] * (end - start)
        if track.sync is not None:
            written.all_sync = False
            within = track.sync[bisect.bisect_right(track.sync, start):bisect.bisect_right(track.sync, end)]
            written.sync += [base + number - start for number in within]  # 1-based: start + 1 .. end
        else:
            written.sync += range(base + 1, base + 1 + end - start)
        written.disposable += track.disposable[start:end] if track.disposable else [False] * (end - start)
        self._write_pieces(source.fd, pieces)

    def _audio_due(self, video_time: int, video_timescale: int) -> int:
        """Past the audio samples that decode before ``video_time`` (a video sample's decoding time):
        ffmpeg's muxer writes packets in decoding order, the video's first where times are equal."""
        if self.audio is None:
            return 0
        track = self.audio.track
        end, time, shift = self._audio_next, self._audio_time, track.media_time or 0
        while end < len(track.sizes) and (time - shift) * video_timescale < video_time * track.timescale:
            time += track.durations[end]
            end += 1
        return end

    def _audio_run(self, end: int) -> None:
        """Write the audio samples from the next one up to ``end`` (one chunk of the track)."""
        if self.audio is None or end <= self._audio_next:
            return
        track, begin = self.audio.track, self._audio_next
        written = self._audio
        written.chunk_offsets.append(self._position)
        written.chunk_samples.append(end - begin)
        written.sizes += track.sizes[begin:end]
        written.durations += track.durations[begin:end]
        self._write_pieces(self.audio.fd, [(track.offsets[i], track.sizes[i]) for i in range(begin, end)])
        self._audio_next, self._audio_time = end, self._audio_time + sum(track.durations[begin:end])

    def _write_pieces(self, source_fd: int, pieces: Sequence[Piece]) -> None:
        for piece in merged(list(pieces)):
            if isinstance(piece, bytes):
                self._write(piece)
            else:
                self._copy(source_fd, *piece)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            done = os.write(self._fd, view)
            view = view[done:]
            self._position += done

    def _copy(self, source_fd: int, offset: int, length: int) -> None:
        """``length`` bytes of the input from ``offset`` on, appended: by the kernel when it can
        (``copy_file_range``, else ``sendfile`` between file systems), else read and written here."""
        while length:
            done = self._kernel_copy(source_fd, offset, length)
            if done is None:
                block = os.pread(source_fd, min(length, COPY_BLOCK), offset)
                self._write(block)
                done = len(block)
            else:
                self._position += done
            if done == 0:
                raise Mp4Error(f"an input ended {length} bytes before its samples did")
            offset += done
            length -= done

    def _kernel_copy(self, source_fd: int, offset: int, length: int) -> int | None:
        while self._copiers:
            try:
                if self._copiers[0] == "copy_file_range":
                    return os.copy_file_range(source_fd, self._fd, length, offset)
                return os.sendfile(self._fd, source_fd, offset, length)
            except OSError as exc:
                if exc.errno not in KERNEL_COPY_UNAVAILABLE:
                    raise
                self._copiers.pop(0)  # not between these files (another file system, an old kernel)
        return None

    # -- the index -------------------------------------------------------------------------------

    def _index(self, first: Mp4Source) -> bytes:
        video = first.track
        movie_scale = _movie_timescale(first, self.audio)
        # What is shown: the samples' time less the delay the shifts added (``_shift_to``).
        shown = self._video.duration - ((video.media_time or 0) - (self._shift or 0))
        video_movie = _rescale(shown, video.timescale, movie_scale)
        traks = [self._trak(1, video, self._video, video_movie,
                            (video_movie, video.media_time or 0),  # an edit even where chunks had none, as concat
                            _with_bit_rates(video.stsd, self._video, video.timescale))]
        longest = video_movie
        if self.audio is not None:
            audio = self.audio.track
            movie = _rescale(self._audio.duration, audio.timescale, movie_scale)
            edit = None
            if audio.edit is not None:
                movie = _rescale(audio.edit[0], self.audio.movie_timescale, movie_scale)
                edit = (movie, audio.edit[1])
            traks.append(self._trak(2, audio, self._audio, movie, edit, audio.stsd))
            longest = max(longest, movie)
        mvhd = _with_duration(first.mvhd, longest, widths=_MOVIE_FIELDS, next_track=len(traks) + 1,
                              timescale=movie_scale)  # the first chunk's own may be another
        return box(b"moov", mvhd, *traks, first.udta or b"")

    def _trak(self, number: int, track: Track, written: _Written, movie_duration: int,
              edit: tuple[int, int] | None, stsd: bytes) -> bytes:
        tables = [stsd, encode_stts(written.durations)]
        if not written.all_sync:
            tables.append(encode_stss(written.sync))
        if any(written.disposable):
            synced = set(written.sync)
            tables.append(encode_sdtp(written.disposable, [number in synced for number in
                                                           range(1, len(written.sizes) + 1)]))
        if any(written.composition):
            tables.append(encode_ctts(written.composition, 1 if min(written.composition) < 0 else
                                      track.composition_version))
        tables += [*track.other_tables, encode_stsc(written.chunk_samples), encode_stsz(written.sizes),
                   encode_chunk_offsets(written.chunk_offsets)]
        minf = box(b"minf", track.media_header, track.dinf, box(b"stbl", *tables))
        mdia = box(b"mdia", _with_duration(track.mdhd, written.duration, widths=_MOVIE_FIELDS), track.hdlr, minf)
        tkhd = _with_duration(track.tkhd, movie_duration, widths=_TRACK_FIELDS, track_id=number)
        return box(b"trak", tkhd, encode_elst(*edit) if edit is not None else b"", mdia)

    def _require_first(self) -> Mp4Source:
        if self._first is None:
            raise RuntimeError("Mp4Join.start comes first")
        return self._first


# Widths (version 0, version 1) of the fields of mvhd/mdhd and tkhd up to and including the duration.
_MOVIE_FIELDS = ((4, 4, 4, 4), (8, 8, 4, 8))  # creation, modification, timescale, duration
_TRACK_FIELDS = ((4, 4, 4, 4, 4), (8, 8, 4, 4, 8))  # creation, modification, track id, reserved, duration


def _with_duration(full: bytes, duration: int, *, widths: tuple[tuple[int, ...], tuple[int, ...]],
                   track_id: int | None = None, next_track: int | None = None, timescale: int | None = None) -> bytes:
    """A copy of an mvhd/mdhd/tkhd box with another duration (version 1 where it needs 64 bits),
    track id (tkhd), next track id (mvhd, its last field) or timescale (mvhd)."""
    old = full[8]
    narrow, wide = widths
    fields, at = [], 12
    for width in widths[old]:
        fields.append(int.from_bytes(full[at:at + width], "big"))
        at += width
    rest = bytearray(full[at:])
    fields[-1] = duration
    if track_id is not None:
        fields[2] = track_id
    if timescale is not None:
        fields[2] = timescale
    if next_track is not None:
        rest[-4:] = next_track.to_bytes(4, "big")
    new = 1 if old == 1 or duration > 0xFFFFFFFF else 0
    body = b"".join(value.to_bytes(width, "big") for value, width in zip(fields, (narrow, wide)[new], strict=True))
    return box(full[4:8], bytes([new]), full[9:12], body, bytes(rest))


def _with_bit_rates(stsd: bytes, written: _Written, timescale: int) -> bytes:
    """The sample description with its ``btrt`` (if any) telling the joined track's bit rates."""
    entry = 16
    for found in children(stsd, entry + 86, len(stsd)):
        if found.kind == b"btrt" and found.size == 20:
            duration = written.duration or 1
            average = sum(written.sizes) * 8 * timescale // duration
            peak = max(average, _peak_bits_per_second(written, timescale))
            body = stsd[found.body:found.body + 4] + struct.pack(">II", min(peak, 0xFFFFFFFF), min(average, 0xFFFFFFFF))
            return stsd[:found.body] + body + stsd[found.end:]
    return stsd


def _peak_bits_per_second(written: _Written, timescale: int) -> int:
    """The most bits in any one second of decoding time (a window from each sample on)."""
    peak = window = 0
    time = [0]
    for duration in written.durations:
        time.append(time[-1] + duration)
    last = 0
    for first in range(len(written.sizes)):
        while last < len(written.sizes) and time[last] - time[first] < timescale:
            window += written.sizes[last]
            last += 1
        peak = max(peak, window)
        window -= written.sizes[first]
    return peak * 8


def _movie_timescale(first: Mp4Source, audio: Mp4Source | None) -> int:
    """One every track's times can be told in exactly (as ffmpeg's muxer picks it), if it fits."""
    scale = first.track.timescale if audio is None else math.lcm(first.track.timescale, audio.track.timescale)
    return scale if scale <= 0x7FFFFFFF else first.movie_timescale


def _rescale(value: int, source: int, target: int) -> int:
    return (value * target + source // 2) // source


def _free(size: int) -> bytes:
    if size < 8:
        raise Mp4Error(f"no room for a free box of {size} bytes")
    return struct.pack(">I4s", size, b"free") + bytes(size - 8)


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done
