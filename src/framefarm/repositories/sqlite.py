"""SqliteJobRepository: the embedded default store (``.framefarm/jobs.db``).

One row per job (with its counters) and one row per chunk. Recording an attempt is one transaction:
a conditional UPDATE of the chunk row (not completed, attempt number not seen) and, only if that
changed a row, an UPDATE that adds the attempt's amounts to the job's counters. WAL mode lets other
processes (``framefarm status``) read while a render writes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from framefarm.repositories.base import JobRepository
from framefarm.spec import JobSpec
from framefarm.status import ChunkAttempt, ChunkRecord, ChunkState, JobMetrics, JobState, JobStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    total_chunks INTEGER NOT NULL,
    completed_chunks INTEGER NOT NULL DEFAULT 0,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    total_duration_ms REAL NOT NULL DEFAULT 0,
    total_billed_duration_ms INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    error TEXT,
    output TEXT,
    requested TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    heartbeat_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at DESC);
CREATE TABLE IF NOT EXISTS chunks (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    chunk_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    duration_ms REAL NOT NULL DEFAULT 0,
    billed_duration_ms INTEGER NOT NULL DEFAULT 0,
    memory_mb INTEGER,
    max_memory_used_mb INTEGER,
    init_duration_ms REAL,
    request_id TEXT,
    cost_usd REAL NOT NULL DEFAULT 0,
    stdout_tail TEXT NOT NULL DEFAULT '',
    stderr_tail TEXT NOT NULL DEFAULT '',
    error TEXT,
    output TEXT,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (job_id, chunk_id)
) WITHOUT ROWID;
"""

JOB_COLUMNS = ("id, spec, state, total_chunks, completed_chunks, failed_attempts, total_duration_ms, "
               "total_billed_duration_ms, cost_usd, error, output, requested, created_at, updated_at, "
               "heartbeat_at")
CHUNK_FIELDS = tuple(name for name in ChunkRecord.model_fields if name != "chunk_id")


