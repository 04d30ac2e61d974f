"""Checking a chunked transcode at its seams: is every output frame the source frame it should be?

For each seam (the first frame of every chunk but the first), the output frames either side of it are
compared with the source frames around the same place: each must look most like its own source frame
(PSNR per frame, on a small grey picture), not its neighbour's, which a dropped or repeated frame
would make it. Frames are picked by number as decoded from the start (``select``), never by seeking,
so the check does not share the transcode's way of finding frames. With the frame counts, that says
the output is frame-exact where chunks meet.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from framefarm.config import ffmpeg_path
from framefarm.errors import StitchError
from framefarm.stitch.probe import Runner, packets

WIDTH, HEIGHT = 256, 144  # the grey picture frames are compared on
NEIGHBOURS = 2  # source frames compared on each side of an output frame's own


@dataclass(frozen=True)
class FrameMatch:
    frame: int  # the output frame
    best: int  # the source frame it looks most like
    psnr: float  # against its own source frame, dB (inf: identical)

    @property
    def ok(self) -> bool:
        return self.best == self.frame


@dataclass(frozen=True)
class SeamReport:
    source_frames: int
    output_frames: int
    seams: tuple[int, ...]
    matches: tuple[FrameMatch, ...]

    @property
    def ok(self) -> bool:
        return self.source_frames == self.output_frames and all(match.ok for match in self.matches)

    def failures(self) -> list[FrameMatch]:
        return [match for match in self.matches if not match.ok]

    def summary(self) -> str:
        """One line: the verdict, the counts, and the first misplaced frame or the worst PSNR."""
        counts = f"{self.output_frames} frames out of {self.source_frames}"
        if self.ok:
            worst = min((match.psnr for match in self.matches), default=math.inf)
            return (f"frame-exact: {counts}; at each of {len(self.seams)} seams the frames either side match "
                    f"their own source frames (PSNR {worst:.1f} dB at worst)")
        problems = [] if self.source_frames == self.output_frames else ["frame counts differ"]
        problems += [f"output frame {match.frame} matches source frame {match.best} ({match.best - match.frame:+d})"
                     for match in self.failures()[:3]]
        return f"NOT frame-exact: {counts}; " + "; ".join(problems)


def verify_seams(source: str | Path, output: str | Path, seams: Iterable[int], *, ffmpeg: str | None = None,
                 runner: Runner = subprocess.run) -> SeamReport:
    """Compare the output frames either side of every seam (a chunk's first frame) with the source's."""
    ffmpeg = ffmpeg or ffmpeg_path()
    seams = tuple(sorted(set(seams)))
    source_count = len(packets(source, "v", ffmpeg=ffmpeg, runner=runner))
    output_count = len(packets(output, "v", ffmpeg=ffmpeg, runner=runner))
    checked = sorted({frame for seam in seams for frame in (seam - 1, seam) if 0 <= frame < output_count})
    around = sorted({near for frame in checked for near in range(frame - NEIGHBOURS, frame + NEIGHBOURS + 1)
                     if 0 <= near < source_count})
    theirs = grey_frames(source, around, ffmpeg=ffmpeg, runner=runner)
    ours = grey_frames(output, checked, ffmpeg=ffmpeg, runner=runner)
    matches = []
    for frame in checked:
        candidates = [near for near in range(frame - NEIGHBOURS, frame + NEIGHBOURS + 1) if near in theirs]
        errors = {near: mean_squared_error(ours[frame], theirs[near]) for near in candidates}
        own = errors.get(frame, math.inf)
        best = frame if own <= min(errors.values(), default=math.inf) else min(errors, key=errors.__getitem__)
        matches.append(FrameMatch(frame=frame, best=best, psnr=psnr(own)))
    return SeamReport(source_frames=source_count, output_frames=output_count, seams=seams, matches=tuple(matches))


def grey_frames(path: str | Path, frames: Sequence[int], *, ffmpeg: str, runner: Runner = subprocess.run
                ) -> dict[int, bytes]:
    """The given frames (numbers in decoding order from the start) as WIDTH x HEIGHT grey pictures."""
    if not frames:
        return {}
    wanted = "+".join(f"eq(n,{frame})" for frame in frames)
    completed = runner([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
                        "-vf", f"select='{wanted}',scale={WIDTH}:{HEIGHT},format=gray", "-fps_mode", "passthrough",
                        "-f", "rawvideo", "-"], capture_output=True, timeout=3600)
    if completed.returncode != 0:
        raise StitchError(f"{path}: cannot decode frames: {completed.stderr.decode(errors='replace').strip()}")
    size = WIDTH * HEIGHT
    pictures = [completed.stdout[offset:offset + size] for offset in range(0, len(completed.stdout), size)]
    return dict(zip(frames, pictures, strict=False))


def mean_squared_error(first: bytes, second: bytes) -> float:
    return sum((a - b) * (a - b) for a, b in zip(first, second, strict=True)) / len(first)


def psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10 * math.log10(255 * 255 / mse)
