"""A chunked transcode as a job: chunks of frames, each decoding its own range of the source exactly.

Each chunk's command seeks the source accurately (``-ss`` before ``-i``, half a frame before its first
frame: ffmpeg decodes from the keyframe before and drops what precedes the position) and encodes
exactly ``-frames:v N`` frames, video only, timestamps passed through (no frame duplicated or dropped
to fit a rate). The source is the job's input ``source`` (``framefarm.inputs``): a path locally, a
presigned URL on a remote worker, read by byte ranges. Over HTTP a chunk asks for ranges of at most
``HTTP_REQUEST_BYTES`` on one kept-alive connection: ffmpeg's default, one open-ended range per seek,
lets the server send far past what it reads (TCP buffers fill before it closes: measured, each sixth
of a 39 MB source cost 0.30-0.54 of the file; with 2 MiB ranges 0.21-0.32). The audio is taken once,
from the source, when the chunks are stitched: copied when the output can hold it as it is, else
encoded once to AAC.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from framefarm.errors import JobSpecError
from framefarm.spec import JobSpec, frame_ranges, new_job_id
from framefarm.transcode.source import SourceInfo

SOURCE_INPUT = "source"
COPIED_AUDIO = frozenset({"aac", "mp3", "alac"})  # what an .m4a audio track holds as it is
X26X = frozenset({"libx264", "libx265"})
QUIET = ["-hide_banner", "-nostdin", "-loglevel", "error"]
HTTP_REQUEST_BYTES = 1024 * 1024
HTTP_HEADER_BYTES = 256 * 1024  # the first requests, while ffmpeg reads the container's index
# ffmpeg's http options, for a source read over HTTP only (ffmpeg refuses them for a file)
HTTP_READS = ["-request_size", str(HTTP_REQUEST_BYTES), "-initial_request_size", str(HTTP_HEADER_BYTES),
              "-multiple_requests", "1", "-reconnect", "1", "-reconnect_on_network_error", "1"]


def chunk_frames(source: SourceInfo, *, chunks: int | None = None, seconds: float | None = None
                 ) -> list[tuple[int, int]]:
    """(start_frame, frame_count) of each chunk: ``chunks`` of even size, or ``seconds`` of video each."""
    if (chunks is None) == (seconds is None):
        raise JobSpecError("transcode: give exactly one of --chunks or --seconds")
    if seconds is not None:
        if not seconds > 0:
            raise JobSpecError(f"--seconds: must be more than 0 (got {seconds:g})")
        return frame_ranges(source.frames, frames_per_chunk=max(1, math.floor(seconds * source.fps)))
    assert chunks is not None
    if not 1 <= chunks <= source.frames:
        raise JobSpecError(f"--chunks: must be 1 to the source's {source.frames} frames (got {chunks})")
    return frame_ranges(source.frames, chunks=chunks)


def encoder_arguments(codec: str, crf: float | None, preset: str | None) -> list[str]:
    arguments = ["-c:v", codec]
    if crf is not None:
        arguments += ["-crf", f"{crf:g}"] + (["-b:v", "0"] if codec.startswith("libvpx") else [])
    if preset is not None and codec in X26X:
        arguments += ["-preset", preset]
    return arguments


def transcode_spec(source: SourceInfo, *, source_url: str | None = None, output: str | Path | None = None,
                   chunks: int | None = None, seconds: float | None = None, codec: str = "libx264",
                   crf: float | None = 23, preset: str | None = "medium", job_id: str | None = None,
                   over_http: bool = False) -> JobSpec:
    """The job that transcodes ``source`` in chunks. ``source_url`` is where workers read it (default: its
    path, uploaded at submit time when chunks run elsewhere); ``over_http``: they read it over HTTP (a
    remote backend's presigned URL). The audio is read from the local file, at stitch time."""
    suffix = Path(output).suffix if output is not None else ".mp4"
    encoder = encoder_arguments(codec, crf, preset)
    chunk_list: list[dict[str, Any]] = []
    for chunk_id, (start, count) in enumerate(chunk_frames(source, chunks=chunks, seconds=seconds)):
        seek = ["-ss", f"{source.seek_time(start):.6f}"] if start else []
        output_file = f"chunks/{chunk_id:05d}{suffix}"
        reads = HTTP_READS if over_http else []
        command = ["{ffmpeg}", *QUIET, *reads, *seek, "-i", "{input.source}", "-map", "0:v:0", "-frames:v", str(count),
                   "-an", "-sn", "-dn", "-fps_mode", "passthrough", *encoder, output_file]
        chunk_list.append({"id": chunk_id, "start_frame": start, "frame_count": count, "output_file": output_file,
                           "command": command})
    audio = None
    if source.audio_codec is not None:
        how = ["-c:a", "copy"] if source.audio_codec in COPIED_AUDIO else ["-c:a", "aac", "-b:a", "192k"]
        audio = {"command": ["{ffmpeg}", *QUIET, "-i", str(source.path), "-map", "0:a:0", "-vn", *how, "-y",
                                 "audio.m4a"],
                 "output_file": "audio.m4a"}
    return JobSpec.model_validate({
        "id": job_id or new_job_id(f"transcode-{source.path.stem}"),
        "metadata": {"total_frames": source.frames, "fps": source.fps, "width": source.width,
                     "height": source.height},
        "chunks": chunk_list,
        "audio": audio,
        "output": None if output is None else str(output),
        "inputs": {SOURCE_INPUT: source_url or str(source.path)},
    })
