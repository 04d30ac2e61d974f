"""The job store contract every backend implements, and the logic they share.

Writes per event are O(1): ``record_attempt`` touches one chunk record and the job's counters in one
atomic step and is idempotent (see :func:`framefarm.status.apply_attempt`); ``set_state`` is a
conditional transition, so two processes cannot both move a job out of the same state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection

from framefarm.errors import JobNotFoundError
from framefarm.status import ChunkAttempt, JobState, JobStatus


class JobRepository(ABC):
    """Where jobs live. Implementations must be safe to call from many threads at once."""

    @abstractmethod
    def save(self, status: JobStatus) -> None:
        """Insert or replace a whole job with its chunk records (at creation; not per event)."""

    @abstractmethod
    def get(self, job_id: str) -> JobStatus | None:
        """The job with all its chunk records, or None."""

    @abstractmethod
    def list(self, limit: int | None = None) -> list[JobStatus]:
        """Jobs newest first, without chunk records (``chunks`` is empty; counters are filled)."""

    @abstractmethod
    def delete(self, job_id: str) -> bool:
        """Remove the job and its chunk records; False when there was none."""

    @abstractmethod
    def record_attempt(self, job_id: str, attempt: ChunkAttempt) -> bool:
        """Record one chunk attempt and move the job counters; False when already recorded."""

    @abstractmethod
    def mark_chunk_running(self, job_id: str, chunk_id: int, attempt: int, now: float) -> None:
        """Note that an attempt started (for status displays and stuck-chunk detection)."""

    @abstractmethod
    def set_state(self, job_id: str, state: JobState, *, now: float, error: str | None = None,
                  output: str | None = None, expected: Collection[JobState] | None = None) -> bool:
        """Move the job to ``state`` (only from ``expected`` states, when given); clears any request."""

    @abstractmethod
    def request(self, job_id: str, action: str | None) -> None:
        """Ask the process running a job to ``cancel`` or ``pause`` it (None clears the request)."""

    @abstractmethod
    def heartbeat(self, job_id: str, now: float) -> str | None:
        """Note that the job's runner is alive; returns the pending request, if any."""

    def require(self, job_id: str) -> JobStatus:
        """The job, or JobNotFoundError."""
        status = self.get(job_id)
        if status is None:
            raise JobNotFoundError(job_id)
        return status

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing to release
        """Release connections; the default has none."""
