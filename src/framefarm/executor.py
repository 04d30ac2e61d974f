"""JobExecutor: runs a JobSpec's chunks on a WorkerAdapter, then merges them.

Threads: the caller's thread coordinates — it dispatches, and every hook except the live output
ones (``RunHooks.chunk_stdout``/``chunk_stderr``/``chunk_started``, which fire on worker threads) runs
on it, in order. Pool threads run one attempt each. A retry goes back to the pool with its backoff
delay and keeps its slot while it waits, so ``concurrency`` bounds chunks in flight including those
waiting to retry; the wait ends early when the job is stopped.

Rules (each one a test in test_executor.py): at most ``concurrency`` chunks in flight; failed
chunks retried with exponential backoff and jitter (``RetryPolicy``), up to ``retries`` times for
deterministic failures (the render command's exit code, a crashed handler) and ``transient_retries``
times for transient ones (throttled out, connection lost, timed out; ``WorkerResult.kind``);
an attempt silent past its time limit plus ``watchdog_margin`` is given up on as timed out (see
``Watchdog``); after a chunk's last attempt no new chunk or retry starts, chunks already running
finish and are reported through ``attempt_finished`` and ``chunk_completed`` (their work is kept
for a resume) but ``progress`` stays silent, and ChunkFailedError is raised; cancel kills work in
flight and raises JobAbortedError.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import posixpath
import queue
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from framefarm.adapters.base import WorkerAdapter, WorkerJob, WorkerResult
from framefarm.budget import BudgetGate
from framefarm.cancel import CancelToken
from framefarm.concurrency import UNLIMITED_SLOTS
from framefarm.config import BUDGET
from framefarm.errors import ChunkFailedError, FramefarmError, JobAbortedError, JobSpecError, StitchError
from framefarm.failures import FailureKind
from framefarm.options import ExecutionOptions, ResumeState, RetryPolicy, RunHooks, Stitcher  # noqa: F401 - re-exported
from framefarm.spec import Chunk, Command, JobSpec
from framefarm.watchdog import AttemptThreads, LiveAttempt, Watchdog

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class ExecutionReport:
    """What ``execute`` did: the chunks that ran now, those skipped as done, whether a merge (the
    stitcher or the spec's merge command) ran, and the merged file when it is known."""

    ran: list[int]
    skipped: list[int]
    output: Path | None
    merged: bool = False


@dataclass(frozen=True)
class _Outcome:
    chunk: Chunk
    attempt: int
    result: WorkerResult | None  # None: stopped before the attempt started
    started_at: float = 0.0
    finished_at: float = 0.0
    key: int = -1


class JobExecutor:
    """Runs a JobSpec on one adapter. ``execute`` blocks until the job is done, failed or stopped."""

    def __init__(self, adapter: WorkerAdapter) -> None:
        self.adapter = adapter

    def execute(self, spec: JobSpec, options: ExecutionOptions | None = None, *,
                resume: ResumeState | None = None) -> ExecutionReport:
        """Run ``spec``'s chunks, then merge them (``options.merge``). ``resume`` is what earlier runs did
        (the JobManager's business): their completed chunks are skipped, attempt numbers continue."""
        options = options or ExecutionOptions()
        resume = resume or ResumeState()
        if options.stitcher is not None and options.output_file is None:
            raise JobSpecError("output_file: required when a stitcher is given (where should the video go?)")
        job_dir = Path(options.job_dir or Path.cwd()).resolve()
        _prepare_job_dir(job_dir, spec.chunks)
        done = {chunk.id for chunk in spec.chunks} & resume.completed
        todo = deque(chunk for chunk in spec.chunks if chunk.id not in done)
        stop = (options.cancel or CancelToken()).child()
        ran = _Dispatch(self.adapter, spec, options, job_dir, stop, resume).dispatch(todo, already_done=len(done))
        output, merged = None, False
        if options.merge and (options.stitcher is not None or spec.merge_command is not None):
            if stop.stopping:
                raise JobAbortedError(stop.reason or "cancelled")
            output, merged = self._merge(spec, options, job_dir, stop), True
        return ExecutionReport(ran=ran, skipped=sorted(done), output=output, merged=merged)

    def _merge(self, spec: JobSpec, options: ExecutionOptions, job_dir: Path, stop: CancelToken) -> Path | None:
        options.hooks.stitch_started()
        adapter = options.merge_adapter or self.adapter
        if options.stitcher is not None:
            assert options.output_file is not None
            output = Path(options.output_file).resolve()
            output.parent.mkdir(parents=True, exist_ok=True)
            audio = None
            if spec.audio is not None:
                self._run_merge_step(adapter, spec.audio.command, spec, options, job_dir, stop, "audio")
                audio = job_dir / spec.audio.output_file
            inputs = [job_dir / chunk.output_file for chunk in sorted(spec.chunks, key=lambda c: c.id)]
            try:
                return options.stitcher.stitch(inputs, output, audio=audio)
            except StitchError as exc:
                raise StitchError(f"Merge failed: {exc}") from exc
            except Exception as exc:
                raise FramefarmError(f"Merge failed: {type(exc).__name__}: {exc}") from exc
        assert spec.merge_command is not None
        self._run_merge_step(adapter, spec.merge_command, spec, options, job_dir, stop, "merge")
        return Path(options.output_file).resolve() if options.output_file else None

    @staticmethod
    def _run_merge_step(adapter: WorkerAdapter, command: Command, spec: JobSpec, options: ExecutionOptions,
                        job_dir: Path, stop: CancelToken, step: str) -> None:
        job = WorkerJob(command=command, cwd=job_dir, env=options.env, timeout=options.timeout,
                        meta={**options.meta, "job_id": spec.id, "step": step, "inputs": spec.inputs}, cancel=stop)
        try:
            result = adapter.execute(job)
        except Exception as exc:
            raise FramefarmError(f"Merge failed: {step} step raised {type(exc).__name__}: {exc}") from exc
        if stop.cancelled:
            raise JobAbortedError(stop.reason or "cancelled")
        if not result.ok:
            how = f"exited {result.exit_code}" if result.kind is FailureKind.EXIT_CODE else "failed"
            raise FramefarmError(f"Merge failed: {step} step {how}: {result.failure_text()}")


class _Dispatch:
    """One run of the dispatch loop; lives only for one ``execute`` call."""

    def __init__(self, adapter: WorkerAdapter, spec: JobSpec, options: ExecutionOptions, job_dir: Path,
                 stop: CancelToken, resume: ResumeState) -> None:
        self.adapter, self.spec, self.options, self.job_dir, self.stop = adapter, spec, options, job_dir, stop
        self.earlier_attempts = resume.earlier_attempts
        self.results: queue.SimpleQueue[_Outcome] = queue.SimpleQueue()
        self.live: dict[int, LiveAttempt] = {}  # attempts on the pool, by sequence number
        self.sequence = itertools.count()
        self.failures: dict[int, Counter[bool]] = {}  # chunk id -> failed attempts by transient-ness
        self.watchdog = Watchdog.for_run(options, adapter)
        self.slots = options.slots or UNLIMITED_SLOTS  # the store's budget shared with other jobs: a slot per attempt
        self.look_at: float | None = None  # when the watchdog looks again (time.monotonic()); None: work it out
        self.budget = BudgetGate.for_run(spec, options.max_cost, spent=resume.spent_usd,
                                         earlier_attempts=resume.earlier_attempts, hooks=options.hooks)

    def dispatch(self, todo: deque[Chunk], *, already_done: int) -> list[int]:
        options, stop, hooks = self.options, self.stop, self.options.hooks
        total = len(self.spec.chunks)
        completed = already_done
        ran: list[int] = []
        failure: ChunkFailedError | None = None
        self.pool = AttemptThreads(max(1, min(options.concurrency, len(todo))))
        try:
            while True:
                while (todo and len(self.live) < options.concurrency and not stop.stopping
                       and self.budget.allows_another(len(self.live))):
                    chunk = todo.popleft()
                    self._submit(chunk, self.earlier_attempts.get(chunk.id, 0) + 1, 0.0)
                if not self.live:
                    break
                outcome = self._next_outcome()
                result = outcome.result
                if result is None:
                    continue
                chunk, attempt = outcome.chunk, outcome.attempt
                self.budget.charge(result)
                hooks.attempt_finished(chunk.id, attempt, result, outcome.started_at, outcome.finished_at)
                if result.ok:
                    completed += 1
                    ran.append(chunk.id)
                    hooks.chunk_completed(chunk.id, result)
                    if failure is None:
                        hooks.progress(completed, total)
                elif stop.stopping:
                    continue  # stopped (cancel, pause or an earlier failure): no retries
                elif result.kind is FailureKind.CANCELLED:  # a remote worker saw the job's cancel marker before we did
                    stop.cancel("cancelled")
                    continue
                elif self._may_retry(chunk, result):
                    if not self.budget.allows_another(len(self.live)):
                        continue  # over the cap: the job pauses, and a resume tries the chunk again
                    delay = options.retry.backoff(self.failures[chunk.id][result.transient])
                    hooks.chunk_retrying(chunk.id, attempt, delay, result)
                    self._submit(chunk, attempt + 1, delay)
                else:
                    failure = ChunkFailedError(chunk.id, attempt, result.failure_text())
                    stop.drain("failed")
        except BaseException:
            stop.drain("failed")  # a callback raised: let work in flight finish, then re-raise
            while self.live:
                self._next_outcome()
            raise
        finally:
            self.pool.shutdown()
        if failure is not None:
            raise failure
        if stop.stopping and len(ran) + already_done < total:
            raise JobAbortedError(stop.reason or "cancelled")
        if self.budget.reached and len(ran) + already_done < total:
            raise JobAbortedError(BUDGET)
        return ran

    def _may_retry(self, chunk: Chunk, result: WorkerResult) -> bool:
        """Count the failure; deterministic ones get ``retries`` more tries, transient ones ``transient_retries``."""
        counts = self.failures.setdefault(chunk.id, Counter())
        counts[result.transient] += 1
        return counts[result.transient] <= self.options.retry.allowed(result.transient)

    def _submit(self, chunk: Chunk, attempt: int, delay: float) -> None:
        key = next(self.sequence)
        # an attempt the watchdog may give up on gets its own token, so it alone can be killed
        token = self.stop.child() if self.watchdog.limit is not None else self.stop
        live = LiveAttempt(chunk, attempt, token)
        self.live[key] = live
        self.pool.submit(lambda: self._attempt(key, live, delay), live)

    def _next_outcome(self) -> _Outcome:
        """The next attempt's outcome; when an attempt outlives the watchdog's limit, a timed-out one for it."""
        while True:
            if self.look_at is None:  # else still a safe time to look: see Watchdog.next_deadline
                self.look_at = self.watchdog.next_deadline(self.live.values())
            wait = None if self.look_at is None else max(0.0, self.look_at - time.monotonic())
            try:
                outcome = self.results.get(timeout=wait)
            except queue.Empty:
                self.look_at = None
                for key, live in list(self.live.items()):
                    result = self.watchdog.verdict(live)
                    if result is not None:
                        if not self.pool.retire(live):
                            continue  # it answered as the watchdog looked: its outcome is queued, take that
                        del self.live[key]
                        live.token.cancel("stuck")  # kills local work; a remote call ends at its own timeout
                        self.stop.release(live.token)
                        logger.warning("job %s chunk %d attempt %d: %s", self.spec.id, live.chunk.id, live.attempt,
                                       result.error)
                        return _Outcome(live.chunk, live.attempt, result, live.started_at, self.options.clock())
                continue
            answered = self.live.pop(outcome.key, None)
            if answered is not None:
                self.stop.release(answered.token)
                return outcome
            logger.warning("job %s chunk %d attempt %d answered after the watchdog gave up on it; ignored",
                           self.spec.id, outcome.chunk.id, outcome.attempt)

    def _attempt(self, key: int, live: LiveAttempt, delay: float) -> None:
        """Run one attempt on a pool thread; always puts exactly one outcome on the queue."""
        options, chunk, attempt = self.options, live.chunk, live.attempt
        try:
            if (delay > 0 and self.stop.wait(delay)) or self.stop.stopping or not self.slots.acquire(self.stop):
                self.results.put(_Outcome(chunk, attempt, None, key=key))
                return
            try:
                options.hooks.chunk_started(chunk.id, attempt)
                live.started_at = options.clock()
                live.sent()
                result = self.adapter.execute(self._worker_job(chunk, attempt, live))
            except Exception as exc:
                result = _raised(exc)
            finally:
                self.slots.release()
            self.results.put(_Outcome(chunk, attempt, result, live.started_at, options.clock(), key=key))
        except BaseException as exc:  # a callback raised: report it as this attempt's failure
            self.results.put(_Outcome(chunk, attempt, _raised(exc), key=key))

    def _worker_job(self, chunk: Chunk, attempt: int, live: LiveAttempt) -> WorkerJob:
        options, hooks = self.options, self.options.hooks
        on_out = hooks.chunk_stdout if hooks.listens_to("chunk_stdout") else None
        on_err = hooks.chunk_stderr if hooks.listens_to("chunk_stderr") else None
        return WorkerJob(
            command=chunk.command,
            cwd=self.job_dir,
            env=options.env,
            timeout=options.timeout,
            meta={**options.meta, "job_id": self.spec.id, "chunk_id": chunk.id, "attempt": attempt,
                  "start_frame": chunk.start_frame, "frame_count": chunk.frame_count,
                  "output_file": chunk.output_file, "inputs": self.spec.inputs},
            cancel=live.token,
            on_stdout=(lambda text: on_out(chunk.id, text)) if on_out else None,
            on_stderr=(lambda text: on_err(chunk.id, text)) if on_err else None,
            on_sent=live.sent,
        )


def _raised(exc: BaseException) -> WorkerResult:
    """The failed attempt of an adapter (or a callback) that raised instead of returning a result:
    ``connection_lost`` for a transport error that got past the adapter (Python's ConnectionError:
    reset, refused, aborted, broken pipe), ``function_error`` for anything else."""
    kind = FailureKind.CONNECTION_LOST if isinstance(exc, ConnectionError) else FailureKind.FUNCTION_ERROR
    return WorkerResult(kind=kind, error=f"{type(exc).__name__}: {exc}")


def _prepare_job_dir(job_dir: Path, chunks: Sequence[Chunk]) -> None:
    # String dirnames, not Path objects: this runs over every chunk of jobs with 10,000s of them.
    for parent in {posixpath.dirname(chunk.output_file) for chunk in chunks}:
        with contextlib.suppress(FileExistsError):
            (job_dir / parent).mkdir(parents=True, exist_ok=True)
