"""The direct MP4 join (``stitch.direct``, ``stitch.mp4``) against ffmpeg's concat, run here on the same
chunks: every packet (data, timestamps, duration, flags) and the whole media data are concat's, the
index in front; what the join cannot take goes to concat before a byte is written; and its failures
lose nothing."""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import os
import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from framefarm import FfmpegStitcher, StitchError
from framefarm.stitch import direct
from framefarm.stitch.arriving import Present
from framefarm.stitch.mp4 import join
from framefarm.stitch.records import measure
from framefarm.storage.growing import UploadWhenWritten
from tests.helpers import CommandLog, atoms, media_data, todays_stitch

FRAMES = (10, 10, 7)  # chunks of different lengths


def packet_listing(ffmpeg: str, path: Path) -> list[str]:
    """Every packet of every stream: framemd5 (data, dts, pts, duration, size) and framecrc (its flags),
    with their headers (time bases, codec, extradata)."""
    listing: list[str] = []
    for muxer in ("framemd5", "framecrc"):
        listing += subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(path), "-map", "0", "-c", "copy",
                                   "-f", muxer, "-"], capture_output=True, check=True).stdout.decode().splitlines()
    return listing


def header_times(path: Path) -> list[tuple[str, Fraction | int]]:
    """What the file's headers say of time, in seconds: the movie's duration, and each track's (its
    track header's, in the movie's timescale; its media header's), and its edit (duration, media time)."""
    data = path.read_bytes()

    def boxes(start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
        while start < end:
            size, kind = struct.unpack_from(">I4s", data, start)
            header = 16 if size == 1 else 8
            size = struct.unpack_from(">Q", data, start + 8)[0] if size == 1 else size
            yield kind, start + header, start + size
            start += size

    def inside(start: int, end: int, kind: bytes) -> list[tuple[int, int]]:
        return [(body, stop) for found, body, stop in boxes(start, end) if found == kind]

    def scale_and_duration(body: int) -> tuple[int, int]:  # mvhd, mdhd: times, timescale, duration
        return struct.unpack_from(">IQ" if data[body] else ">II", data, body + (20 if data[body] else 12))

    ((moov, moov_end),) = inside(0, len(data), b"moov")
    movie_scale, movie_duration = scale_and_duration(inside(moov, moov_end, b"mvhd")[0][0])
    times: list[tuple[str, Fraction | int]] = [("movie", Fraction(movie_duration, movie_scale))]
    for trak, trak_end in inside(moov, moov_end, b"trak"):
        tkhd = inside(trak, trak_end, b"tkhd")[0][0]
        times.append(("track", Fraction(struct.unpack_from(">Q" if data[tkhd] else ">I", data,
                                                           tkhd + (28 if data[tkhd] else 20))[0], movie_scale)))
        for edts, edts_end in inside(trak, trak_end, b"edts"):
            elst = inside(edts, edts_end, b"elst")[0][0]
            count = struct.unpack_from(">I", data, elst + 4)[0]
            for entry in range(count):
                if data[elst]:
                    duration, media_time = struct.unpack_from(">Qq", data, elst + 8 + 20 * entry)
                else:
                    duration, media_time = struct.unpack_from(">Ii", data, elst + 8 + 12 * entry)
                times += [("edit", Fraction(duration, movie_scale)), ("from", media_time)]
        ((mdia, mdia_end),) = inside(trak, trak_end, b"mdia")
        media_scale, media_duration = scale_and_duration(inside(mdia, mdia_end, b"mdhd")[0][0])
        times.append(("media", Fraction(media_duration, media_scale)))
    return times


def joined_directly(runner: CommandLog) -> bool:
    """No ffmpeg concat ran: the direct join wrote the output."""
    return not any("concat" in command for command in runner.commands)


@functools.cache
def _encoders(ffmpeg: str) -> str:
    return subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, check=True).stdout.decode()


def need_encoder(ffmpeg: str, name: str) -> None:
    if f" {name} " not in _encoders(ffmpeg):
        pytest.skip(f"the bundled ffmpeg has no {name} encoder")


