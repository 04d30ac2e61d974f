"""JobManager: runs jobs through a JobExecutor and keeps their state in a JobRepository.

States: pending → running → stitching → completed, or → failed | cancelled | paused. A paused,
failed or cancelled job can be resumed: completed chunks are skipped, attempt numbers continue.
A run with ``skip_merge`` ends in ``stitching``: its chunks are ready for ``framefarm stitch``
(the AWS flow, where the merge runs on the operator's machine). A run stopped for a hand-over
(reason ``handover``) leaves the job ``running`` for ``continue_job``.

Every attempt is written to the store as it finishes (so progress is visible during the run), full
logs longer than a record's tail go to storage. While a job runs, a heartbeat thread stamps it every
few seconds and picks up ``cancel``/``pause`` requests made from other processes (the CLI's
``framefarm cancel``). A running job whose heartbeat is stale has lost its runner and may be
resumed, cancelled or paused from anywhere.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from framefarm.adapters.base import CANCELLED, WorkerResult
from framefarm.cancel import CancelToken
from framefarm.config import framefarm_home, heartbeat_timing
from framefarm.errors import FramefarmError, JobAbortedError, JobNotFoundError, JobStateError
from framefarm.executor import ExecutionOptions, JobExecutor
from framefarm.redaction import redact_result, secret_values
from framefarm.repositories.base import JobRepository
from framefarm.spec import JobSpec
from framefarm.status import ChunkAttempt, ChunkStarted, ChunkState, JobState, JobStatus, tail
from framefarm.storage.base import Storage
from framefarm.storage.keys import cancel_key, job_prefix, log_key
from framefarm.store_writer import StoreWriter

logger = logging.getLogger(__name__)

RUNNABLE = frozenset({JobState.PENDING, JobState.PAUSED, JobState.FAILED, JobState.CANCELLED})
ACTIVE = frozenset({JobState.RUNNING, JobState.STITCHING})
HANDOVER = "handover"  # a stop reason: another runner continues the job (the orchestrator Lambda's deadline)
REQUESTS = {"cancel": JobState.CANCELLED, "pause": JobState.PAUSED}  # a control request, and where it ends a job


@dataclass
class _ActiveRun:
    token: CancelToken
    thread: threading.Thread | None = None
    writer: StoreWriter | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class JobManager:
    """Submit, run, watch and control jobs.

    Control and run methods return the job's summary (state, counters, error, output) without its
    chunk records, which can be 10,000s; ``get_job`` returns everything.

    >>> manager = JobManager(InMemoryJobRepository(), JobExecutor(LocalWorkerAdapter()))
    >>> job_id = manager.submit_job(spec, ExecutionOptions(concurrency=4))
    >>> manager.wait(job_id).state
    <JobState.COMPLETED: 'completed'>
    """

    def __init__(self, repository: JobRepository, executor: JobExecutor, storage: Storage | None = None, *,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 heartbeat_interval: float | None = None, stale_after: float | None = None) -> None:
        self.repository = repository
        self.executor = executor
        self.storage = storage
        self._clock = clock
        self._sleep = sleep
        default_interval, default_stale = heartbeat_timing()  # FRAMEFARM_HEARTBEAT_INTERVAL, _STALE_AFTER
        self._heartbeat_interval = heartbeat_interval if heartbeat_interval is not None else default_interval
        self._stale_after = stale_after if stale_after is not None else default_stale
        self._lock = threading.Lock()
        self._active: dict[str, _ActiveRun] = {}
        self._options: dict[str, ExecutionOptions] = {}
        self._secrets = secret_values()  # blanked out of every chunk record and log kept

    # -- creating and running -------------------------------------------------------------------

    def create_job(self, spec: JobSpec, *, output: str | None = None) -> JobStatus:
        """Store a new pending job; JobStateError if the id is taken."""
        self.require_new(spec.id)
        status = JobStatus.new(spec, now=self._clock(), output=output)
        self.repository.save(status)
        return status

    def require_new(self, job_id: str) -> None:
        """JobStateError if a job ``job_id`` exists (checked before anything is uploaded for a new job)."""
        if self.repository.get(job_id, chunks=False) is not None:
            raise JobStateError(f"job {job_id!r} already exists; resume it or choose another id")

    def submit_job(self, spec: JobSpec, options: ExecutionOptions | None = None) -> str:
        """Create the job and run it on a background thread; returns its id at once."""
        output = str(options.output_file) if options is not None and options.output_file else None
        self.create_job(spec, output=output)
        self._start(spec.id, options, background=True)
        return spec.id

    def run_job(self, job_id: str, options: ExecutionOptions | None = None) -> JobStatus:
        """Run (or continue) a stored job on this thread until it ends; returns its final summary."""
        return self._start(job_id, options, background=False)

    def continue_job(self, job_id: str, options: ExecutionOptions | None = None) -> JobStatus:
        """Take over a job that another runner handed over (``CancelToken.drain("handover")``).

        The job is still ``running``; a cancel or pause requested during the hand-over is honoured
        here instead of running.
        """
        status = self.summary(job_id)
        if status.state is not JobState.RUNNING:
            raise JobStateError(f"job {job_id!r} is {status.state.value}; there is nothing to continue")
        final = REQUESTS.get(status.requested or "")
        if final is not None:
            self.repository.set_state(job_id, final, now=self._clock(), expected={JobState.RUNNING},
                                      error="Job cancelled" if final is JobState.CANCELLED else None)
            return self.summary(job_id)
        return self._start(job_id, options, background=False, expected=frozenset({JobState.RUNNING}))

    def resume_job(self, job_id: str, options: ExecutionOptions | None = None, *,
                   background: bool = True) -> JobStatus:
        """Continue a paused, failed, cancelled or abandoned job; completed chunks are skipped."""
        status = self.summary(job_id)
        if status.state in ACTIVE:
            if job_id in self._active or not self.is_stale(status):
                raise JobStateError(f"job {job_id!r} is {status.state.value} and its runner is alive")
            self.repository.set_state(job_id, JobState.PAUSED, now=self._clock(), expected=ACTIVE)
        elif status.state not in RUNNABLE:
            raise JobStateError(f"job {job_id!r} is {status.state.value}; nothing to resume")
        return self._start(job_id, options or self._options.get(job_id), background=background)

    def take_over(self, job_id: str, options: ExecutionOptions | None = None, *, patience: float) -> JobStatus:
        """Resume a ``running`` job whose runner died, waiting up to ``patience`` s for its heartbeat
        to go stale (a retried orchestrator call arrives while the dead run still looks alive).

        A job that is not ``running`` is left as it is; JobStateError if the runner stays alive.
        """
        deadline = self._clock() + patience
        while True:
            status = self.summary(job_id)
            if status.state is not JobState.RUNNING:
                return status
            if self.is_stale(status):
                return self.resume_job(job_id, options, background=False)
            if self._clock() >= deadline:
                raise JobStateError(f"job {job_id!r} is running and its runner is alive; not taking it over")
            self._sleep(min(self._heartbeat_interval, 1.0))

    def wait(self, job_id: str, timeout: float | None = None) -> JobStatus:
        """Block until a job started by this manager stops running; returns its status."""
        with self._lock:
            run = self._active.get(job_id)
        if run is not None and not run.done.wait(timeout):
            raise TimeoutError(f"job {job_id!r} still running after {timeout} s")
        return self.summary(job_id)

    # -- reading ---------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> JobStatus | None:
        """The job as stored; for a job running here, after its pending chunk events are written."""
        with self._lock:
            run = self._active.get(job_id)
        if run is not None and run.writer is not None:
            run.writer.flush()
        return self.repository.get(job_id)

    def summary(self, job_id: str) -> JobStatus:
        """The job's state and counters without its chunk records; JobNotFoundError if there is none."""
        status = self.repository.get(job_id, chunks=False)
        if status is None:
            raise JobNotFoundError(job_id)
        return status

    def list_jobs(self, limit: int | None = None) -> list[JobStatus]:
        return self.repository.list(limit)

    @property
    def stale_after(self) -> float:
        """Seconds without a heartbeat after which a running job counts as abandoned."""
        return self._stale_after

    def is_stale(self, status: JobStatus) -> bool:
        """True when a running job's heartbeat stopped: whatever ran it is gone."""
        last = status.heartbeat_at or status.updated_at
        return status.id not in self._active and self._clock() - last > self._stale_after

    # -- control ---------------------------------------------------------------------------------

    def cancel_job(self, job_id: str) -> JobStatus:
        """Stop a job and kill its work in flight; it ends ``cancelled``."""
        return self._control(job_id, "cancel")

    def pause_job(self, job_id: str) -> JobStatus:
        """Stop dispatching; work in flight finishes and is kept; the job ends ``paused``."""
        return self._control(job_id, "pause")

    def delete_job(self, job_id: str) -> bool:
        """Remove the job, its records and its stored artifacts (cancelling it first if it runs here)."""
        with self._lock:
            run = self._active.get(job_id)
        if run is not None:
            run.token.cancel("cancelled")
            run.done.wait()
        deleted = self.repository.delete(job_id)
        if self.storage is not None and self.storage is not self.repository.storage:  # else already cleared
            self.storage.delete_prefix(job_prefix(job_id))
        self._options.pop(job_id, None)
        return deleted

    def _control(self, job_id: str, action: str) -> JobStatus:
        status = self.summary(job_id)
        with self._lock:
            run = self._active.get(job_id)
        if run is not None:
            _stop_as_requested(run.token, action)
        elif status.state in ACTIVE and not self.is_stale(status):
            self.repository.request(job_id, action)  # the process running it acts within a heartbeat
            if action == "cancel":
                self._mark_cancelled(job_id)  # remote workers need not wait for that heartbeat
        elif status.state in ACTIVE or status.state in (JobState.PENDING, JobState.PAUSED):
            self.repository.set_state(job_id, REQUESTS[action], now=self._clock(),
                                      expected=ACTIVE | {JobState.PENDING, JobState.PAUSED})
        else:
            raise JobStateError(f"job {job_id!r} is already {status.state.value}")
        return self.summary(job_id)

    # -- the run itself --------------------------------------------------------------------------

    def _start(self, job_id: str, options: ExecutionOptions | None, *, background: bool,
               expected: frozenset[JobState] = RUNNABLE) -> JobStatus:
        options = options or ExecutionOptions()
        self._options[job_id] = options
        token = options.cancel or CancelToken()
        with self._lock:
            if job_id in self._active:
                raise JobStateError(f"job {job_id!r} is already running in this process")
            run = _ActiveRun(token=token)
            self._active[job_id] = run
        if not background:
            return self._run(job_id, options, run, expected)
        run.thread = threading.Thread(target=self._run, args=(job_id, options, run, expected),
                                      name=f"framefarm-job-{job_id}", daemon=True)
        run.thread.start()
        return self.summary(job_id)

    def _run(self, job_id: str, options: ExecutionOptions, run: _ActiveRun, expected: frozenset[JobState]
             ) -> JobStatus:
        stop_heartbeat = threading.Event()
        try:
            status = self.summary(job_id)
            if not self.repository.set_state(job_id, JobState.RUNNING, now=self._clock(), expected=expected):
                raise JobStateError(f"job {job_id!r} is {status.state.value}; it cannot be started")
            self.repository.heartbeat(job_id, self._clock())
            if self.storage is not None:  # a resumed job may carry the marker of an earlier cancel
                self.storage.delete_prefix(cancel_key(job_id))
                run.token.on_cancel(lambda: self._mark_cancelled(job_id))
            threading.Thread(target=self._heartbeat, args=(job_id, run.token, stop_heartbeat),
                             name=f"framefarm-heartbeat-{job_id}", daemon=True).start()
            run.writer = StoreWriter(self.repository, job_id, sleep=self._sleep,
                                     on_error=lambda exc: run.token.cancel("stopped: the job store failed"))
            state, error, output = self._execute(status, options, run.token, run.writer)
            run.writer.close()
            if run.writer.error is not None:
                state, error, output = JobState.FAILED, f"job store write failed: {run.writer.error}", None
            if state is not JobState.RUNNING:  # RUNNING: handed over, the next runner owns the state
                self.repository.set_state(job_id, state, now=self._clock(), error=error, output=output,
                                          expected=ACTIVE)
            return self.summary(job_id)
        finally:
            if run.writer is not None:
                run.writer.close()
            stop_heartbeat.set()
            with self._lock:
                self._active.pop(job_id, None)
            run.done.set()

    def _execute(self, status: JobStatus, options: ExecutionOptions, token: CancelToken, writer: StoreWriter
                 ) -> tuple[JobState, str | None, str | None]:
        """Run the executor; returns the final (state, error, output)."""
        wrapped = self._recording_options(status, options, token, writer)
        try:
            report = self.executor.execute(status.spec, wrapped)
        except JobAbortedError as exc:
            if exc.reason == "paused":
                return JobState.PAUSED, None, None
            if exc.reason == HANDOVER:
                return JobState.RUNNING, None, None
            return JobState.CANCELLED, f"Job {exc.reason}", None
        except FramefarmError as exc:
            return JobState.FAILED, str(exc), None
        except Exception as exc:
            logger.exception("job %s: unexpected error", status.id)
            return JobState.FAILED, f"{type(exc).__name__}: {exc}", None
        if options.skip_merge or not options.merge:
            return JobState.STITCHING, None, None  # chunks ready; `framefarm stitch` joins them
        return JobState.COMPLETED, None, str(report.output) if report.output else None

    def _recording_options(self, status: JobStatus, options: ExecutionOptions, token: CancelToken,
                           writer: StoreWriter) -> ExecutionOptions:
        """The caller's options, with callbacks that write each event to the store first."""
        job_id = status.id
        job_dir = Path(options.job_dir) if options.job_dir else self.job_dir(job_id)
        states = self.repository.chunk_states(job_id)
        # Attempt numbers continue across runs so a resumed chunk's attempts are never mistaken
        # for ones already recorded.
        previous_attempts = {chunk_id: attempts for chunk_id, (_, attempts) in states.items()}
        completed = {chunk_id for chunk_id, (state, _) in states.items() if state is ChunkState.COMPLETED}
        outputs = {chunk.id: chunk.output_file for chunk in status.spec.chunks}
        base = str(job_dir)

        def on_chunk_start(chunk_id: int, attempt: int) -> None:
            writer.put(ChunkStarted(chunk_id, previous_attempts.get(chunk_id, 0) + attempt, self._clock()))
            if options.on_chunk_start:
                options.on_chunk_start(chunk_id, attempt)

        def on_chunk_attempt(chunk_id: int, attempt: int, result: WorkerResult, started: float,
                             finished: float) -> None:
            number = previous_attempts.get(chunk_id, 0) + attempt
            result = redact_result(result, self._secrets)
            self._save_full_logs(job_id, chunk_id, number, result)
            writer.put(_attempt_record(
                chunk_id, number, result, started, finished,
                output=result.output_location or f"{base}/{outputs[chunk_id]}"))
            if options.on_chunk_attempt:
                options.on_chunk_attempt(chunk_id, attempt, result, started, finished)

        def on_merge_start() -> None:
            writer.flush()  # the store shows every chunk done before it shows the job stitching
            self.repository.set_state(job_id, JobState.STITCHING, now=self._clock(), expected={JobState.RUNNING})
            if options.on_merge_start:
                options.on_merge_start()

        output_file = options.output_file or status.output
        return dataclasses.replace(
            options, cancel=token, job_dir=job_dir,
            completed_chunk_ids=completed | set(options.completed_chunk_ids),
            output_file=output_file if options.stitcher is not None or options.output_file else None,
            on_chunk_start=on_chunk_start, on_chunk_attempt=on_chunk_attempt, on_merge_start=on_merge_start,
        )

    def job_dir(self, job_id: str) -> Path:
        """Where a job's chunk outputs live on this machine."""
        local = self.storage.local_path(job_prefix(job_id)) if self.storage is not None else None
        return local or framefarm_home() / job_prefix(job_id)

    def _save_full_logs(self, job_id: str, chunk_id: int, attempt: int, result: WorkerResult) -> None:
        if self.storage is None:
            return
        for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            if len(text) > self.repository.tail_chars:  # shorter logs are whole in the record's tail already
                self.storage.put_text(log_key(job_id, chunk_id, attempt, stream), text)

    def _mark_cancelled(self, job_id: str) -> None:
        """Leave the cancel marker that workers of remote adapters check between stages."""
        if self.storage is None:
            return
        try:
            self.storage.put_text(cancel_key(job_id), "cancelled")
        except Exception:  # workers then run to their end; the job is cancelled all the same
            logger.warning("job %s: could not write the cancel marker", job_id, exc_info=True)

    def _heartbeat(self, job_id: str, token: CancelToken, stop: threading.Event) -> None:
        while not stop.wait(self._heartbeat_interval):
            try:
                requested = self.repository.heartbeat(job_id, self._clock())
            except Exception:  # a store hiccup must not kill the job; the next beat retries
                logger.warning("job %s: heartbeat failed", job_id, exc_info=True)
                continue
            _stop_as_requested(token, requested)


