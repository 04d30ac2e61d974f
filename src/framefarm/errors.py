"""One exception tree for everything framefarm raises on purpose.

    FramefarmError
    ├── JobSpecError          a job file or spec is invalid (names the field and the bad value)
    ├── ChunkFailedError      a chunk failed after its last attempt
    ├── JobAbortedError       the job was cancelled or paused before it finished
    ├── StitchError           chunk outputs cannot be joined (names the offending chunk)
    ├── JobNotFoundError      no job with that id in the store
    ├── JobStateError         the job is not in a state that allows the operation
    ├── StorageError          the store did not do what was asked, or gave back other bytes (names the key)
    └── ToolNotFoundError     a required program or library is missing or too old (ffmpeg, SQLite)

Every message is one line that says what happened and, where it helps, what to do.
"""

from __future__ import annotations

from collections.abc import Sequence


class FramefarmError(Exception):
    """Root of every error framefarm raises on purpose."""


class JobSpecError(FramefarmError, ValueError):
    """A job file or JobSpec is invalid; the message names the field and the bad value.

    ``field`` and ``detail``, when set, are the message's two halves (``field: detail``).
    """

    def __init__(self, message: str, *, field: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.detail = detail or message


class ChunkFailedError(FramefarmError):
    """A chunk failed on its last allowed attempt."""

    def __init__(self, chunk_id: int, attempts: int, detail: str) -> None:
        self.chunk_id = chunk_id
        self.attempts = attempts
        self.detail = detail
        noun = "attempt" if attempts == 1 else "attempts"
        super().__init__(f"Chunk {chunk_id} failed after {attempts} {noun}: {detail}")


class JobAbortedError(FramefarmError):
    """The job stopped before finishing because it was cancelled or paused."""

    def __init__(self, reason: str = "cancelled", *, job_id: str | None = None) -> None:
        self.reason = reason
        self.job_id = job_id
        super().__init__(f"Job {job_id} {reason}" if job_id else f"Job {reason}")


class StitchError(FramefarmError):
    """Chunk outputs cannot be stitched; the message names the first offending chunk."""


class JobNotFoundError(FramefarmError, KeyError):
    """No job with the given id exists in the store."""

    def __init__(self, job_id: str, message: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(message or f"No job {job_id!r} in the job store")

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class JobStateError(FramefarmError):
    """The job's current state does not allow the requested operation."""


class StorageError(FramefarmError):
    """The object store refused part of an operation, or an object failed its integrity check."""


class ToolNotFoundError(FramefarmError):
    """A program or library framefarm needs cannot be found or run (ffmpeg), or is too old (SQLite)."""


def shown(text: str) -> str:
    """``text`` (a key, a name from the input) for a one-line message: as is when printable, else
    quoted with its line breaks and control characters escaped, as ``repr`` does."""
    return text if text.isprintable() else repr(text)


def id_list(ids: Sequence[int], limit: int = 20) -> str:
    """``ids`` for a one-line message: the first ``limit`` of them, then "…" when there are more."""
    return ", ".join(map(str, ids[:limit])) + (" …" if len(ids) > limit else "")
