"""What a media file holds, read with ffmpeg alone (the imageio-ffmpeg wheel ships no ffprobe).

``probe`` parses the stream summary ``ffmpeg -i`` prints; ``packets`` lists every packet of one
stream through the ``framecrc`` muxer (exact counts, timestamps and durations, no decoding);
``decoded_audio_samples`` decodes the audio to count samples after edit lists are applied.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from framefarm.config import ffmpeg_path
from framefarm.errors import StitchError

Runner = Callable[..., subprocess.CompletedProcess[bytes]]

_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM = re.compile(r"Stream #\d+:\d+[^:]*: (Video|Audio): (.*)")
_SIZE = re.compile(r"^(\d+)x(\d+)")
_RATE = re.compile(r"^([\d.]+)(k?) (fps|tbr)$")
_SAMPLE_RATE = re.compile(r"^(\d+) Hz$")


@dataclass(frozen=True)
class MediaInfo:
    duration: float | None
    video_codec: str | None = None
    pix_fmt: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None

    def video_signature(self) -> tuple[object, ...]:
        """What must match between chunks for ``-c copy`` concatenation."""
        return (self.video_codec, self.width, self.height, self.fps, self.pix_fmt)


@dataclass(frozen=True)
class Packet:
    dts: int
    pts: int
    duration: int
    size: int
    keyframe: bool = True  # framecrc marks the others "F=0x0" (no flag: AV_PKT_FLAG_KEY)


def probe(path: str | Path, *, ffmpeg: str | None = None, runner: Runner = subprocess.run) -> MediaInfo:
    """Container duration and first video/audio stream parameters; StitchError if unreadable."""
    completed = runner([ffmpeg or ffmpeg_path(), "-hide_banner", "-nostdin", "-i", str(path)],
                       capture_output=True, timeout=60)
    text = completed.stderr.decode("utf-8", errors="replace")
    return parse_probe_output(text, path)


def parse_probe_output(text: str, path: str | Path) -> MediaInfo:
    if "Invalid data found" in text or "moov atom not found" in text or "Duration:" not in text:
        last = text.strip().splitlines()[-1] if text.strip() else "no output"
        raise StitchError(f"{path}: not a readable media file ({last})")
    fields: dict[str, object] = {"duration": None}
    match = _DURATION.search(text)
    if match:
        hours, minutes, seconds = match.groups()
        fields["duration"] = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    for kind, description in _STREAM.findall(text):
        parts = _top_level_split(description)
        codec = parts[0].split()[0] if parts else None
        if kind == "Video" and "video_codec" not in fields:
            fields["video_codec"] = codec
            fields["pix_fmt"] = parts[1].split("(")[0].strip() if len(parts) > 1 else None
            for part in parts:
                size = _SIZE.match(part.strip())
                if size and "width" not in fields:
                    fields["width"], fields["height"] = int(size.group(1)), int(size.group(2))
                rate = _RATE.match(part.strip().split(" (")[0])
                if rate and (rate.group(3) == "fps" or "fps" not in fields):
                    fields["fps"] = float(rate.group(1)) * (1000 if rate.group(2) else 1)
        elif kind == "Audio" and "audio_codec" not in fields:
            fields["audio_codec"] = codec
            for part in parts:
                rate = _SAMPLE_RATE.match(part.strip())
                if rate:
                    fields["sample_rate"] = int(rate.group(1))
    return MediaInfo(**fields)  # type: ignore[arg-type]


def packets(path: str | Path, stream: str = "v", *, ffmpeg: str | None = None,
            runner: Runner = subprocess.run) -> list[Packet]:
    """Every packet of the first ``stream`` ("v" or "a") in file order, without decoding."""
    completed = runner([ffmpeg or ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i",
                        str(path), "-map", f"0:{stream}:0", "-c", "copy", "-f", "framecrc", "-"],
                       capture_output=True, timeout=300)
    if completed.returncode != 0:
        raise StitchError(f"{path}: cannot list packets: {completed.stderr.decode(errors='replace').strip()}")
    return parse_framecrc(completed.stdout)


def parse_framecrc(output: bytes) -> list[Packet]:
    """The packets the ``framecrc`` muxer listed, one line each after its ``#`` header."""
    found = []
    for line in output.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        flags = next((int(field[2:], 16) for field in fields[6:] if field.startswith("F=")), 1)
        found.append(Packet(dts=int(fields[1]), pts=int(fields[2]), duration=int(fields[3]), size=int(fields[4]),
                            keyframe=bool(flags & 1)))
    return found


def decoded_audio_samples(path: str | Path, *, ffmpeg: str | None = None,
                          runner: Runner = subprocess.run) -> int:
    """Samples per channel after decoding (priming and padding removed by the container's edit list)."""
    completed = runner([ffmpeg or ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i",
                        str(path), "-map", "0:a:0", "-ac", "1", "-f", "s16le", "-"],
                       capture_output=True, timeout=300)
    if completed.returncode != 0:
        raise StitchError(f"{path}: cannot decode audio: {completed.stderr.decode(errors='replace').strip()}")
    return len(completed.stdout) // 2


def _top_level_split(text: str) -> Sequence[str]:
    """Split on commas outside parentheses/brackets: ``yuv420p(tv, bt709)`` stays one part."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if current:
        parts.append("".join(current).strip())
    return parts