def _stop_as_requested(token: CancelToken, action: str | None) -> None:
    """Stop a run as a control request asks: ``cancel`` kills its work in flight, ``pause`` lets it finish."""
    if action == "cancel":
        token.cancel("cancelled")
    elif action == "pause":
        token.drain("paused")


def _attempt_record(chunk_id: int, attempt: int, result: WorkerResult, started: float, finished: float, *,
                    output: str) -> ChunkAttempt:
    if result.ok:
        state = ChunkState.COMPLETED
    elif result.error == CANCELLED:
        state = ChunkState.CANCELLED
    else:
        state = ChunkState.FAILED
    error = None if result.ok else (result.error or f"exit code {result.exit_code}")
    return ChunkAttempt(
        chunk_id=chunk_id, attempt=attempt, state=state, duration_ms=result.duration_ms,
        billed_duration_ms=result.billed_duration_ms or 0, memory_mb=result.memory_mb,
        max_memory_used_mb=result.max_memory_used_mb, init_duration_ms=result.init_duration_ms,
        request_id=result.request_id, cost_usd=result.cost_usd or 0.0, throttles=result.throttles,
        stdout_tail=tail(result.stdout), stderr_tail=tail(result.stderr), error=error,
        output=output if result.ok else None, started_at=started or None, finished_at=finished or None,
    )
