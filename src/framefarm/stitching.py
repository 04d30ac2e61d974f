"""Stitch a stored job: check that every chunk is done and no runner holds the job, take the job's
lease (it shows ``stitching``, and nobody may reopen its chunks meanwhile), join the chunk outputs (in
the job directory, or downloaded from storage), and mark the job ``completed`` with its video. A stitch
that fails gives the job back as it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from framefarm.cancel import CancelToken
from framefarm.errors import JobStateError, id_list
from framefarm.heartbeat import Heartbeat
from framefarm.lease import Lease, new_run_id, owner_is_gone
from framefarm.manager import JobManager
from framefarm.options import ExecutionOptions, ResumeState, Stitcher
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


@contextmanager
def stitching_lease(manager: JobManager, job: JobRecord) -> Iterator[str]:
    """Hold ``job``'s lease while it is stitched (the job shows ``stitching``; a heartbeat keeps the
    lease through a long download); yields the lease's owner. On an error the job goes back to the state
    it had, and the error is raised."""
    now = time.time()
    lease = Lease(new_run_id(), now + manager.stale_after)
    gone = job.lease_owner if owner_is_gone(job.lease_owner) else None
    repository = manager.repository
    if not repository.take_lease(job.id, lease, now=now, expected={job.state}, successor_of=gone):
        raise JobStateError(f"job {job.id} changed hands as it was about to be stitched; try again")
    repository.set_state(job.id, JobState.STITCHING, now=time.time(), expected={JobState.RUNNING}, owner=lease.owner)
    heartbeat = Heartbeat(repository, job.id, lease, CancelToken(), interval=manager.heartbeat_interval,
                          stale_after=manager.stale_after, clock=time.time)
    heartbeat.start()
    try:
        yield lease.owner
    except BaseException:
        repository.set_state(job.id, job.state, now=time.time(), error=job.error, expected={JobState.STITCHING},
                             owner=lease.owner, release=True)
        raise
    finally:
        heartbeat.stop()


def stitch_job_dir(manager: JobManager, job: JobRecord, output: Path, stitcher: Stitcher | None = None) -> Path:
    """Join the chunk outputs in the job's directory on this machine (a local render's); the audio
    track, if the job has one, is rendered on the manager's adapter first."""
    options = ExecutionOptions(job_dir=manager.job_dir(job.id), stitcher=stitcher or FfmpegStitcher(),
                               output_file=output)
    every_chunk = ResumeState(completed=frozenset(chunk.id for chunk in job.spec.chunks))
    report = manager.executor.execute(job.spec, options, resume=every_chunk)
    assert report.output is not None  # a stitcher was given
    return report.output


def stitch_from_storage(manager: JobManager, spec: JobSpec, output: Path, *, upload: bool = False,
                        stitcher: Stitcher | None = None) -> Path:
    """Download the chunk outputs from the manager's storage and join them (a remote render's)."""
    from framefarm.stitch.merge import S3MergeAdapter

    if manager.storage is None:
        raise JobStateError(f"job {spec.id}: its chunks are in a bucket and none is named "
                            "(bucket=, --bucket, FRAMEFARM_BUCKET or a stack)")
    upload_key = output_key(spec.id, output.name) if upload else None
    return S3MergeAdapter(manager.storage, stitcher=stitcher).merge(spec, output, upload_key=upload_key)


def stitch_job(manager: JobManager, job_id: str, output: Path, *, chunks_in_storage: bool,
               upload: bool = False, stitcher: Stitcher | None = None) -> tuple[Path, bool]:
    """Stitch a job whose chunks are all done; returns the video and whether the job was marked completed
    (False: its lease was lost during a stitch longer than the heartbeat could keep it)."""
    job = require_ready_to_stitch(manager, job_id)
    with stitching_lease(manager, job) as owner:
        if chunks_in_storage:
            video = stitch_from_storage(manager, job.spec, output, upload=upload, stitcher=stitcher)
        else:
            video = stitch_job_dir(manager, job, output, stitcher)
    marked = manager.repository.set_state(job_id, JobState.COMPLETED, now=time.time(), output=str(video),
                                          expected={JobState.STITCHING}, owner=owner, release=True)
    if marked:
        manager.announce(job_id)
    return video, marked
