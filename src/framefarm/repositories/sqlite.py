"""SqliteJobRepository: the embedded default store (``.framefarm/jobs.db``).

One row per job (with its counters) and one row per chunk. Recording an attempt is one transaction:
a conditional UPDATE of the chunk row (not completed, attempt number not seen) and, only if that
changed a row, an UPDATE that adds the attempt's amounts to the job's counters. WAL mode lets other
processes (``framefarm status``) read while a render writes.

The SQL must run on SQLite 3.31 (Ubuntu 20.04's; Debian 11 ships 3.34): no RETURNING, UPDATE ... FROM,
STRICT tables or JSON arrows (tests/unit/repositories/test_sqlite_portability.py checks every statement).
An older library is refused when the store opens.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from framefarm.concurrency import SlotAsk, SlotHolder, grantable
from framefarm.errors import ToolNotFoundError
from framefarm.lease import Beat, Lease
from framefarm.repositories.base import JobRepository, SpecCache
from framefarm.spec import JobSpec
from framefarm.status import (
    ChunkAttempt,
    ChunkEvent,
    ChunkRecord,
    ChunkStarted,
    ChunkState,
    DeliveryRecord,
    JobMetrics,
    JobRecord,
    JobState,
    SpecLoader,
)

MIN_SQLITE_VERSION = (3, 31, 0)

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
    heartbeat_at REAL,
    lease_owner TEXT,
    lease_until REAL,
    client_token TEXT
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
    throttles INTEGER NOT NULL DEFAULT 0,
    stdout_tail TEXT NOT NULL DEFAULT '',
    stderr_tail TEXT NOT NULL DEFAULT '',
    error TEXT,
    kind TEXT,
    output TEXT,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (job_id, chunk_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS slot_holders (
    owner TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    wants INTEGER NOT NULL DEFAULT 0,
    priority REAL NOT NULL DEFAULT 1,
    since REAL NOT NULL,
    lease_until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    outcomes TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    next_at REAL,
    PRIMARY KEY (job_id, delivery_id)
) WITHOUT ROWID;
"""
HOLDER_COLUMNS = "owner, job_id, held, wants, priority, since, lease_until"
# Taking slots: the runner's row, created with its place in the queue or updated (held + those taken).
PUT_HOLDER = f"""
INSERT INTO slot_holders ({HOLDER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (owner) DO UPDATE SET held = held + excluded.held, wants = excluded.wants,
    priority = excluded.priority, lease_until = excluded.lease_until"""

RECORD_ATTEMPT = """
UPDATE chunks SET state = ?, attempts = ?, duration_ms = duration_ms + ?,
    billed_duration_ms = billed_duration_ms + ?, cost_usd = cost_usd + ?, throttles = throttles + ?,
    memory_mb = ?, max_memory_used_mb = ?, init_duration_ms = ?, request_id = ?,
    stdout_tail = ?, stderr_tail = ?, error = ?, kind = ?, output = ?,
    started_at = COALESCE(?, started_at), finished_at = ?
WHERE job_id = ? AND chunk_id = ? AND state != 'completed' AND attempts < ?"""
MARK_RUNNING = ("UPDATE chunks SET state = 'running', started_at = ? "
                "WHERE job_id = ? AND chunk_id = ? AND state != 'completed'")
ADD_COUNTERS = """
UPDATE jobs SET completed_chunks = completed_chunks + ?, failed_attempts = failed_attempts + ?,
    total_duration_ms = total_duration_ms + ?, total_billed_duration_ms = total_billed_duration_ms + ?,
    cost_usd = cost_usd + ?, updated_at = COALESCE(?, updated_at)
WHERE id = ?"""

# A webhook delivery moves only forward: never back from a final state, never to fewer attempts.
RECORD_DELIVERY = """
INSERT INTO deliveries (job_id, delivery_id, event, url, body, state, attempts, outcomes, error, created_at,
    updated_at, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job_id, delivery_id) DO UPDATE SET state = excluded.state, attempts = excluded.attempts,
    outcomes = excluded.outcomes, error = excluded.error, updated_at = excluded.updated_at, next_at = excluded.next_at
WHERE deliveries.state = 'pending' AND deliveries.attempts <= excluded.attempts"""
DELIVERY_FIELDS = tuple(DeliveryRecord.model_fields)

JOB_COLUMNS = ("id, spec, state, total_chunks, completed_chunks, failed_attempts, total_duration_ms, "
               "total_billed_duration_ms, cost_usd, error, output, requested, created_at, updated_at, "
               "heartbeat_at, lease_owner, lease_until, client_token")
# Columns added since the first release, by table: a jobs.db made before them gets them on open.
ADDED_COLUMNS = {"jobs": {"lease_owner": "TEXT", "lease_until": "REAL", "client_token": "TEXT"},
                 "chunks": {"kind": "TEXT"}}
