"""The library in one call: ``render`` a job and get its video, or ``submit`` it and hold a handle.

    import framefarm as ff
    result = ff.render("examples/testsrc.yaml", output="out/testsrc.mp4", concurrency=2)
    handle = ff.submit("job.yaml", backend=ff.Lambda(stack="Framefarm"))
    handle.progress(); handle.wait(timeout=None); handle.cancel(); handle.pause()
    handle = ff.attach(job_id, backend=...)

``job`` is a path to a job file, a mapping (a parsed job document) or a ``JobSpec``. With an
``output`` a render stitches the video (on this machine: a remote backend's chunks are downloaded
first) and fails rather than report ``completed`` without it; without one it ends ``rendered``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framefarm.backends import Backend, Lambda, Local, lambda_submission, submit_to_lambda
from framefarm.budget import max_cost_of, with_budget
from framefarm.cancel import CancelToken
from framefarm.config import BUDGET, ffmpeg_path
from framefarm.errors import FramefarmError, JobAbortedError, JobSpecError, JobStateError
from framefarm.failures import FailureKind
from framefarm.manager import JobManager
from framefarm.options import ExecutionOptions, RetryPolicy, RunHooks, Stitcher
from framefarm.repositories.base import put_spec
from framefarm.spec import JobSpec, load_job_file, parse_job, read_job_document, select_frames
from framefarm.status import ChunkState, JobRecord, JobState
from framefarm.stitch.ffmpeg import FfmpegStitcher
from framefarm.stitching import stitch_job
from framefarm.storage.base import Storage
from framefarm.webhooks.notifier import with_webhook
from framefarm.webhooks.secret import webhook_secret

JobInput = str | os.PathLike[str] | Mapping[str, Any] | JobSpec
POLL_SECONDS = 1.0  # how often a handle on a job run elsewhere reads its state
PENDING_PATIENCE = 120.0  # seconds a job may wait for its runner (a queued Lambda event) before a wait gives up


@dataclass(frozen=True)
class Progress:
    completed: int
    total: int
    state: JobState
    cost_usd: float
    failed_attempts: int

    @property
    def fraction(self) -> float:
        return self.completed / self.total if self.total else 0.0


@dataclass(frozen=True)
class RenderResult:
    """A finished render: ``state`` is ``completed`` (with ``output``) or ``rendered`` (no output asked).
    ``duration_s`` runs from the job's creation to its last change (time queued included); ``cost_usd``
    and ``billed_ms`` add up every attempt of every chunk."""

    job_id: str
    state: JobState
    output: Path | None
    frames: int
    duration_s: float
    cost_usd: float
    billed_ms: int
    chunks: int


class RenderFailed(FramefarmError):
    """A job failed. ``chunk_id``, ``attempts``, ``kind`` and ``stderr_tail`` describe the chunk that
    failed for good (None when the failure was not a chunk's: the stitch, the job store)."""

    def __init__(self, job_id: str, error: str, *, chunk_id: int | None = None, attempts: int = 0,
                 kind: FailureKind | None = None, stderr_tail: str = "") -> None:
        self.job_id, self.error, self.chunk_id, self.attempts = job_id, error, chunk_id, attempts
        self.kind, self.stderr_tail = kind, stderr_tail
        super().__init__(f"job {job_id} failed: {error}")


class RenderHandle:
    """A job in progress on some backend: read its progress, wait for it, stop it.

    ``manager`` is the one running the job in this process, if any; otherwise the handle builds its
    own on first use (a job submitted to the cloud needs nothing more to be submitted)."""

    def __init__(self, job_id: str, backend: Backend, manager: JobManager | None = None, *,
                 output: Path | None = None, stitcher: Stitcher | None = None) -> None:
        self.job_id, self.backend, self.output, self.stitcher = job_id, backend, output, stitcher
        self._manager = manager

    @property
    def manager(self) -> JobManager:
        if self._manager is None:  # one that may render a local job's audio track when it stitches
            self._manager = self.backend.manager(runs_chunks=not self.backend.chunks_in_storage)
        return self._manager

    def __repr__(self) -> str:
        return f"RenderHandle({self.job_id!r}, backend={self.backend!r})"

    def status(self) -> JobRecord:
        """The job as stored, with every chunk record."""
        return self.manager.repository.require(self.job_id)

    def progress(self) -> Progress:
        status = self.manager.summary(self.job_id)
        return Progress(status.completed_chunks, status.total_chunks, status.state, status.metrics.cost_usd,
                        status.metrics.failed_attempts)

    def cancel(self) -> Progress:
        """Stop the job and kill its work in flight; it ends ``cancelled``."""
        self.manager.cancel_job(self.job_id)
        return self.progress()

    def pause(self) -> Progress:
        """Stop dispatching; work in flight finishes and is kept; the job ends ``paused``."""
        self.manager.pause_job(self.job_id)
        return self.progress()

    def wait(self, timeout: float | None = None) -> RenderResult:
        """Block until the job settles (at most ``timeout`` s: TimeoutError), stitch it when an output
        was asked and its chunks are rendered elsewhere, and return the result.

        Raises RenderFailed when it failed, JobAbortedError when it was cancelled or paused (reason
        ``budget`` when its spending cap paused it), and JobStateError, saying to resume it, when nothing
        runs it any more (its runner died, or nothing started it within ``PENDING_PATIENCE``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.job_id in self.manager.running_here():
            self.manager.wait(self.job_id, timeout)
        status = self.manager.summary(self.job_id)
        idle = threading.Event()
        while not (status.state.is_settled or self._left_behind(status)):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"job {self.job_id} still {status.state.value} after {timeout} s")
            idle.wait(POLL_SECONDS if left is None else min(POLL_SECONDS, left))
            status = self.manager.summary(self.job_id)
        if status.state in (JobState.RENDERED, JobState.STITCHING) and self.output is not None:
            stitch_job(self.manager, self.job_id, self.output, chunks_in_storage=self.backend.chunks_in_storage,
                       stitcher=self.stitcher)
            status = self.manager.summary(self.job_id)
        return self._result(status)

    def _left_behind(self, status: JobRecord) -> bool:
        """True for a job ``stitching`` that nothing stitches (framefarm 0.1 left ``--no-stitch`` jobs so):
        its chunks are rendered. JobStateError when nothing runs an unfinished job any more."""
        if status.state is JobState.PENDING:
            waited = time.time() - status.updated_at
            if waited > PENDING_PATIENCE:
                raise JobStateError(f"job {status.id} has been pending for {waited:.0f} s: nothing started it; "
                                    f"resume it (`framefarm resume {status.id}`)")
            return False
        if not self.manager.is_stale(status):
            return False
        if status.state is JobState.STITCHING and status.completed_chunks == status.total_chunks:
            return True
        raise JobStateError(f"job {status.id} is {status.state.value} but its runner is gone (no heartbeat for "
                            f"{self.manager.stale_after:g} s); resume it (`framefarm resume {status.id}`)")

    def _result(self, status: JobRecord) -> RenderResult:
        if status.state is JobState.FAILED:
            raise self._failure(status)
        if status.state in (JobState.CANCELLED, JobState.PAUSED):  # a pause for the job's cap says "budget"
            raise JobAbortedError(BUDGET if status.pause_reason == BUDGET else status.state.value,
                                  job_id=self.job_id)
        output = Path(status.output) if status.state is JobState.COMPLETED and status.output else None
        return RenderResult(job_id=status.id, state=status.state, output=output,
                            frames=status.spec.metadata.total_frames,
                            duration_s=max(0.0, status.updated_at - status.created_at),
                            cost_usd=status.metrics.cost_usd, billed_ms=status.metrics.total_billed_duration_ms,
                            chunks=status.total_chunks)

    def _failure(self, status: JobRecord) -> RenderFailed:
        error = status.error or "failed"
        failed = [record for record in self.status().chunks if record.state is ChunkState.FAILED]
        if not failed:
            return RenderFailed(status.id, error)
        chunk = max(failed, key=lambda record: (record.attempts, -record.chunk_id))  # the one that ran out
        return RenderFailed(status.id, error, chunk_id=chunk.chunk_id, attempts=chunk.attempts,
                            kind=chunk.kind, stderr_tail=chunk.stderr_tail)


def load_job(job: JobInput, *, job_id: str | None = None) -> JobSpec:
    """A job given as a path, a mapping or a JobSpec, as a JobSpec (``job_id`` replaces its id)."""
    if isinstance(job, JobSpec):
        return job if job_id is None else job.model_copy(update={"id": job_id})
    if isinstance(job, Mapping):
        return parse_job(job, source="job", job_id=job_id)
    return load_job_file(Path(job), job_id=job_id)


def check_output(output: str | os.PathLike[str]) -> Path:
    """Where a video may be written, resolved; JobSpecError before anything is stored when it cannot."""
    path = Path(output).expanduser().resolve()
    if path.is_dir():
        raise JobSpecError(f"output: {path} is a directory; name the video file (e.g. {path / 'video.mp4'})")
    if not path.suffix:
        raise JobSpecError(f"output: {path} has no extension; ffmpeg picks the container by it (e.g. .mp4)")
    parent = next((folder for folder in (path.parent, *path.parent.parents) if folder.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise JobSpecError(f"output: cannot write to {path.parent}")
    return path


def submit(job: JobInput, *, backend: Backend | None = None, output: str | os.PathLike[str] | None = None,
           concurrency: int | None = None, retry: RetryPolicy | None = None, chunk_timeout: float | None = None,
           hooks: RunHooks | None = None, stitcher: Stitcher | None = None, job_id: str | None = None,
           client_token: str | None = None, assets: str | os.PathLike[str] | None = None, stitch: bool = True,
           cancel: CancelToken | None = None, frames: tuple[int, int] | None = None,
           max_cost: float | None = None, webhook: str | None = None) -> RenderHandle:
    """Store the job and start it; returns a handle at once.

    On ``Local`` and ``CloudRun`` (and ``Lambda`` without a submit function) this process runs the
    job on a background thread; on ``Lambda`` with a submit function the cloud does, and the handle
    reads its state from DynamoDB. ``output`` (or the job file's own ``output``) is checked here;
    ``wait`` stitches the video there with ``stitcher`` (an FfmpegStitcher by default).
    ``stitch=False`` renders the chunks only (a local job keeps the output for ``framefarm stitch``).
    ``chunk_timeout`` bounds one attempt at a chunk, in seconds. ``assets``: a directory the commands
    read, shipped to every chunk. The job's ``inputs`` that are local files are uploaded under its
    prefix when its chunks run elsewhere (``framefarm.inputs``). ``frames=(a, b)``: only the chunks
    covering frames a..b, inclusive
    (``spec.select_frames``; the video holds just those). ``retry`` defaults to ``RetryPolicy()`` and
    ``concurrency`` to the backend's default: the same as the CLI's and the Lambda handlers'. ``hooks``
    and ``cancel`` (a token that stops the run, as ``handle.cancel()`` does) act on runs in this process.
    ``max_cost`` caps what the job may spend, in USD (the job's ``budget``; see ``framefarm.budget``): it
    ends ``paused`` before it would pass it. ``webhook``: a URL that gets a signed POST when the job
    ends (``notify.webhook`` of a job file; signed with ``FRAMEFARM_WEBHOOK_SECRET`` here, with the
    stack's secret on Lambda). Nothing is stored when an argument is wrong.
    """
    backend = backend or Local()
    spec = load_job(job, job_id=job_id)
    if max_cost is not None:
        spec = with_budget(spec, max_cost)
    check_budget(backend, spec)
    if webhook is not None:
        spec = spec.model_copy(update={"notify": with_webhook(spec.notify, webhook)})
    if frames is not None:
        spec = job = select_frames(spec, *frames)  # the submit function is sent the part, in full
    target = output if output is not None else spec.output
    video = check_output(target) if target is not None else None
    if video is not None and stitch:
        ffmpeg_path()  # no ffmpeg to stitch with: say so before anything is stored
    wanted = video if stitch else None
    if isinstance(backend, Lambda) and backend.submit_function_name:
        document, options = _document(job, spec), _cloud_options(concurrency, retry, chunk_timeout)
        if assets is not None:  # too big for Lambda even with room for its URL: say so before uploading
            lambda_submission({**document, "assets_url": "s3://" + "x" * 1100}, options, client_token=client_token)
            document["assets_url"] = bundle_assets(spec, Path(assets), backend.storage()).assets_url
        if spec.inputs:
            document["inputs"] = stored_inputs(spec, backend.storage(), upload=True).inputs
        answer = submit_to_lambda(backend, document, options, client_token=client_token)
        return RenderHandle(str(answer["job_id"]), backend, output=wanted, stitcher=stitcher)
    if spec.notify is not None and spec.notify.webhook:
        webhook_secret()  # nothing to sign deliveries with: say so before anything is stored
    run = run_options(backend, spec, output=wanted, concurrency=concurrency, retry=retry,
                      chunk_timeout=chunk_timeout, hooks=hooks, stitcher=stitcher, cancel=cancel)
    manager = backend.manager(concurrency=concurrency)
    manager.require_new(spec.id)  # before assets or a spec are uploaded over an existing job's
    if assets is not None:
        assert manager.storage is not None  # every backend that runs chunks has storage
        spec = bundle_assets(spec, Path(assets), manager.storage)
    if spec.inputs:
        assert manager.storage is not None
        spec = stored_inputs(spec, manager.storage, upload=backend.chunks_in_storage)
    manager.create_job(spec, output=str(video) if video else None, client_token=client_token)
    if backend.chunks_in_storage and manager.storage is not None and manager.storage is not manager.repository.storage:
        put_spec(manager.storage, spec)  # where remote workers read it (a DynamoDB store keeps it there itself)
    if spec.assets_url and not backend.chunks_in_storage:
        from framefarm.storage import storage_for_url
        from framefarm.worker.assets import unpack_assets

        unpack_assets(spec.assets_url, manager.job_dir(spec.id), storage_for=storage_for_url)
    manager.start_job(spec.id, run)
    return RenderHandle(spec.id, backend, manager, output=wanted, stitcher=stitcher)


def run_options(backend: Backend, spec: JobSpec, *, output: Path | None, concurrency: int | None = None,
                retry: RetryPolicy | None = None, chunk_timeout: float | None = None, hooks: RunHooks | None = None,
                stitcher: Stitcher | None = None, cancel: CancelToken | None = None,
                max_cost: float | None = None) -> ExecutionOptions:
    """How a run of ``spec`` goes on ``backend``: its default concurrency, ``RetryPolicy()``, and a merge
    on this machine when the chunks are rendered here and an ``output`` is asked (or the spec has its
    own merge command); chunks rendered elsewhere are stitched by the handle, after a download.
    ``max_cost``: a spending cap for this run, in place of the job's own ``budget``."""
    check_budget(backend, spec, max_cost)
    here = not backend.chunks_in_storage
    stitch_here = here and output is not None
    return ExecutionOptions(concurrency=backend.concurrency(concurrency), retry=retry or RetryPolicy(),
                            timeout=chunk_timeout, hooks=hooks or RunHooks(),
                            merge=stitch_here or (here and spec.merge_command is not None),
                            stitcher=(stitcher or FfmpegStitcher()) if stitch_here else None,
                            output_file=output if stitch_here else None, cancel=cancel, max_cost=max_cost)


def check_budget(backend: Backend, spec: JobSpec, max_cost: float | None = None) -> None:
    """JobSpecError when a spending cap is asked of a backend whose workers report no cost (it could
    not be kept there, and a cap silently ignored would be worse than none)."""
    if max_cost_of(spec, max_cost) is not None and not backend.reports_cost:
        raise JobSpecError(f"max_cost: the {backend.name} backend reports no cost, so a spending cap cannot be "
                           "kept there; render on lambda or cloudrun, or drop the cap (--max-cost, budget:)")


def _document(job: JobInput, spec: JobSpec) -> dict[str, Any]:
    """What the submit function is sent: the job as written (a template stays a template: small), with
    its id and assets; a JobSpec in full."""
    if isinstance(job, JobSpec):
        return spec.model_dump(mode="json", exclude_none=True)
    document = dict(job) if isinstance(job, Mapping) else read_job_document(Path(job))
    document["id"] = spec.id
    if spec.budget is not None:
        document["budget"] = spec.budget.model_dump()
    if spec.assets_url:
        document["assets_url"] = spec.assets_url
    if spec.notify is not None:
        document["notify"] = spec.notify.model_dump(mode="json")
    return document


def bundle_assets(spec: JobSpec, directory: Path, storage: Storage) -> JobSpec:
    """The spec with ``assets_url`` pointing at ``directory``, bundled into ``storage``."""
    from framefarm.worker.assets import upload_assets

    try:
        url = upload_assets(directory, storage, spec.id)
    except ValueError as exc:
        raise JobSpecError(str(exc)) from None
    return spec.model_copy(update={"assets_url": url})


def stored_inputs(spec: JobSpec, storage: Storage, *, upload: bool) -> JobSpec:
    """The spec with its ``inputs`` as URLs its workers read (``inputs.store_inputs``): local files uploaded
    under the job's prefix when its chunks run elsewhere (``upload``), else read where they are."""
    from framefarm.inputs import store_inputs

    assert spec.inputs is not None
    return spec.model_copy(update={"inputs": store_inputs(spec.inputs, job_id=spec.id, storage=storage,
                                                          upload=upload)})


def render(job: JobInput, *, backend: Backend | None = None, output: str | os.PathLike[str] | None = None,
           concurrency: int | None = None, retry: RetryPolicy | None = None, chunk_timeout: float | None = None,
           hooks: RunHooks | None = None, stitcher: Stitcher | None = None, job_id: str | None = None,
           assets: str | os.PathLike[str] | None = None, timeout: float | None = None,
           frames: tuple[int, int] | None = None, max_cost: float | None = None,
           webhook: str | None = None) -> RenderResult:
    """Render a job and return its result: ``submit(...).wait(timeout)``. Raises RenderFailed when it fails,
    JobAbortedError when it stops short (cancelled, or paused: by request, or by its ``max_cost``)."""
    handle = submit(job, backend=backend, output=output, concurrency=concurrency, retry=retry,
                    chunk_timeout=chunk_timeout, hooks=hooks, stitcher=stitcher, job_id=job_id, assets=assets,
                    frames=frames, max_cost=max_cost, webhook=webhook)
    return handle.wait(timeout)


def attach(job_id: str, *, backend: Backend | None = None, output: str | os.PathLike[str] | None = None
           ) -> RenderHandle:
    """A handle for a job that already exists (JobNotFoundError naming the store when there is none)."""
    handle = RenderHandle(job_id, backend or Local(), output=check_output(output) if output is not None else None)
    handle.manager.summary(job_id)  # JobNotFoundError naming the store
    return handle


def _cloud_options(concurrency: int | None, retry: RetryPolicy | None, timeout: float | None) -> dict[str, Any]:
    """Run options for the submit function (see ``aws.handlers.RunOptions``); what is not given, the
    deployed functions default (to the same values)."""
    options: dict[str, Any] = {}
    if retry is not None:
        options.update(retries=retry.retries, transient_retries=retry.transient_retries, retry_delay=retry.delay)
    if concurrency is not None:
        options["concurrency"] = concurrency
    if timeout is not None:
        options["timeout"] = timeout
    return options