def aac_track(ffmpeg: str, path: Path, seconds: float) -> Path:
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=sample_rate=48000:duration={seconds}", "-c:a", "aac", str(path)], check=True)
    return path


@dataclass(frozen=True)
class Encoding:
    codec: str = "libx264"
    options: tuple[str, ...] = ()
    fps: int | str = 10
    frames: tuple[int, ...] = FRAMES  # the chunks'


def chunks_of(encode_chunk, directory: Path, encoding: Encoding) -> list[Path]:
    frames = encoding.frames
    starts = [sum(frames[:index]) for index in range(len(frames))]
    return [encode_chunk(directory / f"{index}.mp4", start, count, codec=encoding.codec, fps=encoding.fps,
                         options=encoding.options) for index, (start, count) in enumerate(zip(starts, frames, strict=True))]


X265 = ("-x265-params", "log-level=error")
ENCODINGS = [
    pytest.param(Encoding(options=("-preset", "ultrafast")), None, id="x264 ultrafast (no B-frames)"),
    pytest.param(Encoding(options=("-preset", "medium")), None, id="x264 medium (B-frames, edit list, ctts)"),
    pytest.param(Encoding(fps="30000/1001"), None, id="30000/1001 fps"),
    pytest.param(Encoding(options=("-preset", "ultrafast"), frames=(10, 10, 1)), None,
                 id="x264, a last chunk of one frame (one sample size)"),
    pytest.param(Encoding(codec="libvpx-vp9", options=("-deadline", "realtime"), frames=(10, 1, 1)), None,
                 id="VP9, chunks of one frame"),
    pytest.param(Encoding(options=("-preset", "medium"), frames=(10, 10, 2)), None,
                 id="x264 medium, a tail of 2 frames (no B-frame delay)"),
    pytest.param(Encoding(options=("-preset", "medium"), frames=(10, 10, 1)), 2.5,
                 id="x264 medium, a tail of 1 frame, audio longer"),
    pytest.param(Encoding(options=("-movflags", "+faststart")), None, id="chunks with their index in front"),
    pytest.param(Encoding(options=("-preset", "ultrafast", "-use_editlist", "0")), None,
                 id="chunks without an edit list (no B-frames)"),
    pytest.param(Encoding(options=("-x264-params", "slices=4")), None, id="4 slices a picture"),
    pytest.param(Encoding(options=("-g", "1")), None, id="all intra (IDR after IDR)"),
    pytest.param(Encoding(options=("-g", "1", "-x264-params", "slices=4")), None, id="all intra, 4 slices"),
    pytest.param(Encoding(options=("-x264-params", "repeat-headers=1")), None, id="in-band SPS and PPS"),
    pytest.param(Encoding(options=("-x264-params", "nal-hrd=vbr:vbv-maxrate=500:vbv-bufsize=1000")), None,
                 id="buffering period SEI"),
    pytest.param(Encoding(options=("-g", "1", "-x264-params", "nal-hrd=vbr:vbv-maxrate=500:vbv-bufsize=1000")),
                 None, id="all intra with buffering period SEI"),
    pytest.param(Encoding(options=("-x264-params", "aud=1")), None, id="access unit delimiters"),
    pytest.param(Encoding(codec="libx265", options=("-tag:v", "hvc1", *X265)), None, id="libx265 hvc1 (sdtp)"),
    pytest.param(Encoding(codec="libx265", options=X265), None, id="libx265 hev1 (sdtp)"),
    pytest.param(Encoding(codec="libx265", options=("-tag:v", "hvc1", "-preset", "ultrafast", "-x265-params",
                                                    "log-level=error:bframes=0")),
                 None, id="libx265 without disposable frames"),
    pytest.param(Encoding(codec="libvpx-vp9", options=("-deadline", "realtime")), None, id="VP9"),
    pytest.param(Encoding(options=("-preset", "medium")), 4.0, id="x264 medium, audio longer"),
    pytest.param(Encoding(options=("-preset", "medium")), 1.3, id="x264 medium, audio shorter"),
    pytest.param(Encoding(fps="30000/1001"), 2.0, id="30000/1001 fps, audio longer"),
    pytest.param(Encoding(fps=25, frames=(25, 25, 13)), 1.5, id="25 fps, audio shorter"),
    pytest.param(Encoding(codec="libx265", options=("-tag:v", "hvc1", *X265)), 4.0, id="libx265, audio longer"),
    pytest.param(Encoding(codec="libvpx-vp9", options=("-deadline", "realtime")), 1.3, id="VP9, audio shorter"),
]


