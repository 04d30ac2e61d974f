"""The object key layout, shared by every storage backend and every worker.

    jobs/<job>/spec.json
    jobs/<job>/assets.zip
    jobs/<job>/chunks/<00042>.<ext>
    jobs/<job>/logs/<00042>.attempt<N>.<stdout|stderr>.log
    jobs/<job>/cancel               present while the job is cancelled: remote workers stop early
    jobs/<job>/<video>.mp4          the stitched video, when `framefarm stitch --upload` put it back
"""

from __future__ import annotations

from pathlib import PurePosixPath


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


def spec_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}spec.json"


def assets_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}assets.zip"


def chunks_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}chunks/"


def chunk_key(job_id: str, chunk_id: int, output_file: str) -> str:
    suffix = PurePosixPath(output_file).suffix or ".bin"
    return f"{chunks_prefix(job_id)}{chunk_id:05d}{suffix}"


def logs_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}logs/"


def log_key(job_id: str, chunk_id: int, attempt: int, stream: str) -> str:
    return f"{logs_prefix(job_id)}{chunk_id:05d}.attempt{attempt}.{stream}.log"


def cancel_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}cancel"


def output_key(job_id: str, filename: str) -> str:
    return f"{job_prefix(job_id)}{PurePosixPath(filename).name}"


def is_output_key(job_id: str, key: str) -> bool:
    """True for a stitched video put back next to the job's spec (not a chunk, log, spec or marker)."""
    prefix = job_prefix(job_id)
    return (key.startswith(prefix) and "/" not in key[len(prefix):]
            and key not in (spec_key(job_id), assets_key(job_id), cancel_key(job_id)))
