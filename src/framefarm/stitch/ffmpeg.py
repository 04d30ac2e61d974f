"""FfmpegStitcher: joins video-only chunks without re-encoding them.

Chunks the MP4 join can take (MP4 files of H.264, HEVC or VP9 with the same sample description, the
usual case: ``stitch.direct``) are joined by copying their samples, with the bytes and timestamps
ffmpeg's concat would write; any others by ffmpeg's concat demuxer with ``-c copy``.

Inputs are checked first — each exists and matches the first in codec, size, frame rate and pixel
format — so a bad chunk is named before ffmpeg runs. The check reads each chunk's media record
(``stitch.records``, written where the chunk was rendered) and probes only a chunk without one, or
whose record disagrees. Audio, if any, is one separately rendered track muxed in at this step:
per-chunk AAC would add priming samples and break timestamps at every seam.

The output is written once: its index (``moov``) goes in space reserved at the front (sized from
the frame counts; ffmpeg's ``-moov_size``) instead of a second pass that rewrites the whole file
for ``+faststart``; only when ffmpeg joins chunks whose frame count cannot be told does it make that
pass. ``stitch_arriving`` joins chunks that are still downloading, each once it has landed (ffmpeg
reads each from a source that answers then, see ``stitch.feed``).
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from framefarm.config import ffmpeg_path
from framefarm.errors import StitchError
from framefarm.stitch import direct
from framefarm.stitch.arriving import Arriving, Present
from framefarm.stitch.probe import MediaInfo, Runner, probe
from framefarm.stitch.records import MediaRecord, read_record
from framefarm.storage.growing import UploadWhenWritten

# The reserved index's size: a fixed part (headers, sample descriptions, edit lists) and, per packet,
# the worst case of its entries (size 4, time-to-sample 8, composition offset 8, sync sample 4, chunk
# offset 8, sample-to-chunk 12 = 44 bytes); ffmpeg writes about 5 per video frame in practice.
MOOV_FIXED_BYTES = 64 * 1024
MOOV_BYTES_PER_PACKET = 48
MOOV_HEAD_SLACK = 64 * 1024  # the file type box and the media data's header before the reserve, with room
AAC_FRAME_SAMPLES = 1024
MIN_AUDIO_PACKETS_PER_SECOND = 50  # codecs with smaller packets than AAC's 1024 samples at 48 kHz


@dataclass(frozen=True)
class _Media:
    info: MediaInfo
    frames: int | None  # from the chunk's record; None when it was probed
    recorded: bool


class FfmpegStitcher:
    """``stitch(inputs, output, audio=None)``: inputs in playback order, output written atomically."""

    def __init__(self, ffmpeg: str | None = None, *, runner: Runner = subprocess.run,
                 probe_workers: int = 4, timeout: float | None = 3600, direct: bool = True) -> None:
        self._ffmpeg = ffmpeg
        self._direct = direct
        self._runner = runner
        self._probe_workers = probe_workers
        self._timeout = timeout

    @property
    def ffmpeg(self) -> str:
        if self._ffmpeg is None:
            self._ffmpeg = ffmpeg_path()
        return self._ffmpeg

    def validate(self, inputs: Sequence[Path]) -> MediaInfo:
        """Check every input exists and can be concatenated with the first; returns the first's info."""
        present = self._present([Path(p) for p in inputs])
        return self._checked(present.paths, present.records, present.wait)[0].info

    def stitch(self, inputs: Sequence[Path], output: Path, audio: Path | None = None) -> Path:
        present = self._present([Path(p).resolve() for p in inputs])
        media = self._checked(present.paths, present.records, present.wait)
        return self._join(present, media, Path(output).resolve(), audio)

    def stitch_arriving(self, arriving: Arriving, output: Path, audio: Path | None = None, *,
                        upload: UploadWhenWritten | None = None) -> Path:
        """Like ``stitch``, over chunks still arriving: checked from their records, and joined as they
        land; ``upload`` sends the video to a store as it is written (``storage.growing``)."""
        media = self._checked(arriving.paths, arriving.records, arriving.wait)
        return self._join(arriving, media, Path(output).resolve(), audio, upload)

    def _present(self, inputs: Sequence[Path]) -> Present:
        for path in inputs:
            if not path.is_file():
                raise StitchError(f"chunk output missing: {path}")
            if path.stat().st_size == 0:
                raise StitchError(f"chunk output is empty: {path}")
        return Present(inputs, [read_record(path) for path in inputs])

    def _checked(self, paths: Sequence[Path], records: Sequence[MediaRecord | None],
                 fetch: Callable[[int], Path]) -> list[_Media]:
        """Every chunk's media, from its record or a probe; a record that disagrees with the first
        chunk's is checked by probing the file before the chunk is refused."""
        if not paths:
            raise StitchError("no chunk outputs to stitch")
        known = {index: _Media(record.info, record.frames, True) for index, record in enumerate(records)
                 if record is not None}
        media = self._probed(known, [index for index in range(len(paths)) if index not in known], fetch)
        if media[0].info.video_codec is None:
            raise StitchError(f"chunk has no video stream: {paths[0]}")
        while (bad := _first_mismatch(media)) is not None:
            recorded = [index for index in (0, bad) if media[index].recorded]
            if not recorded:
                raise StitchError(f"chunk {paths[bad]} cannot be joined with {paths[0]}: "
                                  f"{_difference(media[bad].info, media[0].info)}")
            media = self._probed(dict(enumerate(media)), recorded, fetch)
        return media

    def _probed(self, known: dict[int, _Media], indices: list[int], fetch: Callable[[int], Path]) -> list[_Media]:
        """``known`` with the chunks at ``indices`` probed (in parallel), in chunk order."""
        def probed(index: int) -> _Media:
            return _Media(probe(fetch(index), ffmpeg=self.ffmpeg, runner=self._runner), None, False)

        found = dict(known)
        if indices:
            with ThreadPoolExecutor(max_workers=self._probe_workers) as pool:
                found.update(zip(indices, pool.map(probed, indices), strict=True))
        return [found[index] for index in sorted(found)]

    def _join(self, arriving: Arriving, media: Sequence[_Media], output: Path, audio: Path | None,
              upload: UploadWhenWritten | None = None) -> Path:
        """The direct join when it can take the chunks (``stitch.direct``), else ffmpeg's concat."""
        if audio is not None:
            audio = Path(audio).resolve()
            if not audio.is_file():
                raise StitchError(f"audio track missing: {audio}")
        output.parent.mkdir(parents=True, exist_ok=True)
        if self._direct:
            joined = direct.join(arriving, [item.frames for item in media], output, audio, upload=upload)
            if joined is not None:
                return joined
        audio_info = None
        if audio is not None:  # probed only for ffmpeg's concat: the direct join reads the track itself
            audio_info = probe(audio, ffmpeg=self.ffmpeg, runner=self._runner)
            if audio_info.audio_codec is None:
                raise StitchError(f"audio track has no audio stream: {audio}")
        sources = [arriving.source(index) for index in range(len(arriving.paths))]
        return self._concat(sources, media, output, audio, audio_info, upload)

    def _concat(self, sources: Sequence[str], media: Sequence[_Media], output: Path, audio: Path | None,
                audio_info: MediaInfo | None, upload: UploadWhenWritten | None = None) -> Path:
        reserve = moov_reserve(media, audio_info)
        partial = output.with_name(f".{output.stem}.partial{output.suffix}")
        with tempfile.TemporaryDirectory(prefix="framefarm-stitch-") as scratch:
            listing = Path(scratch) / "chunks.txt"
            listing.write_text("".join(f"file {_concat_quote(source)}\n" for source in sources), encoding="utf-8")
            # -xerror: an input that cannot be opened or read stops ffmpeg, which would otherwise end the
            # video there and exit 0 (a chunk gone since the check, or one whose download failed).
            command = [self.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-xerror", "-y",
                       "-protocol_whitelist", "file,http,tcp", "-f", "concat", "-safe", "0", "-i", str(listing)]
            if audio is not None:
                command += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0"]
            else:
                command += ["-map", "0:v:0"]
            command += ["-c", "copy", *(["-moov_size", str(reserve)] if reserve else ["-movflags", "+faststart"]),
                        str(partial)]
            if upload is not None:  # past the reserved index and the media data's header, ffmpeg only appends
                upload.start(partial, None if reserve is None else reserve + MOOV_HEAD_SLACK)
            try:
                completed = self._runner(command, capture_output=True, timeout=self._timeout)
            except subprocess.TimeoutExpired:
                completed = None
            except BaseException:  # ffmpeg did not run (not found, interrupted): no upload left open
                if upload is not None:
                    upload.finish(written=False)
                raise
            try:
                if upload is not None:
                    upload.finish(written=completed is not None and completed.returncode == 0)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        if completed is None:
            partial.unlink(missing_ok=True)
            raise StitchError(f"ffmpeg concat took longer than {self._timeout} s")
        if completed.returncode != 0:
            partial.unlink(missing_ok=True)
            message = completed.stderr.decode("utf-8", errors="replace").strip().splitlines()
            raise StitchError(f"ffmpeg concat exited {completed.returncode}: {' | '.join(message[-3:])}")
        os.replace(partial, output)
        return output