@pytest.mark.parametrize(("encoding", "audio_seconds"), ENCODINGS)
def test_the_join_writes_the_packets_and_media_data_of_ffmpegs_concat(tmp_path, encode_chunk, ffmpeg, encoding,
                                                                      audio_seconds):
    # GIVEN chunks of 10, 10 and 7 frames so encoded, and an AAC audio track when there is one
    need_encoder(ffmpeg, encoding.codec)
    chunks = chunks_of(encode_chunk, tmp_path, encoding)
    audio = aac_track(ffmpeg, tmp_path / "audio.m4a", audio_seconds) if audio_seconds else None
    runner = CommandLog()
    # WHEN they are stitched
    output = FfmpegStitcher(runner=runner).stitch(chunks, tmp_path / "final.mp4", audio=audio)
    # THEN the direct join wrote the output, its index in front of the media data
    assert joined_directly(runner)
    kinds = [kind for kind, *_ in atoms(output)]
    assert kinds.index("moov") < kinds.index("mdat")
    # AND every packet of every stream, and the whole media data, are those of ffmpeg's concat
    concat = todays_stitch(ffmpeg, chunks, tmp_path / "concat.mp4", audio)
    assert packet_listing(ffmpeg, output) == packet_listing(ffmpeg, concat)
    assert media_data(output) == media_data(concat)
    # AND so are the durations and edits its headers tell (a player shows them)
    assert header_times(output) == header_times(concat)


# -- what the join does not take ---------------------------------------------------------------------

def _another_profile(encode_chunk, ffmpeg, directory):
    chunks = chunks_of(encode_chunk, directory, Encoding(options=("-preset", "ultrafast")))
    encode_chunk(chunks[1], 10, 10, options=("-preset", "ultrafast", "-level:v", "3.0"))
    return chunks, None


def _audio(suffix: str, *options: str) -> Callable:
    def build(encode_chunk, ffmpeg, directory):
        audio = directory / f"audio{suffix}"
        subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=sample_rate=48000:duration=2",
                        *options, str(audio)], check=True)
        return chunks_of(encode_chunk, directory, Encoding()), audio
    return build


def _encoded(encoding: Encoding) -> Callable:
    def build(encode_chunk, ffmpeg, directory):
        return chunks_of(encode_chunk, directory, encoding), None
    return build


FALLBACKS = [
    pytest.param(_another_profile, id="a chunk of another H.264 level (another join key)"),
    pytest.param(_audio(".wav"), id="audio in a WAV file"),
    pytest.param(_audio(".aac", "-c:a", "aac"), id="ADTS AAC audio"),
    pytest.param(_audio(".mp4", "-c:a", "pcm_s16le"), id="raw PCM audio in an MP4"),
    pytest.param(_encoded(Encoding(codec="mpeg4")), id="mpeg4 chunks"),
    pytest.param(_encoded(Encoding(options=("-movflags", "frag_keyframe+empty_moov"))), id="fragmented MP4 chunks"),
]


@pytest.mark.parametrize("build", FALLBACKS)
def test_what_the_join_cannot_take_goes_to_ffmpegs_concat(tmp_path, encode_chunk, ffmpeg, build, caplog):
    # GIVEN chunks (and audio) the direct join cannot take
    chunks, audio = build(encode_chunk, ffmpeg, tmp_path)
    runner = CommandLog()
    # WHEN they are stitched
    with caplog.at_level(logging.INFO, logger="framefarm.stitch.direct"):
        output = FfmpegStitcher(runner=runner).stitch(chunks, tmp_path / "final.mp4", audio=audio)
    # THEN ffmpeg's concat joined them, and the log says why
    assert not joined_directly(runner)
    assert "joining with ffmpeg's concat" in caplog.text
    # AND the output is what concat writes
    concat = todays_stitch(ffmpeg, chunks, tmp_path / "concat.mp4", audio)
    assert packet_listing(ffmpeg, output) == packet_listing(ffmpeg, concat)