class SqliteJobRepository(JobRepository):
    """Jobs in one SQLite file; safe across threads (one connection behind a lock) and processes (WAL)."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode is durable across application crashes; only power loss can drop the
        # last commits, which a resume then re-runs.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._transaction() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def save(self, status: JobStatus) -> None:
        metrics = status.metrics
        with self._transaction() as db:
            db.execute("DELETE FROM chunks WHERE job_id = ?", (status.id,))
            db.execute(
                f"INSERT OR REPLACE INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join('?' * 15)})",
                (status.id, status.spec.model_dump_json(), status.state.value, status.total_chunks,
                 status.completed_chunks, metrics.failed_attempts, metrics.total_duration_ms,
                 metrics.total_billed_duration_ms, metrics.cost_usd, status.error, status.output,
                 status.requested, status.created_at, status.updated_at, status.heartbeat_at),
            )
            db.executemany(
                f"INSERT INTO chunks (job_id, chunk_id, {', '.join(CHUNK_FIELDS)}) "
                f"VALUES (?, ?, {', '.join('?' * len(CHUNK_FIELDS))})",
                [(status.id, record.chunk_id, *_chunk_values(record)) for record in status.chunks],
            )

    def get(self, job_id: str) -> JobStatus | None:
        with self._lock:
            row = self._db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            chunk_rows = self._db.execute(
                "SELECT * FROM chunks WHERE job_id = ? ORDER BY chunk_id", (job_id,)).fetchall()
        return _job_from_row(row, [_chunk_from_row(chunk) for chunk in chunk_rows])

    def list(self, limit: int | None = None) -> list[JobStatus]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC LIMIT ?",
                (-1 if limit is None else limit,)).fetchall()
        return [_job_from_row(row, []) for row in rows]

    def delete(self, job_id: str) -> bool:
        with self._transaction() as db:
            db.execute("DELETE FROM chunks WHERE job_id = ?", (job_id,))
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def record_attempt(self, job_id: str, attempt: ChunkAttempt) -> bool:
        deltas = attempt.counter_deltas()
        with self._transaction() as db:
            changed = db.execute(
                """UPDATE chunks SET state = ?, attempts = ?, duration_ms = duration_ms + ?,
                       billed_duration_ms = billed_duration_ms + ?, cost_usd = cost_usd + ?,
                       memory_mb = ?, max_memory_used_mb = ?, init_duration_ms = ?, request_id = ?,
                       stdout_tail = ?, stderr_tail = ?, error = ?, output = ?,
                       started_at = COALESCE(?, started_at), finished_at = ?
                   WHERE job_id = ? AND chunk_id = ? AND state != 'completed' AND attempts < ?""",
                (attempt.state.value, attempt.attempt, attempt.duration_ms, attempt.billed_duration_ms,
                 attempt.cost_usd, attempt.memory_mb, attempt.max_memory_used_mb, attempt.init_duration_ms,
                 attempt.request_id, attempt.stdout_tail, attempt.stderr_tail, attempt.error, attempt.output,
                 attempt.started_at, attempt.finished_at, job_id, attempt.chunk_id, attempt.attempt),
            ).rowcount
            if not changed:
                return False
            db.execute(
                """UPDATE jobs SET completed_chunks = completed_chunks + ?, failed_attempts = failed_attempts + ?,
                       total_duration_ms = total_duration_ms + ?,
                       total_billed_duration_ms = total_billed_duration_ms + ?, cost_usd = cost_usd + ?,
                       updated_at = COALESCE(?, updated_at)
                   WHERE id = ?""",
                (deltas["completed_chunks"], deltas["failed_attempts"], deltas["total_duration_ms"],
                 deltas["total_billed_duration_ms"], deltas["cost_usd"], attempt.finished_at, job_id),
            )
            return True

    def mark_chunk_running(self, job_id: str, chunk_id: int, attempt: int, now: float) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE chunks SET state = 'running', started_at = ? "
                "WHERE job_id = ? AND chunk_id = ? AND state != 'completed'",
                (now, job_id, chunk_id))

    def set_state(self, job_id: str, state: JobState, *, now: float, error: str | None = None,
                  output: str | None = None, expected: Collection[JobState] | None = None) -> bool:
        sql = ("UPDATE jobs SET state = ?, error = ?, updated_at = ?, requested = NULL, "
               "output = COALESCE(?, output) WHERE id = ?")
        params: list[Any] = [state.value, error, now, output, job_id]
        if expected is not None:
            states = [s.value for s in expected]
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            params.extend(states)
        with self._lock:
            return self._db.execute(sql, params).rowcount > 0

    def request(self, job_id: str, action: str | None) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET requested = ? WHERE id = ?", (action, job_id))

    def heartbeat(self, job_id: str, now: float) -> str | None:
        with self._lock:
            row = self._db.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ? RETURNING requested",
                                   (now, job_id)).fetchone()
        return None if row is None else row["requested"]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _chunk_values(record: ChunkRecord) -> tuple[Any, ...]:
    return tuple(getattr(record, name).value if name == "state" else getattr(record, name)
                 for name in CHUNK_FIELDS)


def _chunk_from_row(row: sqlite3.Row) -> ChunkRecord:
    values = {name: row[name] for name in CHUNK_FIELDS}
    values["state"] = ChunkState(values["state"])
    return ChunkRecord(chunk_id=row["chunk_id"], **values)


def _job_from_row(row: sqlite3.Row, chunks: list[ChunkRecord]) -> JobStatus:
    return JobStatus(
        id=row["id"], spec=JobSpec.model_validate_json(row["spec"]), state=JobState(row["state"]),
        total_chunks=row["total_chunks"], completed_chunks=row["completed_chunks"], error=row["error"],
        output=row["output"], requested=row["requested"], created_at=row["created_at"],
        updated_at=row["updated_at"], heartbeat_at=row["heartbeat_at"],
        metrics=JobMetrics(total_duration_ms=row["total_duration_ms"],
                           total_billed_duration_ms=row["total_billed_duration_ms"],
                           cost_usd=row["cost_usd"], failed_attempts=row["failed_attempts"]),
        chunks=chunks,
    )