def moov_reserve(media: Sequence[_Media], audio: MediaInfo | None) -> int | None:
    """Bytes to reserve at the front for the output's index, or None when a chunk's frame count cannot
    be told (then the stitch moves the index to the front in a second pass, as ``+faststart`` does)."""
    packets = 0
    for item in media:
        if item.frames is not None:
            packets += item.frames
        elif item.info.duration is not None and item.info.fps:
            packets += math.ceil(item.info.duration * item.info.fps) + 1
        else:
            return None
    if audio is not None:
        if audio.duration is None:
            return None
        per_second = max((audio.sample_rate or 0) / AAC_FRAME_SAMPLES, MIN_AUDIO_PACKETS_PER_SECOND)
        packets += math.ceil(audio.duration * per_second * 2)  # twice: the codec's frames may be smaller
    return MOOV_FIXED_BYTES + MOOV_BYTES_PER_PACKET * packets


def _first_mismatch(media: Sequence[_Media]) -> int | None:
    first = media[0].info.video_signature()
    return next((index for index, item in enumerate(media) if item.info.video_signature() != first), None)


def _difference(info: MediaInfo, first: MediaInfo) -> str:
    ours, theirs = _describe(info), _describe(first)
    different = [name for name in ours if ours[name] != theirs[name]]
    return ", ".join(f"{name} {ours[name]} (first chunk: {theirs[name]})" for name in different)


def _describe(info: MediaInfo) -> dict[str, str]:
    return {"codec": str(info.video_codec), "size": f"{info.width}x{info.height}",
            "frame rate": f"{info.fps:g}" if info.fps else "unknown", "pixel format": str(info.pix_fmt)}


def _concat_quote(path: str) -> str:
    """Quote a path for the concat demuxer's list file: ' becomes '\\''."""
    return "'" + path.replace("'", "'\\''") + "'"
