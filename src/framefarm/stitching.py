"""Stitch a stored job: check that every chunk is done and no runner holds the job, join the chunk
outputs (in the job directory, or downloaded from storage), and mark the job ``completed`` with its video.
"""

from __future__ import annotations

import time
from pathlib import Path

from framefarm.errors import JobStateError, id_list
from framefarm.manager import JobManager
from framefarm.options import ExecutionOptions, ResumeState
from framefarm.spec import JobSpec
from framefarm.status import ChunkState, JobRecord, JobState
from framefarm.stitch.ffmpeg import FfmpegStitcher
from framefarm.storage.keys import output_key

STITCHABLE = frozenset({JobState.RENDERED, JobState.STITCHING, JobState.COMPLETED, JobState.PAUSED,
                        JobState.FAILED, JobState.CANCELLED})  # states at rest in which every chunk may be done


def require_ready_to_stitch(manager: JobManager, job_id: str) -> JobRecord:
    """The job with its chunk records, or JobStateError: a runner holds it, or a chunk is not done
    (then its output in storage, if any, may be an earlier attempt's)."""
    job = manager.repository.require(job_id)
    if job.state not in STITCHABLE or not manager.is_stale(job):
        raise JobStateError(f"job {job.id} is {job.state.value} and a runner holds it; stitch it once it is done")
    missing = [record.chunk_id for record in job.chunks if record.state is not ChunkState.COMPLETED]
    if missing:
        raise JobStateError(f"job {job.id}: chunks {id_list(missing)} are not completed; "
                            f"run `framefarm resume {job.id}`")
    return job


def mark_stitched(manager: JobManager, job_id: str, output: Path | str) -> bool:
    """Mark the job completed with its video, only while no runner holds it (one conditional write).
    False when a runner took the job meanwhile, or the store does not know it."""
    return manager.repository.set_state(job_id, JobState.COMPLETED, now=time.time(), output=str(output),
                                        expected=STITCHABLE, free_at=time.time())


def stitch_job_dir(manager: JobManager, job: JobRecord, output: Path) -> Path:
    """Join the chunk outputs in the job's directory on this machine (a local render's); the audio
    track, if the job has one, is rendered on the manager's adapter first."""
    options = ExecutionOptions(job_dir=manager.job_dir(job.id), stitcher=FfmpegStitcher(), output_file=output)
    every_chunk = ResumeState(completed=frozenset(chunk.id for chunk in job.spec.chunks))
    report = manager.executor.execute(job.spec, options, resume=every_chunk)
    assert report.output is not None  # a stitcher was given
    return report.output


def stitch_from_storage(manager: JobManager, spec: JobSpec, output: Path, *, upload: bool = False) -> Path:
    """Download the chunk outputs from the manager's storage and join them (a remote render's)."""
    from framefarm.stitch.merge import S3MergeAdapter

    assert manager.storage is not None
    upload_key = output_key(spec.id, output.name) if upload else None
    return S3MergeAdapter(manager.storage).merge(spec, output, upload_key=upload_key)


def stitch_job(manager: JobManager, job_id: str, output: Path, *, chunks_in_storage: bool,
               upload: bool = False) -> tuple[Path, bool]:
    """Stitch a job whose chunks are all done; returns the video and whether the job was marked completed."""
    job = require_ready_to_stitch(manager, job_id)
    if chunks_in_storage:
        video = stitch_from_storage(manager, job.spec, output, upload=upload)
    else:
        video = stitch_job_dir(manager, job, output)
    return video, mark_stitched(manager, job_id, video)