# -- failures lose nothing ---------------------------------------------------------------------------

class RecordingUpload(UploadWhenWritten):
    """An upload that only notes what the writer told it."""

    def __init__(self) -> None:
        super().__init__(None, "jobs/j/final.mp4")  # type: ignore[arg-type]
        self.calls: list[tuple[str, object]] = []

    def start(self, path: Path, settled_from: int | None) -> None:
        self.calls.append(("start", settled_from))

    def finish(self, written: bool) -> None:
        self.calls.append(("finish", written))


def leftovers(directory: Path, chunks: list[Path]) -> list[str]:
    """Files in ``directory`` that are not the chunks (nor their records)."""
    names = {chunk.name for chunk in chunks}
    return sorted(path.name for path in directory.iterdir()
                  if path.name not in names and not path.name.endswith(".media.json"))


def test_a_chunk_that_is_not_what_its_record_says_stops_the_join_naming_it(tmp_path, encode_chunk, ffmpeg):
    # GIVEN three chunks with records, the third's file of another profile than its record (the first's key) says
    chunks = chunks_of(encode_chunk, tmp_path, Encoding())
    encode_chunk(chunks[2], 20, 7, options=("-profile:v", "baseline"))
    records = [measure(chunk) for chunk in chunks]
    assert records[2].join_key != records[0].join_key
    records[2] = dataclasses.replace(records[2], join_key=records[0].join_key)
    before = [chunk.read_bytes() for chunk in chunks]
    upload, runner = RecordingUpload(), CommandLog()
    # WHEN they are stitched as they arrive, uploaded as written
    with pytest.raises(StitchError, match=r"chunk 2\.mp4 is not what its media record says"):
        FfmpegStitcher(runner=runner).stitch_arriving(Present(chunks, records), tmp_path / "final.mp4",
                                                      upload=upload)
    # THEN the join had started writing (the upload was begun) and was given up: the upload dropped,
    # no output and no partial file left, no concat run, and every chunk as it was
    assert [call for call, _ in upload.calls] == ["start", "finish"] and upload.calls[-1] == ("finish", False)
    assert joined_directly(runner)
    assert leftovers(tmp_path, chunks) == []
    assert [chunk.read_bytes() for chunk in chunks] == before


@pytest.mark.parametrize(("cut", "recorded", "mended"), [
    (0, True, False), (2, True, False), (0, False, False), (2, False, False), (2, True, True)],
    ids=["first chunk (before writing starts)", "last chunk (after it started)", "first chunk, no records",
         "last chunk, no records", "last chunk, its media data's size mended"])
