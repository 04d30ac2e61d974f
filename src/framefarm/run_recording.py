"""What a run tells its job store: every attempt as it starts and ends (through the run's
``StoreWriter``), its full logs when longer than a record keeps, and the move to ``stitching`` —
then the caller's own hooks hear the same events."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from framefarm.adapters.base import WorkerResult
from framefarm.config import LEASE_LOST
from framefarm.errors import JobAbortedError
from framefarm.failures import FailureKind
from framefarm.options import RunHooks
from framefarm.redaction import redact_result
from framefarm.repositories.base import JobRepository
from framefarm.spec import JobSpec
from framefarm.status import ChunkAttempt, ChunkStarted, ChunkState, JobState, tail
from framefarm.store_writer import StoreWriter

KeepLogs = Callable[[ChunkAttempt, WorkerResult], None]  # (the attempt's record, result): full logs to storage


class RecordingHooks(RunHooks):
    """Writes each event of a run to the job store first, then tells the caller's hooks.

    ``owner`` is the run's lease: the move to ``stitching`` is written only while it holds the job.
    """

    def __init__(self, repository: JobRepository, writer: StoreWriter, job_id: str, owner: str, *,
                 caller: RunHooks, spec: JobSpec, job_dir: Path, secrets: Iterable[str],
                 keep_logs: KeepLogs, clock: Callable[[], float]) -> None:
        self._repository, self._writer, self._job_id, self._owner = repository, writer, job_id, owner
        self._caller, self._secrets, self._keep_logs, self._clock = caller, secrets, keep_logs, clock
        self._base = str(job_dir)
        self._outputs = {chunk.id: chunk.output_file for chunk in spec.chunks}
        for name in ("chunk_stdout", "chunk_stderr"):  # streamed only when the caller listens
            if caller.listens_to(name):
                setattr(self, name, getattr(caller, name))
        self.progress, self.chunk_retrying, self.chunk_completed, self.budget_reached = (  # type: ignore[method-assign]
            caller.progress, caller.chunk_retrying, caller.chunk_completed, caller.budget_reached)

    def chunk_started(self, chunk_id: int, attempt: int) -> None:
        self._writer.put(ChunkStarted(chunk_id, attempt, self._clock()))
        self._caller.chunk_started(chunk_id, attempt)

    def attempt_finished(self, chunk_id: int, attempt: int, result: WorkerResult, started_at: float,
                         finished_at: float) -> None:
        result = redact_result(result, self._secrets)
        record = attempt_record(chunk_id, attempt, result, started_at, finished_at,
                                output=result.output_location or f"{self._base}/{self._outputs[chunk_id]}")
        self._keep_logs(record, result)
        self._writer.put(record)
        self._caller.attempt_finished(chunk_id, attempt, result, started_at, finished_at)

    def stitch_started(self) -> None:
        self._writer.flush()  # the store shows every chunk done before it shows the job stitching
        if not self._repository.set_state(self._job_id, JobState.STITCHING, now=self._clock(),
                                          expected={JobState.RUNNING}, owner=self._owner):
            raise JobAbortedError(LEASE_LOST)  # another runner holds the job now: it stitches, not us
        self._caller.stitch_started()


def attempt_record(chunk_id: int, attempt: int, result: WorkerResult, started: float, finished: float, *,
                   output: str) -> ChunkAttempt:
    """The chunk store's record of one attempt."""
    if result.ok:
        state = ChunkState.COMPLETED
    elif result.kind is FailureKind.CANCELLED:
        state = ChunkState.CANCELLED
    else:
        state = ChunkState.FAILED
    error = None if result.ok else result.reason
    return ChunkAttempt(
        chunk_id=chunk_id, attempt=attempt, state=state, duration_ms=result.duration_ms,
        billed_duration_ms=result.billed_duration_ms or 0, memory_mb=result.memory_mb,
        max_memory_used_mb=result.max_memory_used_mb, init_duration_ms=result.init_duration_ms,
        request_id=result.request_id, cost_usd=result.cost_usd or 0.0, throttles=result.throttles,
        stdout_tail=tail(result.stdout), stderr_tail=tail(result.stderr), error=error, kind=result.kind,
        output=output if result.ok else None, started_at=started or None, finished_at=finished or None,
    )
