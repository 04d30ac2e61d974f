"""JobManager: runs jobs through a JobExecutor and keeps their state in a JobRepository.

States: pending → running → rendered (every chunk done, not merged) → stitching → completed, or →
failed | cancelled | paused. A paused, failed, cancelled or rendered job can be resumed: completed
chunks are skipped, attempt numbers continue (a rendered job resumed with a stitcher is stitched).
Chosen chunks of a stopped job, finished or not, can be rendered again (``retry_chunks``).
A run without a merge (``merge=False``, or nothing to merge with) ends ``rendered``: its chunks are
ready for ``framefarm stitch`` (the AWS flow, where the merge runs on the operator's machine). A
run stopped for a hand-over (reason ``handover``) leaves the job ``running`` for ``continue_job``.

One owner per run: every start, continuation, resume and take-over first takes the job's lease
(:mod:`framefarm.lease`) in one conditional write, so two runners never run one job, however often
an event is delivered. While a job runs, a heartbeat thread renews the lease every few seconds and
picks up ``cancel``/``pause`` requests made from other processes (the CLI's ``framefarm cancel``);
a runner that cannot renew stops dispatching, lets its work in flight finish and be recorded, and
leaves the job to whoever holds it now. A running job whose lease ran out (or whose runner's process
is gone, on this host) has lost its runner and may be resumed, cancelled or paused from anywhere.

Every attempt is written to the store as it finishes (so progress is visible during the run), full
logs longer than a record's tail go to storage. Any failure after a run started ends the job
``failed`` with its reason; a log that cannot be kept loses only itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from framefarm.adapters.base import WorkerResult
from framefarm.attempt_history import keep_attempt, keep_reopened
from framefarm.budget import budget_error, max_cost_of
from framefarm.cancel import CancelToken
from framefarm.config import BUDGET, HANDOVER, LEASE_LOST, framefarm_home, heartbeat_timing
from framefarm.errors import FramefarmError, JobAbortedError, JobStateError, id_list
from framefarm.executor import JobExecutor
from framefarm.heartbeat import Heartbeat, stop_as_asked
from framefarm.lease import Lease, new_handover_token, new_run_id, owner_is_gone
from framefarm.options import ExecutionOptions, ResumeState
from framefarm.redaction import redact, secret_values
from framefarm.repositories.base import JobRepository
from framefarm.run_recording import RecordingHooks
from framefarm.slots import gate_for, shared_budget
from framefarm.spec import JobSpec, Notify
from framefarm.status import ChunkAttempt, ChunkState, JobRecord, JobState
from framefarm.storage.base import Storage
from framefarm.storage.keys import cancel_key, chunk_key, job_prefix
from framefarm.storage.logs import keep_full_logs
from framefarm.store_writer import StoreWriter
from framefarm.webhooks.notifier import Notifier

logger = logging.getLogger(__name__)

RUNNABLE = frozenset({JobState.PENDING, JobState.PAUSED, JobState.FAILED, JobState.CANCELLED,
                      JobState.RENDERED})
ACTIVE = frozenset({JobState.RUNNING, JobState.STITCHING})
REQUESTS = {"cancel": JobState.CANCELLED, "pause": JobState.PAUSED}  # a control request, and where it ends a job


@dataclass
class _ActiveRun:
    token: CancelToken
    lease: Lease
    thread: threading.Thread | None = None
    writer: StoreWriter | None = None
    heartbeat: Heartbeat | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


def default_client_token(spec: JobSpec) -> str:
    """The idempotency key of a submission that names none: the job id and a digest of its spec."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:32]


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
                 heartbeat_interval: float | None = None, stale_after: float | None = None,
                 max_concurrency: int | None = None,
                 notifier: Notifier | None = None) -> None:

        self.repository = repository
        self.notifier = notifier or Notifier(repository)
        self.executor = executor
        self.storage = storage
        self._clock = clock
        self._sleep = sleep
        default_interval, default_stale = heartbeat_timing()  # FRAMEFARM_HEARTBEAT_INTERVAL, _STALE_AFTER
        self._heartbeat_interval = heartbeat_interval if heartbeat_interval is not None else default_interval
        self._stale_after = stale_after if stale_after is not None else default_stale
        self._lock = threading.Lock()
        self._active: dict[str, _ActiveRun] = {}
        self._handovers: dict[str, str] = {}
        self._options: dict[str, ExecutionOptions] = {}
        self._secrets = secret_values()  # blanked out of every chunk record and log kept
        # chunks in flight across every job on this store (framefarm.slots); None: no shared budget
        self._max_concurrency = shared_budget(max_concurrency)

    # -- creating and running -------------------------------------------------------------------

    def create_job(self, spec: JobSpec, *, output: str | None = None, client_token: str | None = None
                   ) -> JobRecord:
        """Store a new pending job in one conditional write.

        ``client_token`` makes a retried call idempotent: when the job already exists with the same
        token, that job is returned (and nothing is written); JobStateError if the id is taken by
        another submission."""
        return self.create_job_once(spec, output=output, client_token=client_token)[0]

    def create_job_once(self, spec: JobSpec, *, output: str | None = None, client_token: str | None = None
                        ) -> tuple[JobRecord, bool]:
        """``create_job``, also saying whether this call created the job (False: a retry found it)."""
        status = JobRecord.new(spec, now=self._clock(), output=output, client_token=client_token)
        existing = self.repository.create(status)
        if existing is None:
            return status, True
        if client_token is not None and existing.client_token == client_token:
            return existing, False
        raise JobStateError(f"job {spec.id!r} already exists; resume it or choose another id")

    def require_new(self, job_id: str) -> None:
        """JobStateError if a job ``job_id`` exists (checked before anything is uploaded for a new job)."""
        if self.repository.get(job_id, chunks=False) is not None:
            raise JobStateError(f"job {job_id!r} already exists; resume it or choose another id")

    def submit_job(self, spec: JobSpec, options: ExecutionOptions | None = None) -> str:
        """Create the job and run it on a background thread; returns its id at once."""
        output = str(options.output_file) if options is not None and options.output_file else None
        self.create_job(spec, output=output)
        self.start_job(spec.id, options)
        return spec.id

    def start_job(self, job_id: str, options: ExecutionOptions | None = None) -> JobRecord:
        """Run a stored pending job on a background thread; returns its summary at once (``wait`` for it)."""
        return self._start(job_id, options, background=True)

    def running_here(self) -> frozenset[str]:
        """The jobs this manager is running now."""
        with self._lock:
            return frozenset(self._active)

    def run_job(self, job_id: str, options: ExecutionOptions | None = None, *, only_new: bool = False
                ) -> JobRecord:
        """Run (or continue) a stored job on this thread until it ends; returns its final summary.
        ``only_new``: only a job that never ran (pending); JobStateError for one stopped before its runner
        came (a job cancelled while its start was on its way)."""
        return self._start(job_id, options, background=False,
                           expected=frozenset({JobState.PENDING}) if only_new else RUNNABLE)

    def continue_job(self, job_id: str, options: ExecutionOptions | None = None, *,
                     handed_by: str | None = None) -> JobRecord:
        """Take over a job that another runner handed over (``CancelToken.drain("handover")``).

        ``handed_by`` is the hand-over token the continuation event carries (see ``handover_token``):
        the lease is taken from it, so a continuation delivered twice runs once. Without one, the
        lease must have run out. A cancel or pause requested during the hand-over is honoured here
        instead of running.
        """
        return self._start(job_id, options, background=False, expected=frozenset({JobState.RUNNING}),
                           successor_of=handed_by)

    def handover_token(self, job_id: str) -> str | None:
        """The token the last run of ``job_id`` here handed its lease to (its continuation takes it
        with ``continue_job(handed_by=...)``); None if that run did not hand over."""
        with self._lock:
            return self._handovers.pop(job_id, None)

    def resume_job(self, job_id: str, options: ExecutionOptions | None = None, *,
                   background: bool = True) -> JobRecord:
        """Continue a paused, failed, cancelled or abandoned job; completed chunks are skipped."""
        status = self.summary(job_id)
        if status.state in ACTIVE:
            if not self.is_stale(status):
                raise JobStateError(f"job {job_id!r} is {status.state.value} and its runner is alive")
        elif status.state not in RUNNABLE:
            raise JobStateError(f"job {job_id!r} is {status.state.value}; nothing to resume")
        return self._start(job_id, options or self._options.get(job_id), background=background,
                           expected=RUNNABLE | ACTIVE)

    def retry_chunks(self, job_id: str, chunk_ids: Collection[int], options: ExecutionOptions | None = None, *,
                     background: bool = True) -> JobRecord:
        """Render ``chunk_ids`` of a stopped job again (completed, stitching, failed, cancelled, paused
        or abandoned): ``reopen_chunks``, then ``resume_job``, which skips the chunks still completed.
        A stitched video predates the new chunks: a run with a stitcher stitches again, otherwise
        ``framefarm stitch`` has to.
        """
        self.reopen_chunks(job_id, chunk_ids)
        return self.resume_job(job_id, options, background=background)

    def reopen_chunks(self, job_id: str, chunk_ids: Collection[int]) -> list[int]:
        """The first half of ``retry_chunks`` (what an AWS job needs before its orchestrator resumes
        it): the chosen chunks go back to pending and the job to ``paused``, in one conditional write.
        Returns the ids that had completed. JobStateError for a job whose runner is alive, one that
        never ran, or chunk ids the job does not have (named)."""
        status = self.summary(job_id)
        wanted = sorted(set(chunk_ids))
        known = {chunk.id for chunk in status.spec.chunks}
        unknown = [chunk_id for chunk_id in wanted if chunk_id not in known]
        if not wanted:
            raise JobStateError(f"job {job_id!r}: name the chunks to retry")
        if unknown:
            noun = "chunk" if len(unknown) == 1 else "chunks"
            raise JobStateError(f"job {job_id!r} has no {noun} {id_list(unknown)} "
                                f"(its chunk ids run {min(known)}-{max(known)})")
        if status.state in ACTIVE and (job_id in self._active or not self.is_stale(status)):
            raise JobStateError(f"job {job_id!r} is {status.state.value} and its runner is alive; "
                                "cancel or pause it before retrying chunks")
        if status.state is JobState.PENDING:
            raise JobStateError(f"job {job_id!r} is pending: no chunk has run yet; resume it instead")
        gone = status.lease_owner if owner_is_gone(status.lease_owner) else None
        # their completed attempts, which the records will no longer show once they render again
        done = [] if self.storage is None else [record for record in self.repository.require(job_id).chunks
                                                 if record.chunk_id in wanted and record.state is ChunkState.COMPLETED]
        reopened = self.repository.reopen_chunks(job_id, wanted, state=JobState.PAUSED, now=self._clock(),
                                                 expected={status.state}, gone_owner=gone)
        if reopened is None:
            raise JobStateError(f"job {job_id!r} changed state while its chunks were reopened; try again")
        if self.storage is not None:  # an earlier attempt's upload must not be stitched in their place
            for chunk_id in reopened:
                self.storage.delete_prefix(chunk_key(job_id, chunk_id, status.spec.chunk(chunk_id).output_file))
            keep_reopened(self.storage, job_id, [record for record in done if record.chunk_id in reopened])
        logger.info("job %s: chunks %s reopened to render again", job_id, id_list(reopened))
        return reopened

    def take_over(self, job_id: str, options: ExecutionOptions | None = None, *, patience: float) -> JobRecord:
        """Resume a ``running`` job whose runner died, waiting up to ``patience`` s for its lease
        to run out (a retried orchestrator call arrives while the dead run still looks alive).

        A job that is not ``running`` is left as it is; JobStateError if the runner stays alive, or
        another runner takes the job first.
        """
        deadline = self._clock() + patience
        while True:
            status = self.summary(job_id)
            if status.state is not JobState.RUNNING:
                return status
            if self.is_stale(status):
                return self._start(job_id, options, background=False, expected=frozenset({JobState.RUNNING}))
            now = self._clock()
            if now >= deadline:
                raise JobStateError(f"job {job_id!r} is running and its runner is alive; not taking it over")
            until = status.lease_until if status.lease_until is not None else now
            self._sleep(min(max(until - now, 0.05), self._heartbeat_interval, deadline - now))

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Block until a job started by this manager stops running; returns its status."""
        with self._lock:
            run = self._active.get(job_id)
        if run is not None and not run.done.wait(timeout):
            raise TimeoutError(f"job {job_id!r} still running after {timeout} s")
        return self.summary(job_id)

    # -- reading ---------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> JobRecord | None:
        """The job as stored; for a job running here, after its pending chunk events are written."""
        with self._lock:
            run = self._active.get(job_id)
        if run is not None and run.writer is not None:
            run.writer.flush()
        return self.repository.get(job_id)

    def summary(self, job_id: str) -> JobRecord:
        """The job's state and counters without its chunk records; JobNotFoundError if there is none."""
        status = self.repository.get(job_id, chunks=False)
        if status is None:
            raise self.repository.not_found(job_id)
        return status

    def list_jobs(self, limit: int | None = None) -> list[JobRecord]:
        return self.repository.list(limit)

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between a run's lease renewals."""
        return self._heartbeat_interval

    @property
    def max_concurrency(self) -> int | None:
        """Chunks in flight across every job on this store (the shared budget); None: no budget."""
        return self._max_concurrency

    @property
    def stale_after(self) -> float:
        """Seconds without a heartbeat after which a running job counts as abandoned."""
        return self._stale_after

    def is_stale(self, status: JobRecord) -> bool:
        """True when nothing runs the job any more: its lease ran out, or its runner's process on
        this host is gone."""
        if status.id in self._active:
            return False
        return status.lease_free(self._clock()) or owner_is_gone(status.lease_owner)

    # -- control ---------------------------------------------------------------------------------

    def cancel_job(self, job_id: str) -> JobRecord:
        """Stop a job and kill its work in flight; it ends ``cancelled``."""
        return self._control(job_id, "cancel")

    def pause_job(self, job_id: str) -> JobRecord:
        """Stop dispatching; work in flight finishes and is kept; the job ends ``paused``."""
        return self._control(job_id, "pause")

    def delete_job(self, job_id: str, *, timeout: float = 60.0) -> bool:
        """Remove the job, its records and its stored artifacts (cancelling it first if it runs here,
        waiting up to ``timeout`` s for that). JobStateError if a runner elsewhere holds it: cancel it
        first, or its runner would go on rendering a job that is gone."""
        with self._lock:
            run = self._active.get(job_id)
        if run is not None:
            run.token.cancel("cancelled")
            if not run.done.wait(timeout):
                raise JobStateError(f"job {job_id!r} did not stop within {timeout:g} s of its cancel; not deleted")
        else:
            status = self.repository.get(job_id, chunks=False)
            if status is not None and not self.is_stale(status):
                raise JobStateError(f"job {job_id!r} is {status.state.value} and a runner holds it; cancel it first")
        deleted = self.repository.delete(job_id)
        if self.storage is not None and self.storage is not self.repository.storage:  # else already cleared
            self.storage.delete_prefix(job_prefix(job_id))
        self._options.pop(job_id, None)
        return deleted

    def _control(self, job_id: str, action: str) -> JobRecord:
        for _ in range(3):  # a runner may take or drop the job between our look and our write
            status = self.summary(job_id)
            with self._lock:
                run = self._active.get(job_id)
            if run is not None:
                stop_as_asked(run.token, action)
                break
            if status.state not in ACTIVE and status.state not in (JobState.PENDING, JobState.PAUSED):
                raise JobStateError(f"job {job_id!r} is already {status.state.value}")
            if status.state in ACTIVE and not self.is_stale(status):
                # the process running it acts within a heartbeat; refused if its run ended meanwhile
                if self.repository.ask_runner(job_id, action, now=self._clock()):
                    if action == "cancel":
                        self._mark_cancelled(job_id)  # remote workers need not wait for that heartbeat
                    break
                continue
            # Nothing runs it: take effect now, unless a runner took the lease meanwhile.
            gone = status.lease_owner if owner_is_gone(status.lease_owner) else None
            if self.repository.set_state(job_id, REQUESTS[action], now=self._clock(),
                                         expected=ACTIVE | {JobState.PENDING, JobState.PAUSED},
                                         owner=gone, free_at=None if gone else self._clock()):
                options = self._options.get(job_id)
                self.announce(job_id, options.notify if options is not None else None)
                break
        else:
            raise JobStateError(f"job {job_id!r} kept changing hands while it was asked to {action}; try again")
        return self.summary(job_id)

    # -- the run itself --------------------------------------------------------------------------

    def _start(self, job_id: str, options: ExecutionOptions | None, *, background: bool,
               expected: frozenset[JobState] = RUNNABLE, successor_of: str | None = None) -> JobRecord:
        options = options or ExecutionOptions()
        token = options.cancel or CancelToken()
        with self._lock:
            if job_id in self._active:
                raise JobStateError(f"job {job_id!r} is already running in this process")
        run = _ActiveRun(token=token, lease=self._take_lease(job_id, expected, successor_of))
        with self._lock:  # a second start of this job here failed to take the lease above
            self._active[job_id] = run
            self._options[job_id] = options
        if not background:
            return self._run(job_id, options, run)
        run.thread = threading.Thread(target=self._run, args=(job_id, options, run),
                                      name=f"framefarm-job-{job_id}", daemon=True)
        run.thread.start()
        return self.summary(job_id)

    def _take_lease(self, job_id: str, expected: frozenset[JobState], successor_of: str | None) -> Lease:
        """Make this process the job's one runner, or JobStateError saying who is."""
        status = self.summary(job_id)
        now = self._clock()
        lease = Lease(new_run_id(), now + self._stale_after)
        if successor_of is None and owner_is_gone(status.lease_owner):
            successor_of = status.lease_owner  # its process is gone: no need to wait for the lease to run out
        if self.repository.take_lease(job_id, lease, now=now, expected=expected, successor_of=successor_of):
            return lease
        status = self.summary(job_id)
        if status.state not in expected:
            raise JobStateError(f"job {job_id!r} is {status.state.value}; it cannot be started")
        left = (status.lease_until or now) - now
        raise JobStateError(f"job {job_id!r} is {status.state.value} and another runner holds it "
                            f"({status.lease_owner}, for {left:.0f} s more unless renewed)")

    def _run(self, job_id: str, options: ExecutionOptions, run: _ActiveRun) -> JobRecord:
        owner = run.lease.owner
        started = self._clock()
        try:
            status = self.summary(job_id)
            try:
                final = REQUESTS.get(status.pending_action or "")
                if final is not None:  # asked while nobody ran it (e.g. during a hand-over): honour it now
                    state, error, output = final, "Job cancelled" if final is JobState.CANCELLED else None, None
                else:
                    state, error, output = self._run_chunks(status, options, run)
            except Exception as exc:  # whatever failed after the job went running ends it failed, with why
                logger.exception("job %s: unexpected error", job_id)
                state, error, output = JobState.FAILED, f"{type(exc).__name__}: {exc}", None
            if state is JobState.RUNNING:  # handed over: the next runner takes the lease from a token
                successor = Lease(new_handover_token(), self._clock() + self._stale_after)
                if self.repository.hand_over(job_id, owner, successor):
                    with self._lock:
                        self._handovers[job_id] = successor.owner
            # Only while this run still holds the job: a runner that lost it writes and announces nothing.
            elif self.repository.set_state(job_id, state, now=self._clock(), output=output,
                                           error=redact(error, self._secrets) if error else None,
                                           expected=ACTIVE, owner=owner, release=True):
                self.announce(job_id, options.notify, since=started)
            return self.summary(job_id)
        finally:
            if run.writer is not None:
                run.writer.close()
            if run.heartbeat is not None:
                run.heartbeat.stop()
            with self._lock:
                self._active.pop(job_id, None)
            run.done.set()

    def _run_chunks(self, status: JobRecord, options: ExecutionOptions, run: _ActiveRun
                    ) -> tuple[JobState, str | None, str | None]:
        """Execute the job's chunks under the heartbeat; returns the final (state, error, output)."""
        job_id = status.id
        slots = gate_for(self.repository, job_id, run.lease.owner, limit=self._max_concurrency,
                         priority=status.spec.priority, lease_for=self._stale_after, clock=self._clock)
        run.heartbeat = Heartbeat(self.repository, job_id, run.lease, run.token, interval=self._heartbeat_interval,
                                  stale_after=self._stale_after, clock=self._clock, on_renewed=slots.renew)
        run.heartbeat.start()
        if self.storage is not None:  # a resumed job may carry the marker of an earlier cancel
            self.storage.delete_prefix(cancel_key(job_id))
            run.token.on_cancel(lambda: self._mark_cancelled(job_id))
        run.writer = StoreWriter(self.repository, job_id, sleep=self._sleep,
                                 on_error=lambda exc: run.token.cancel("stopped: the job store failed"))
        try:
            result = self._execute(status, dataclasses.replace(options, slots=slots), run.token, run.writer,
                                   run.lease.owner)
        finally:
            slots.leave()
        run.writer.close()
        if run.writer.error is not None:
            return JobState.FAILED, f"job store write failed: {run.writer.error}", None
        return result

    def _execute(self, status: JobRecord, options: ExecutionOptions, token: CancelToken, writer: StoreWriter,
                 owner: str) -> tuple[JobState, str | None, str | None]:
        """Run the executor; returns the final (state, error, output)."""
        job_id = status.id
        states = self.repository.chunk_states(job_id)
        # Attempt numbers continue across runs, so a resumed chunk's attempts are never mistaken for
        # ones already recorded (remote workers get the number in their request).
        resume = ResumeState(
            completed=frozenset(chunk_id for chunk_id, (state, _) in states.items() if state is ChunkState.COMPLETED),
            earlier_attempts={chunk_id: attempts for chunk_id, (_, attempts) in states.items()},
            spent_usd=status.metrics.cost_usd)
        job_dir = Path(options.job_dir) if options.job_dir else self.job_dir(job_id)
        output_file = options.output_file or status.output
        hooks = RecordingHooks(self.repository, writer, job_id, owner, caller=options.hooks, spec=status.spec,
                               job_dir=job_dir, secrets=self._secrets, clock=self._clock,
                               keep_logs=lambda record, result: self._save_full_logs(job_id, record, result))
        run_options = dataclasses.replace(
            options, cancel=token, job_dir=job_dir, hooks=hooks,
            output_file=output_file if options.stitcher is not None or options.output_file else None)
        try:
            report = self.executor.execute(status.spec, run_options, resume=resume)
        except JobAbortedError as exc:
            if exc.reason == "paused":
                return JobState.PAUSED, None, None
            if exc.reason == HANDOVER:
                return JobState.RUNNING, None, None
            if exc.reason == BUDGET:  # the store's total, every attempt of this run written
                writer.flush()
                cap = max_cost_of(status.spec, options.max_cost)
                assert cap is not None  # only a cap stops a run for its budget
                return JobState.PAUSED, budget_error(self.summary(job_id).metrics.cost_usd, cap), None
            if exc.reason == LEASE_LOST:
                return JobState.FAILED, ("stopped: this runner could not renew its lease on the job, so another "
                                         "may run it; resume it if none does"), None
            return JobState.CANCELLED, f"Job {exc.reason}", None
        except FramefarmError as exc:
            return JobState.FAILED, str(exc), None
        except Exception as exc:
            logger.exception("job %s: unexpected error", job_id)
            return JobState.FAILED, f"{type(exc).__name__}: {exc}", None
        if not report.merged:
            return JobState.RENDERED, None, None  # chunks ready; `framefarm stitch` joins them
        return JobState.COMPLETED, None, str(report.output) if report.output else None

    def announce(self, job_id: str, notify: Notify | None = None, *, since: float | None = None) -> None:
        """Tell the outside how the job ended (webhook, EventBridge event): ``notify``, else its spec's.
        Never raises: the job's state is stored already, and an announcement that fails is only logged."""
        try:
            status = self.summary(job_id)
            self.notifier.job_ended(status, notify or status.spec.notify, since=since)
        except Exception:
            logger.warning("job %s: its end was not announced", job_id, exc_info=True)

    def job_dir(self, job_id: str) -> Path:
        """Where a job's chunk outputs live on this machine."""
        local = self.storage.local_path(job_prefix(job_id)) if self.storage is not None else None
        return local or framefarm_home() / job_prefix(job_id)

    def _save_full_logs(self, job_id: str, record: ChunkAttempt, result: WorkerResult) -> None:
        """Keep the attempt's long logs, and all of a failed attempt (logs and figures) that a retry replaces."""
        if self.storage is not None:
            keep_full_logs(self.storage, job_id, record.chunk_id, record.attempt, stdout=result.stdout,
                           stderr=result.stderr, kept_chars=self.repository.tail_chars, failed=not result.ok)
            if record.state is not ChunkState.COMPLETED:
                keep_attempt(self.storage, job_id, record)

    def _mark_cancelled(self, job_id: str) -> None:
        """Leave the cancel marker that workers of remote adapters check between stages."""
        if self.storage is None:
            return
        try:
            self.storage.put_text(cancel_key(job_id), "cancelled")
        except Exception:  # workers then run to their end; the job is cancelled all the same
            logger.warning("job %s: could not write the cancel marker", job_id, exc_info=True)
