"""InMemoryJobRepository: the reference store, for tests and one-process use."""

from __future__ import annotations

import threading
from collections.abc import Collection

from framefarm.repositories.base import JobRepository
from framefarm.status import ChunkAttempt, ChunkRecord, ChunkState, JobMetrics, JobState, JobStatus, apply_attempt


class InMemoryJobRepository(JobRepository):
    """Jobs in a dict behind one lock. Chunk records are kept apart from the job so updates stay O(1)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobStatus] = {}
        self._chunks: dict[str, dict[int, ChunkRecord]] = {}

    def save(self, status: JobStatus) -> None:
        with self._lock:
            self._jobs[status.id] = status.model_copy(update={"chunks": []})
            self._chunks[status.id] = {record.chunk_id: record for record in status.chunks}

    def get(self, job_id: str) -> JobStatus | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            chunks = sorted(self._chunks[job_id].values(), key=lambda record: record.chunk_id)
            return job.model_copy(update={"chunks": chunks})

    def list(self, limit: int | None = None) -> list[JobStatus]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda job: job.created_at, reverse=True)
        return jobs[:limit] if limit is not None else jobs

    def delete(self, job_id: str) -> bool:
        with self._lock:
            self._chunks.pop(job_id, None)
            return self._jobs.pop(job_id, None) is not None

    def record_attempt(self, job_id: str, attempt: ChunkAttempt) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            records = self._chunks.get(job_id)
            if job is None or records is None:
                return False
            current = records.get(attempt.chunk_id, ChunkRecord(chunk_id=attempt.chunk_id))
            updated = apply_attempt(current, attempt)
            if updated is None:
                return False
            records[attempt.chunk_id] = updated
            deltas = attempt.counter_deltas()
            metrics = job.metrics
            self._jobs[job_id] = job.model_copy(update={
                "completed_chunks": job.completed_chunks + int(deltas["completed_chunks"]),
                "updated_at": attempt.finished_at or job.updated_at,
                "metrics": JobMetrics(
                    total_duration_ms=metrics.total_duration_ms + deltas["total_duration_ms"],
                    total_billed_duration_ms=metrics.total_billed_duration_ms
                    + int(deltas["total_billed_duration_ms"]),
                    cost_usd=metrics.cost_usd + deltas["cost_usd"],
                    failed_attempts=metrics.failed_attempts + int(deltas["failed_attempts"]),
                ),
            })
            return True

    def mark_chunk_running(self, job_id: str, chunk_id: int, attempt: int, now: float) -> None:
        with self._lock:
            records = self._chunks.get(job_id)
            if records is None:
                return
            current = records.get(chunk_id, ChunkRecord(chunk_id=chunk_id))
            if current.state is not ChunkState.COMPLETED:
                records[chunk_id] = current.model_copy(update={"state": ChunkState.RUNNING, "started_at": now})

    def set_state(self, job_id: str, state: JobState, *, now: float, error: str | None = None,
                  output: str | None = None, expected: Collection[JobState] | None = None) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or (expected is not None and job.state not in expected):
                return False
            update: dict[str, object] = {"state": state, "error": error, "updated_at": now, "requested": None}
            if output is not None:
                update["output"] = output
            self._jobs[job_id] = job.model_copy(update=update)
            return True

    def request(self, job_id: str, action: str | None) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                self._jobs[job_id] = job.model_copy(update={"requested": action})

    def heartbeat(self, job_id: str, now: float) -> str | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            self._jobs[job_id] = job.model_copy(update={"heartbeat_at": now})
            return job.requested
