"""FfmpegStitcher: joins video-only chunks with the concat demuxer and ``-c copy`` (no re-encode).

Inputs are checked first — each exists and matches the first in codec, size, frame rate and pixel
format — so a bad chunk is named before ffmpeg runs. Audio, if any, is one separately rendered track
muxed in at this step: per-chunk AAC would add priming samples and break timestamps at every seam.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from framefarm.config import ffmpeg_path
from framefarm.errors import StitchError
from framefarm.stitch.probe import MediaInfo, Runner, probe


class FfmpegStitcher:
    """``stitch(inputs, output, audio=None)``: inputs in playback order, output written atomically."""

    def __init__(self, ffmpeg: str | None = None, *, runner: Runner = subprocess.run,
                 probe_workers: int = 4, timeout: float | None = 3600) -> None:
        self._ffmpeg = ffmpeg
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
        if not inputs:
            raise StitchError("no chunk outputs to stitch")
        for path in inputs:
            if not Path(path).is_file():
                raise StitchError(f"chunk output missing: {path}")
            if Path(path).stat().st_size == 0:
                raise StitchError(f"chunk output is empty: {path}")
        with ThreadPoolExecutor(max_workers=self._probe_workers) as pool:
            infos = list(pool.map(lambda p: probe(p, ffmpeg=self.ffmpeg, runner=self._runner), inputs))
        first = infos[0]
        if first.video_codec is None:
            raise StitchError(f"chunk has no video stream: {inputs[0]}")
        names = ("codec", "size", "frame rate", "pixel format")
        for path, info in zip(inputs[1:], infos[1:], strict=True):
            if info.video_signature() != first.video_signature():
                ours, theirs = _describe(info), _describe(first)
                different = [n for n in names if ours[n] != theirs[n]]
                detail = ", ".join(f"{n} {ours[n]} (first chunk: {theirs[n]})" for n in different)
                raise StitchError(f"chunk {path} cannot be joined with {inputs[0]}: {detail}")
        return first

    def stitch(self, inputs: Sequence[Path], output: Path, audio: Path | None = None) -> Path:
        inputs = [Path(p).resolve() for p in inputs]
        output = Path(output).resolve()
        self.validate(inputs)
        if audio is not None:
            audio = Path(audio).resolve()
            if not audio.is_file():
                raise StitchError(f"audio track missing: {audio}")
            if probe(audio, ffmpeg=self.ffmpeg, runner=self._runner).audio_codec is None:
                raise StitchError(f"audio track has no audio stream: {audio}")
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(f".{output.stem}.partial{output.suffix}")
        with tempfile.TemporaryDirectory(prefix="framefarm-stitch-") as scratch:
            listing = Path(scratch) / "chunks.txt"
            listing.write_text("".join(f"file {_concat_quote(str(p))}\n" for p in inputs), encoding="utf-8")
            command = [self.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                       "-f", "concat", "-safe", "0", "-i", str(listing)]
            if audio is not None:
                command += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0"]
            else:
                command += ["-map", "0:v:0"]
            command += ["-c", "copy", "-movflags", "+faststart", str(partial)]
            try:
                completed = self._runner(command, capture_output=True, timeout=self._timeout)
            except subprocess.TimeoutExpired:
                partial.unlink(missing_ok=True)
                raise StitchError(f"ffmpeg concat took longer than {self._timeout} s") from None
        if completed.returncode != 0:
            partial.unlink(missing_ok=True)
            message = completed.stderr.decode("utf-8", errors="replace").strip().splitlines()
            raise StitchError(f"ffmpeg concat exited {completed.returncode}: {' | '.join(message[-3:])}")
        os.replace(partial, output)
        return output


def _describe(info: MediaInfo) -> dict[str, str]:
    return {"codec": str(info.video_codec), "size": f"{info.width}x{info.height}",
            "frame rate": f"{info.fps:g}" if info.fps else "unknown", "pixel format": str(info.pix_fmt)}


def _concat_quote(path: str) -> str:
    """Quote a path for the concat demuxer's list file: ' becomes '\\''."""
    return "'" + path.replace("'", "'\\''") + "'"
