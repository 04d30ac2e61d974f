"""The object key layout, shared by every storage backend and every worker.

    jobs/<job>/spec.json
    jobs/<job>/assets.zip
    jobs/<job>/inputs/<NAME><.ext>  source media a local file given as an input became (``framefarm.inputs``)
    jobs/<job>/chunks/<00042>.<ext>
    jobs/<job>/media/<00042>.json   what the worker measured of that chunk's video (``stitch.records``)
    jobs/<job>/logs/<00042>.attempt<N>.<stdout|stderr>.log
    jobs/<job>/attempts/<00042>.attempt<N>.json   an attempt a later one replaced in the chunk's record
    jobs/<job>/cancel               present while the job is cancelled: remote workers stop early
    jobs/<job>/<video>.mp4          the stitched video, when `framefarm stitch --upload` put it back
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

#: What a stitched video may be called: the audio track (``audio.m4a``), assets and markers are not videos.
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


def spec_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}spec.json"


def assets_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}assets.zip"


def inputs_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}inputs/"


def input_key(job_id: str, name: str, filename: str) -> str:
    """Where the input ``name`` uploaded from the file ``filename`` goes (its extension kept, for ffmpeg)."""
    return f"{inputs_prefix(job_id)}{name}{PurePosixPath(filename).suffix}"


def chunks_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}chunks/"


def chunk_key(job_id: str, chunk_id: int, output_file: str) -> str:
    suffix = PurePosixPath(output_file).suffix or ".bin"
    return f"{chunks_prefix(job_id)}{chunk_id:05d}{suffix}"


def media_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}media/"


def chunk_media_key(job_id: str, chunk_id: int) -> str:
    """The key of a chunk output's media record (not under ``chunks/``, which holds the outputs alone)."""
    return f"{media_prefix(job_id)}{chunk_id:05d}.json"


def logs_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}logs/"


def log_key(job_id: str, chunk_id: int, attempt: int, stream: str) -> str:
    return f"{logs_prefix(job_id)}{chunk_id:05d}.attempt{attempt}.{stream}.log"


def attempts_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}attempts/"


def attempt_key(job_id: str, chunk_id: int, attempt: int) -> str:
    return f"{attempts_prefix(job_id)}{chunk_id:05d}.attempt{attempt}.json"


def cancel_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}cancel"


def output_key(job_id: str, filename: str) -> str:
    return f"{job_prefix(job_id)}{PurePosixPath(filename).name}"


def is_output_key(job_id: str, key: str) -> bool:
    """True for a stitched video put back next to the job's spec: a video at the top of the job's
    prefix (not a chunk or log below it, nor the spec, assets, cancel marker or audio track)."""
    prefix = job_prefix(job_id)
    name = key[len(prefix):]
    return key.startswith(prefix) and "/" not in name and PurePosixPath(name).suffix.lower() in VIDEO_SUFFIXES


def video_keys(job_id: str, keys: Iterable[str], recorded_output: str | None = None) -> list[str]:
    """The job's stitched videos among ``keys``, sorted; the one named like ``recorded_output`` (the
    job record's output, which ``stitch --upload`` puts back under its own name) first."""
    videos = sorted(key for key in keys if is_output_key(job_id, key))
    if recorded_output is not None:
        recorded = output_key(job_id, recorded_output)
        videos.sort(key=lambda key: key != recorded)  # stable: the rest stay sorted
    return videos
