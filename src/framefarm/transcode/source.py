"""What a source video holds, for planning a chunked transcode: frames, rate, size, keyframes, audio.

Read with ffmpeg alone (``stitch.probe``): the stream summary gives size, rate and audio; the packet
list (``-c copy``, no decoding) gives the exact frame count and where the keyframes are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from framefarm.errors import JobSpecError, StitchError
from framefarm.stitch.probe import Runner, packets, probe

NTSC = Fraction(1000, 1001)  # 29.97 is 30000/1001: printed rounded, used exactly


@dataclass(frozen=True)
class SourceInfo:
    """A source video: ``frames`` in display order, ``rate`` exact, ``keyframes`` as frame numbers."""

    path: Path
    frames: int
    rate: Fraction
    width: int
    height: int
    keyframes: tuple[int, ...]
    audio_codec: str | None = None
    size: int = 0

    @property
    def fps(self) -> float:
        return float(self.rate)

    def seek_time(self, frame: int) -> float:
        """Where an accurate seek to ``frame`` goes: half a frame before it, so rounding of the printed
        time can neither keep the frame before nor drop this one."""
        return max(0.0, float((frame - Fraction(1, 2)) / self.rate))

    def keyframe_before(self, frame: int) -> int:
        """The last keyframe at or before ``frame``: where decoding a chunk starting there begins."""
        return max((key for key in self.keyframes if key <= frame), default=0)


def exact_rate(fps: float) -> Fraction:
    """The frame rate as a fraction: NTSC rates (29.97, 59.94, 23.976) as N*1000/1001, others as printed."""
    ntsc = round(fps / NTSC)
    if ntsc and abs(fps - float(ntsc * NTSC)) < 0.005 and abs(fps - round(fps)) > 0.005:
        return ntsc * NTSC
    return Fraction(fps).limit_denominator(1001)


def probe_source(path: str | os.PathLike[str], *, ffmpeg: str | None = None, runner: Runner | None = None
                 ) -> SourceInfo:
    """The source's frames, rate and keyframes; JobSpecError saying what is wrong when it cannot be
    transcoded in chunks (no video, unknown rate, a variable frame rate)."""
    source = Path(path).expanduser().resolve()
    if not source.is_file():
        raise JobSpecError(f"source: no file at {source}")
    extra = {} if runner is None else {"runner": runner}
    try:
        info = probe(source, ffmpeg=ffmpeg, **extra)
        video = packets(source, "v", ffmpeg=ffmpeg, **extra) if info.video_codec else []
    except StitchError as exc:
        raise JobSpecError(f"source: {exc}") from None
    if not video or info.width is None or info.height is None:
        raise JobSpecError(f"source: {source} has no video stream")
    if not info.fps:
        raise JobSpecError(f"source: {source} states no frame rate")
    durations = {packet.duration for packet in video[:-1]}  # the last one may be cut short
    if len(durations) > 1:
        raise JobSpecError(f"source: {source} has a variable frame rate (frame durations {sorted(durations)[:4]}); "
                           "chunked transcodes need a constant one: convert it first (ffmpeg -fps_mode cfr)")
    in_order = sorted(video, key=lambda packet: packet.pts)  # display order (B-frames come decoded later)
    keyframes = tuple(index for index, packet in enumerate(in_order) if packet.keyframe)
    return SourceInfo(path=source, frames=len(video), rate=exact_rate(info.fps), width=info.width,
                      height=info.height, keyframes=keyframes, audio_codec=info.audio_codec,
                      size=source.stat().st_size)