def test_a_truncated_chunk_is_named(tmp_path, encode_chunk, ffmpeg, cut, recorded, mended):
    # GIVEN three chunks (index in front), one of them cut in its media data (and, if `mended`, its media
    # data box's size made that of what is left), with or without records (a record of the cut file's
    # size: the join then finds the cut itself)
    chunks = chunks_of(encode_chunk, tmp_path, Encoding(options=("-movflags", "+faststart")))
    records = [measure(chunk) for chunk in chunks]
    os.truncate(chunks[cut], chunks[cut].stat().st_size * 6 // 10)
    if mended:
        (_, offset, _, _), = [atom for atom in atoms(chunks[cut]) if atom[0] == "mdat"]
        with open(chunks[cut], "r+b") as stream:
            stream.seek(offset)
            stream.write((chunks[cut].stat().st_size - offset).to_bytes(4, "big"))
    records[cut] = dataclasses.replace(records[cut], size=chunks[cut].stat().st_size)
    # WHEN they are stitched
    stitcher = FfmpegStitcher(runner=CommandLog())
    with pytest.raises(StitchError, match=rf"^chunk {cut}\.mp4 cannot be joined: the file is truncated: "):
        if recorded:
            stitcher.stitch_arriving(Present(chunks, records), tmp_path / "final.mp4")
        else:
            stitcher.stitch(chunks, tmp_path / "final.mp4")
    # THEN nothing is left of the output
    assert leftovers(tmp_path, chunks) == []


def test_a_truncated_audio_track_is_named(tmp_path, encode_chunk, ffmpeg):
    # GIVEN three chunks and an audio track (index in front) cut in its media data
    chunks = chunks_of(encode_chunk, tmp_path, Encoding())
    audio = tmp_path / "audio.m4a"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=sample_rate=48000:duration=3",
                    "-c:a", "aac", "-movflags", "+faststart", str(audio)], check=True)
    os.truncate(audio, audio.stat().st_size * 6 // 10)
    # WHEN they are stitched, THEN the error names the audio track and says it is truncated
    with pytest.raises(StitchError, match=r"^the audio track audio\.m4a cannot be joined: the file is truncated: "):
        FfmpegStitcher(runner=CommandLog()).stitch(chunks, tmp_path / "final.mp4", audio=audio)
    # AND nothing is left of the output
    assert leftovers(tmp_path, [*chunks, audio]) == []


class ShimmedOs:
    """``os`` as the join module sees it, with a disk that fills up after ``room`` bytes and/or a kernel
    copy that fails with ``copy_errno``; it notes where the join writes back into the file (pwrite)."""

    def __init__(self, room: int | None = None, copy_errno: int | None = None) -> None:
        self.room, self.copy_errno = room, copy_errno
        self.copies_tried = 0
        self.rewritten: list[tuple[int, int]] = []  # (offset, length)

    def __getattr__(self, name: str):
        return getattr(os, name)

    def _take(self, wanted: int) -> int:
        if self.room is None:
            return wanted
        if self.room == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        granted = min(wanted, self.room)
        self.room -= granted
        return granted

    def write(self, fd: int, data) -> int:
        return os.write(fd, memoryview(data)[:self._take(len(data))])

    def pwrite(self, fd: int, data, offset: int) -> int:
        self.rewritten.append((offset, len(data)))
        return os.pwrite(fd, data, offset)

    def copy_file_range(self, source: int, target: int, count: int, offset_src: int | None = None,
                        offset_dst: int | None = None) -> int:
        self.copies_tried += 1
        if self.copy_errno is not None:
            raise OSError(self.copy_errno, os.strerror(self.copy_errno))
        return os.copy_file_range(source, target, self._take(count), offset_src, offset_dst)


def test_past_its_head_the_join_only_appends(tmp_path, encode_chunk, ffmpeg, monkeypatch):
    # GIVEN three recorded chunks and an audio track, and the join's writes watched
    chunks = chunks_of(encode_chunk, tmp_path, Encoding(options=("-preset", "medium")))
    audio = aac_track(ffmpeg, tmp_path / "audio.m4a", 3.0)
    shim = ShimmedOs()
    monkeypatch.setattr(join, "os", shim)
    upload = RecordingUpload()
    # WHEN they are stitched, uploaded as written
    FfmpegStitcher(runner=CommandLog()).stitch_arriving(Present(chunks, [measure(chunk) for chunk in chunks]),
                                                        tmp_path / "final.mp4", audio=audio, upload=upload)
    # THEN the upload was told from where bytes are only appended, and the join went back (for the
    # media data's size and the index) only before that point; the file was whole at the end
    (start, settled), finish = upload.calls
    assert start == "start" and isinstance(settled, int) and finish == ("finish", True)
    assert shim.rewritten and all(offset + length <= settled for offset, length in shim.rewritten)


@pytest.mark.parametrize("room", [10, 5000], ids=["in the head", "in the samples"])
def test_a_full_disk_stops_the_join_and_leaves_no_partial_file(tmp_path, encode_chunk, ffmpeg, monkeypatch, room):
    # GIVEN three recorded chunks, and a disk that fills up after `room` bytes of the output
    chunks = chunks_of(encode_chunk, tmp_path, Encoding())
    records = [measure(chunk) for chunk in chunks]
    monkeypatch.setattr(join, "os", ShimmedOs(room=room))
    upload = RecordingUpload()
    # WHEN they are stitched
    with pytest.raises(StitchError, match=r"^cannot write .*final\.mp4: No space left on device$"):
        FfmpegStitcher(runner=CommandLog()).stitch_arriving(
            Present(chunks, records), tmp_path / "final.mp4", upload=upload)
    # THEN no output nor partial file is left, and the upload is dropped
    assert leftovers(tmp_path, chunks) == []
    assert upload.calls[-1] == ("finish", False)


@pytest.mark.parametrize("copy_errno", [errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP], ids=errno.errorcode.get)
def test_without_the_kernel_copy_the_join_reads_and_writes_the_same_bytes(tmp_path, encode_chunk, ffmpeg,
                                                                          monkeypatch, copy_errno):
    # GIVEN three chunks and an audio track, and the file the join writes for them
    chunks = chunks_of(encode_chunk, tmp_path, Encoding())
    audio = aac_track(ffmpeg, tmp_path / "audio.m4a", 3.0)
    stitcher = FfmpegStitcher(runner=CommandLog())
    expected = stitcher.stitch(chunks, tmp_path / "kernel.mp4", audio=audio).read_bytes()
    # AND a kernel that cannot copy between these files
    shim = ShimmedOs(copy_errno=copy_errno)
    monkeypatch.setattr(join, "os", shim)
    # WHEN they are stitched again
    output = stitcher.stitch(chunks, tmp_path / "copied.mp4", audio=audio)
    # THEN the kernel copy was tried once, and reading and writing gave the very same file
    assert shim.copies_tried == 1
    assert output.read_bytes() == expected


@pytest.mark.parametrize("room", [-1, 0, 1, 7, 8], ids=lambda room: f"index{room:+d} bytes")
def test_an_index_that_does_not_fit_its_reserve_follows_the_media_data(tmp_path, encode_chunk, ffmpeg, monkeypatch,
                                                                       caplog, room):
    # GIVEN three chunks and an audio track, and the size of the index the join writes for them
    chunks = chunks_of(encode_chunk, tmp_path, Encoding(options=("-preset", "medium")))
    audio = aac_track(ffmpeg, tmp_path / "audio.m4a", 3.0)
    stitcher = FfmpegStitcher(runner=CommandLog())
    first = stitcher.stitch(chunks, tmp_path / "first.mp4", audio=audio)
    (index_size,) = [size for kind, _, _, size in atoms(first) if kind == "moov"]
    # AND space reserved for it `room` bytes more than it takes
    monkeypatch.setattr(direct, "index_reserve", lambda frames, audio: index_size + room)
    # WHEN they are stitched
    with caplog.at_level(logging.WARNING, logger="framefarm.stitch.direct"):
        output = stitcher.stitch(chunks, tmp_path / "final.mp4", audio=audio)
    # THEN the index is in front when it fits with nothing or a free box (8 bytes at least) beside it,
    # else after the media data, with a warning
    kinds = [kind for kind, *_ in atoms(output)]
    fits = room == 0 or room >= 8
    assert (kinds.index("moov") < kinds.index("mdat")) is fits
    assert ("did not fit the space reserved" in caplog.text) is not fits
    # AND either way the file plays as concat's does, with its media data
    concat = todays_stitch(ffmpeg, chunks, tmp_path / "concat.mp4", audio)
    assert packet_listing(ffmpeg, output) == packet_listing(ffmpeg, concat)
    assert media_data(output) == media_data(concat)


def open_files() -> set[str]:
    return {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")}


def test_a_join_that_fails_leaves_no_chunk_open(tmp_path, encode_chunk, ffmpeg, monkeypatch):
    # GIVEN three recorded chunks, and a disk that fills up just past the output's head, as chunk 0 is joined
    chunks = chunks_of(encode_chunk, tmp_path, Encoding())
    records = [measure(chunk) for chunk in chunks]
    before = open_files()
    monkeypatch.setattr(join, "os", ShimmedOs(room=join.INDEX_FIXED_BYTES + 8_000))
    # WHEN they are stitched, THEN the disk's error stops it, and no chunk (nor the output) stays open
    with pytest.raises(StitchError, match="No space left on device"):
        FfmpegStitcher(runner=CommandLog()).stitch_arriving(Present(chunks, records), tmp_path / "final.mp4")
    assert not {name for name in open_files() - before if name.endswith(".mp4")}