LEASE_FREE = "(lease_until IS NULL OR lease_until <= ?)"
SUMMARY_COLUMNS = JOB_COLUMNS.replace("spec, ", "", 1)  # listings and summaries read a spec only when asked
CHUNK_FIELDS = tuple(name for name in ChunkRecord.model_fields if name != "chunk_id")
assert CHUNK_FIELDS[0] == "state"  # _chunk_values relies on it
RECORD_FIELDS = ("chunk_id", *CHUNK_FIELDS)
CHUNK_LIST = TypeAdapter(list[ChunkRecord])  # one validator call for all of a job's chunk rows


class SqliteJobRepository(JobRepository):
    """Jobs in one SQLite file; safe across threads (one connection behind a lock) and processes (WAL)."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        check_sqlite_version()
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._specs = SpecCache()
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
            for table, added in ADDED_COLUMNS.items():
                present = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
                for column, kind in added.items():
                    if column not in present:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

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

    def save(self, status: JobRecord) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM chunks WHERE job_id = ?", (status.id,))
            db.execute("DELETE FROM jobs WHERE id = ?", (status.id,))
            self._insert(db, status)

    def create(self, status: JobRecord) -> JobRecord | None:
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM jobs WHERE id = ?", (status.id,)).fetchone() is None:
                self._insert(db, status)
                return None
        return self.get(status.id, chunks=False)

    def _insert(self, db: sqlite3.Connection, status: JobRecord) -> None:
        """Insert a job and its touched chunk rows (inside the caller's transaction)."""
        metrics = status.metrics
        spec_json = status.spec.model_dump_json()
        self._specs.remember(status.id, spec_json, status.spec)
        db.execute(
            f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join('?' * 18)})",
            (status.id, spec_json, status.state.value, status.total_chunks,
             status.completed_chunks, metrics.failed_attempts, metrics.total_duration_ms,
             metrics.total_billed_duration_ms, metrics.cost_usd, status.error, status.output,
             status.pending_action, status.created_at, status.updated_at, status.heartbeat_at,
             status.lease_owner, status.lease_until, status.client_token),
        )
        # Chunks without a record, or with an untouched one, are plain pending rows.
        touched = [record for record in status.chunks if not _untouched(record)]
        db.executemany(
            f"INSERT INTO chunks (job_id, chunk_id, {', '.join(CHUNK_FIELDS)}) "
            f"VALUES (?, ?, {', '.join('?' * len(CHUNK_FIELDS))})",
            [(status.id, record.chunk_id, *_chunk_values(record)) for record in touched],
        )
        db.executemany("INSERT OR IGNORE INTO chunks (job_id, chunk_id, state) VALUES (?, ?, 'pending')",
                       [(status.id, chunk.id) for chunk in status.spec.chunks])

    def get(self, job_id: str, *, chunks: bool = True) -> JobRecord | None:
        with self._lock:
            columns = JOB_COLUMNS if chunks else SUMMARY_COLUMNS
            row = self._db.execute(f"SELECT {columns} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if not chunks:
                return _job_from_row(row, partial(self._spec_of, job_id), [])
            chunk_rows = self._db.execute(
                f"SELECT chunk_id, {', '.join(CHUNK_FIELDS)} FROM chunks WHERE job_id = ? ORDER BY chunk_id",
                (job_id,)).fetchall()
        records = CHUNK_LIST.validate_python([dict(zip(RECORD_FIELDS, chunk, strict=True)) for chunk in chunk_rows])
        return _job_from_row(row, self._spec(row), records)

    def chunk_states(self, job_id: str) -> dict[int, tuple[ChunkState, int]]:
        with self._lock:
            rows = self._db.execute("SELECT chunk_id, state, attempts FROM chunks WHERE job_id = ?",
                                    (job_id,)).fetchall()
        return {chunk_id: (ChunkState(state), attempts) for chunk_id, state, attempts in rows}

    def list(self, limit: int | None = None) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM jobs ORDER BY created_at DESC LIMIT ?",
                (-1 if limit is None else limit,)).fetchall()
        return [_job_from_row(row, partial(self._spec_of, row["id"]), []) for row in rows]

    def delete(self, job_id: str) -> bool:
        with self._transaction() as db:
            db.execute("DELETE FROM chunks WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM deliveries WHERE job_id = ?", (job_id,))
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def record_batch(self, job_id: str, events: Sequence[ChunkEvent]) -> int:
        """All events in one transaction: each attempt's chunk UPDATE is conditional, and the job's
        counters move once, by the sum of the attempts that applied."""
        totals = {"completed_chunks": 0, "failed_attempts": 0, "total_duration_ms": 0.0,
                  "total_billed_duration_ms": 0, "cost_usd": 0.0}
        applied = 0
        updated_at: float | None = None
        with self._transaction() as db:
            for event in events:
                if isinstance(event, ChunkStarted):
                    db.execute(MARK_RUNNING, (event.at, job_id, event.chunk_id))
                    continue
                if db.execute(RECORD_ATTEMPT, _attempt_values(job_id, event)).rowcount:
                    applied += 1
                    for name, delta in event.counter_deltas().items():
                        totals[name] += delta
                    updated_at = event.finished_at or updated_at
            if applied:
                db.execute(ADD_COUNTERS, (*totals.values(), updated_at, job_id))
        return applied

    def set_state(self, job_id: str, state: JobState, *, now: float, error: str | None = None,
                  output: str | None = None, expected: Collection[JobState] | None = None,
                  owner: str | None = None, free_at: float | None = None, release: bool = False) -> bool:
        sql = ("UPDATE jobs SET state = ?, error = ?, updated_at = ?, requested = NULL, "
               "output = COALESCE(?, output)")
        if release or not state.is_active:
            sql += ", lease_owner = NULL, lease_until = NULL"
        sql += " WHERE id = ?"
        params: list[Any] = [state.value, error, now, output, job_id]
        if expected is not None:
            states = [s.value for s in expected]
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            params.extend(states)
        if owner is not None:
            sql += " AND lease_owner = ?"
            params.append(owner)
        if free_at is not None:
            sql += f" AND {LEASE_FREE}"
            params.append(free_at)
        with self._lock:
            return self._db.execute(sql, params).rowcount > 0

    def take_lease(self, job_id: str, lease: Lease, *, now: float, expected: Collection[JobState],
                   successor_of: str | None = None) -> bool:
        states = [s.value for s in expected]
        sql = ("UPDATE jobs SET state = 'running', error = NULL, updated_at = ?, heartbeat_at = ?, "
               "lease_owner = ?, lease_until = ? "
               f"WHERE id = ? AND state IN ({', '.join('?' * len(states))}) "
               f"AND ({LEASE_FREE} OR lease_owner = ? OR lease_owner = ?)")
        params = [now, now, lease.owner, lease.until, job_id, *states, now, lease.owner, successor_of or lease.owner]
        with self._lock:
            return self._db.execute(sql, params).rowcount > 0

    def renew_lease(self, job_id: str, lease: Lease, *, now: float) -> Beat | None:
        # Two statements in one transaction rather than UPDATE ... RETURNING, which needs SQLite 3.35.
        with self._transaction() as db:
            if not db.execute("UPDATE jobs SET heartbeat_at = ?, lease_until = ? WHERE id = ? AND lease_owner = ?",
                              (now, lease.until, job_id, lease.owner)).rowcount:
                return None
            row = db.execute("SELECT requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Beat(row["requested"])

    def hand_over(self, job_id: str, owner: str, successor: Lease) -> bool:
        with self._lock:
            return self._db.execute("UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE id = ? AND lease_owner = ?",
                                    (successor.owner, successor.until, job_id, owner)).rowcount > 0

    def reopen_chunks(self, job_id: str, chunk_ids: Collection[int], *, state: JobState, now: float,
                      expected: Collection[JobState], gone_owner: str | None = None) -> builtins.list[int] | None:
        states = [s.value for s in expected]
        with self._transaction() as db:
            row = db.execute("SELECT state, lease_owner, lease_until FROM jobs WHERE id = ?", (job_id,)).fetchone()
            held = row is not None and (row["lease_until"] or 0) > now and row["lease_owner"] != gone_owner
            if row is None or row["state"] not in states or held:
                return None
            reopened = sorted(cid for cid in set(chunk_ids) if db.execute(
                "UPDATE chunks SET state = 'pending', output = NULL "
                "WHERE job_id = ? AND chunk_id = ? AND state = 'completed'", (job_id, cid)).rowcount)
            db.execute("UPDATE jobs SET completed_chunks = completed_chunks - ?, state = ?, error = NULL, "
                       "requested = NULL, updated_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
                       (len(reopened), state.value, now, job_id))
        return reopened

    def ask_runner(self, job_id: str, action: str, *, now: float) -> bool:
        with self._lock:
            return self._db.execute(f"UPDATE jobs SET requested = ? WHERE id = ? AND NOT {LEASE_FREE}",
                                    (action, job_id, now)).rowcount > 0

    def take_slots(self, ask: SlotAsk, *, count: int, limit: int, now: float) -> int:
        # BEGIN IMMEDIATE holds the database's write lock from the read to the write: every process
        # sharing this file decides on the same holders, one at a time.
        with self._transaction() as db:
            db.execute("DELETE FROM slot_holders WHERE lease_until <= ?", (now,))
            taken = grantable(ask, self._holders(db), limit, now, count)
            db.execute(PUT_HOLDER, (ask.owner, ask.job_id, taken, ask.wants, ask.priority, now, ask.lease_until))
        return taken

    def give_slot(self, owner: str, *, wants: int) -> None:
        with self._lock:
            self._db.execute("UPDATE slot_holders SET held = held - 1, wants = ? WHERE owner = ? AND held > 0",
                             (wants, owner))

    def renew_slots(self, owner: str, until: float) -> None:
        with self._lock:
            self._db.execute("UPDATE slot_holders SET lease_until = ? WHERE owner = ?", (until, owner))

    def leave_slots(self, owner: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM slot_holders WHERE owner = ?", (owner,))

    def slot_holders(self) -> builtins.list[SlotHolder]:
        with self._lock:
            return self._holders(self._db)

    @staticmethod
    def _holders(db: sqlite3.Connection) -> builtins.list[SlotHolder]:
        return [SlotHolder(*row) for row in db.execute(f"SELECT {HOLDER_COLUMNS} FROM slot_holders").fetchall()]
    def record_delivery(self, job_id: str, delivery: DeliveryRecord) -> bool:
        values = delivery.model_dump(mode="json")
        values["outcomes"] = json.dumps(values["outcomes"])
        try:
            with self._lock:
                return self._db.execute(RECORD_DELIVERY, (job_id, *(values[name] for name in DELIVERY_FIELDS))
                                        ).rowcount > 0
        except sqlite3.IntegrityError:  # no such job (deleted meanwhile)
            return False

    def deliveries(self, job_id: str) -> builtins.list[DeliveryRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(DELIVERY_FIELDS)} FROM deliveries WHERE job_id = ? "
                                    "ORDER BY created_at", (job_id,)).fetchall()
        return [DeliveryRecord.model_validate({**dict(row), "outcomes": json.loads(row["outcomes"])}) for row in rows]

    @property
    def location(self) -> str:
        return f"the local job store {self.path}"

    def _spec(self, row: sqlite3.Row) -> JobSpec:
        return self._specs.get(row["id"], row["spec"], lambda: JobSpec.model_validate_json(row["spec"]))

    def _spec_of(self, job_id: str) -> JobSpec:
        with self._lock:
            row = self._db.execute("SELECT id, spec FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise self.not_found(job_id)
        return self._spec(row)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def check_sqlite_version() -> None:
    """Refuse an SQLite library older than the store's SQL needs, naming the version found."""
    found = sqlite3.sqlite_version_info
    if found < MIN_SQLITE_VERSION:
        needed = ".".join(map(str, MIN_SQLITE_VERSION[:2]))
        raise ToolNotFoundError(
            f"SQLite {sqlite3.sqlite_version} is too old for the local job store (it needs {needed} or newer); "
            "use a Python linked against a newer SQLite (Debian 11, Ubuntu 20.04 or later have one), "
            "or keep jobs in DynamoDB (--table)")


def _untouched(record: ChunkRecord) -> bool:
    return record.attempts == 0 and record.state is ChunkState.PENDING and record.started_at is None


def _attempt_values(job_id: str, attempt: ChunkAttempt) -> tuple[Any, ...]:
    return (attempt.state.value, attempt.attempt, attempt.duration_ms, attempt.billed_duration_ms,
            attempt.cost_usd, attempt.throttles, attempt.memory_mb, attempt.max_memory_used_mb,
            attempt.init_duration_ms, attempt.request_id, attempt.stdout_tail, attempt.stderr_tail, attempt.error,
            attempt.kind, attempt.output, attempt.started_at, attempt.finished_at, job_id, attempt.chunk_id,
            attempt.attempt)


def _chunk_values(record: ChunkRecord) -> tuple[Any, ...]:
    fields = record.__dict__
    return (fields["state"].value, *(fields[name] for name in CHUNK_FIELDS[1:]))


def _job_from_row(row: sqlite3.Row, spec: JobSpec | SpecLoader, chunks: list[ChunkRecord]) -> JobRecord:
    return JobRecord(
        id=row["id"], spec=spec, state=JobState(row["state"]),
        total_chunks=row["total_chunks"], completed_chunks=row["completed_chunks"], error=row["error"],
        output=row["output"], pending_action=row["requested"], created_at=row["created_at"],
        updated_at=row["updated_at"], heartbeat_at=row["heartbeat_at"], lease_owner=row["lease_owner"],
        lease_until=row["lease_until"], client_token=row["client_token"],
        metrics=JobMetrics(total_duration_ms=row["total_duration_ms"],
                           total_billed_duration_ms=row["total_billed_duration_ms"],
                           cost_usd=row["cost_usd"], failed_attempts=row["failed_attempts"]),
        chunks=chunks,
    )
