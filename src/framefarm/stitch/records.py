"""Media records: what a chunk video holds, measured once where it was rendered.

The local adapter writes ``<output>.media.json`` beside each chunk output it commits (and a worker
stores it as ``jobs/<job>/media/<00042>.json``): codec, size, frame rate, pixel format, duration,
frame count, the file's byte size, and its join key (``stitch.mp4``: equal keys, chunks the direct
join takes together). The stitcher checks the chunks from these records before a byte of them is
downloaded, and probes only a chunk with no record (an older worker's), a record of another file
(its size differs), or a record that disagrees with the first chunk's. The frame counts size the
space reserved for the output's index, so the video is written once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from framefarm.config import ffmpeg_path
from framefarm.errors import FramefarmError, StitchError
from framefarm.stitch.mp4.source import join_key
from framefarm.stitch.probe import MediaInfo, Runner, parse_framecrc, parse_probe_output

MEDIA_SUFFIX = ".media.json"  # a video's record on disk: beside it, named like it with this added

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaRecord:
    """A chunk video's stream parameters, frame count and byte size."""

    info: MediaInfo
    frames: int
    size: int
    join_key: str | None = None  # equal between chunks the direct join can take together (None: not one)

    def to_json(self) -> str:
        return json.dumps({"info": asdict(self.info), "frames": self.frames, "size": self.size,
                           "join_key": self.join_key}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> MediaRecord | None:
        """The record in ``text``, or None when it is not one (then the chunk is probed instead)."""
        try:
            data = json.loads(text)
            key = data.get("join_key")
            record = cls(info=MediaInfo(**data["info"]), frames=int(data["frames"]), size=int(data["size"]),
                         join_key=key if isinstance(key, str) else None)
        except (ValueError, TypeError, KeyError):
            return None
        return record


def media_path(path: str | os.PathLike[str]) -> Path:
    """Where the record of the video at ``path`` lives: beside it."""
    path = Path(path)
    return path.with_name(path.name + MEDIA_SUFFIX)


def measure(path: str | os.PathLike[str], *, ffmpeg: str | None = None,
            runner: Runner = subprocess.run) -> MediaRecord:
    """Read a video's record with one ffmpeg run: the stream summary, and every video packet listed
    by the ``framecrc`` muxer (no decoding). StitchError when ffmpeg cannot read it."""
    completed = runner([ffmpeg or ffmpeg_path(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0",
                        "-c", "copy", "-f", "framecrc", "-"], capture_output=True, timeout=300)
    info = parse_probe_output(completed.stderr.decode("utf-8", errors="replace"), Path(path))
    if completed.returncode != 0:
        last = completed.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:]
        raise StitchError(f"{path}: cannot list its video packets ({' '.join(last) or 'no output'})")
    return MediaRecord(info=info, frames=len(parse_framecrc(completed.stdout)), size=os.path.getsize(path),
                       join_key=join_key(path))


def write_record(path: str | os.PathLike[str], *, ffmpeg: str | None = None,
                 runner: Runner = subprocess.run) -> MediaRecord | None:
    """Measure a committed chunk output and write its record beside it (atomically). None, and no
    record, when it is no video ffmpeg can read: the stitcher then probes it and names it."""
    try:
        record = measure(path, ffmpeg=ffmpeg, runner=runner)
    except (FramefarmError, OSError, subprocess.SubprocessError) as exc:
        logger.debug("no media record for %s: %s", path, exc)
        return None
    target = media_path(path)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(record.to_json())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    return record


def read_record(path: str | os.PathLike[str]) -> MediaRecord | None:
    """The record beside ``path`` when there is one of this very file (the same byte size); else None."""
    try:
        record = MediaRecord.from_json(media_path(path).read_bytes())
        size = os.path.getsize(path)
    except OSError:
        return None
    return record if record is not None and record.size == size else None
