"""InMemoryJobRepository: the reference store, for tests and one-process use."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Collection, Sequence
from dataclasses import replace

from framefarm.concurrency import SlotAsk, SlotHolder, grantable
from framefarm.lease import Beat, Lease
from framefarm.repositories.base import JobRepository
from framefarm.status import (
    ChunkEvent,
    ChunkRecord,
    ChunkStarted,
    ChunkState,
    DeliveryRecord,
    JobMetrics,
    JobRecord,
    JobState,
    apply_attempt,
    apply_started,
)


class InMemoryJobRepository(JobRepository):
    """Jobs in a dict behind one lock. Chunk records are kept apart from the job so updates stay O(1)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobRecord] = {}
        self._chunks: dict[str, dict[int, ChunkRecord]] = {}
        self._holders: dict[str, SlotHolder] = {}  # the concurrency budget's holders, by run id
        self._deliveries: dict[str, dict[str, DeliveryRecord]] = {}

    def save(self, status: JobRecord) -> None:
        with self._lock:
            self._insert(status)

    def _insert(self, status: JobRecord) -> None:
        """Store ``status`` (the caller holds the lock)."""
        self._jobs[status.id] = status.model_copy(update={"chunks": []})
        records = {record.chunk_id: record for record in status.chunks}
        # One record per spec chunk: those not given are pending.
        self._chunks[status.id] = {chunk.id: records.get(chunk.id) or ChunkRecord(chunk_id=chunk.id)
                                   for chunk in status.spec.chunks}

    def create(self, status: JobRecord) -> JobRecord | None:
        with self._lock:
            existing = self._jobs.get(status.id)
            if existing is not None:
                return existing
            self._insert(status)
            return None

    def get(self, job_id: str, *, chunks: bool = True) -> JobRecord | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not chunks:
                return job
            records = sorted(self._chunks[job_id].values(), key=lambda record: record.chunk_id)
            return job.model_copy(update={"chunks": records})

    def chunk_states(self, job_id: str) -> dict[int, tuple[ChunkState, int]]:
        with self._lock:
            return {cid: (record.state, record.attempts) for cid, record in self._chunks.get(job_id, {}).items()}

    def list(self, limit: int | None = None) -> list[JobRecord]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda job: job.created_at, reverse=True)
        return jobs[:limit] if limit is not None else jobs

    def delete(self, job_id: str) -> bool:
        with self._lock:
            self._chunks.pop(job_id, None)
            self._deliveries.pop(job_id, None)
            return self._jobs.pop(job_id, None) is not None

    def record_batch(self, job_id: str, events: Sequence[ChunkEvent]) -> int:
        with self._lock:
            job = self._jobs.get(job_id)
            records = self._chunks.get(job_id)
            if job is None or records is None:
                return 0
            applied = 0
            completed, failed, duration, billed, cost = 0, 0, 0.0, 0, 0.0
            updated_at = job.updated_at
            for event in events:
                current = records.get(event.chunk_id, ChunkRecord(chunk_id=event.chunk_id))
                if isinstance(event, ChunkStarted):
                    started = apply_started(current, event)
                    if started is not None:
                        records[event.chunk_id] = started
                    continue
                updated = apply_attempt(current, event)
                if updated is None:
                    continue
                records[event.chunk_id] = updated
                applied += 1
                deltas = event.counter_deltas()
                completed += int(deltas["completed_chunks"])
                failed += int(deltas["failed_attempts"])
                duration += deltas["total_duration_ms"]
                billed += int(deltas["total_billed_duration_ms"])
                cost += deltas["cost_usd"]
                updated_at = event.finished_at or updated_at
            if applied:
                metrics = job.metrics
                self._jobs[job_id] = job.model_copy(update={
                    "completed_chunks": job.completed_chunks + completed,
                    "updated_at": updated_at,
                    "metrics": JobMetrics(
                        total_duration_ms=metrics.total_duration_ms + duration,
                        total_billed_duration_ms=metrics.total_billed_duration_ms + billed,
                        cost_usd=metrics.cost_usd + cost,
                        failed_attempts=metrics.failed_attempts + failed,
                    ),
                })
            return applied

    def set_state(self, job_id: str, state: JobState, *, now: float, error: str | None = None,
                  output: str | None = None, expected: Collection[JobState] | None = None,
                  owner: str | None = None, free_at: float | None = None, release: bool = False) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if (job is None or (expected is not None and job.state not in expected)
                    or (owner is not None and job.lease_owner != owner)
                    or (free_at is not None and not job.lease_free(free_at))):
                return False
            update: dict[str, object] = {"state": state, "error": error, "updated_at": now, "pending_action": None}
            if output is not None:
                update["output"] = output
            if release or not state.is_active:
                update.update(lease_owner=None, lease_until=None)
            self._jobs[job_id] = job.model_copy(update=update)
            return True

    def take_lease(self, job_id: str, lease: Lease, *, now: float, expected: Collection[JobState],
                   successor_of: str | None = None) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state not in expected:
                return False
            if not (job.lease_free(now) or job.lease_owner in (lease.owner, successor_of or lease.owner)):
                return False
            self._jobs[job_id] = job.model_copy(update={
                "state": JobState.RUNNING, "error": None, "updated_at": now, "heartbeat_at": now,
                "lease_owner": lease.owner, "lease_until": lease.until})
            return True

    def renew_lease(self, job_id: str, lease: Lease, *, now: float) -> Beat | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.lease_owner != lease.owner:
                return None
            self._jobs[job_id] = job.model_copy(update={"heartbeat_at": now, "lease_until": lease.until})
            return Beat(job.pending_action)

    def hand_over(self, job_id: str, owner: str, successor: Lease) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.lease_owner != owner:
                return False
            self._jobs[job_id] = job.model_copy(update={"lease_owner": successor.owner,
                                                        "lease_until": successor.until})
            return True

    def reopen_chunks(self, job_id: str, chunk_ids: Collection[int], *, state: JobState, now: float,
                      expected: Collection[JobState], gone_owner: str | None = None) -> builtins.list[int] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            held = not job.lease_free(now) and job.lease_owner != gone_owner if job is not None else True
            if job is None or job.state not in expected or held:
                return None
            records = self._chunks[job_id]
            reopened = sorted(cid for cid in set(chunk_ids)
                              if cid in records and records[cid].state is ChunkState.COMPLETED)
            for cid in reopened:
                records[cid] = records[cid].model_copy(update={"state": ChunkState.PENDING, "output": None})
            self._jobs[job_id] = job.model_copy(update={
                "completed_chunks": job.completed_chunks - len(reopened), "state": state, "error": None,
                "pending_action": None, "updated_at": now, "lease_owner": None, "lease_until": None})
            return reopened

    def ask_runner(self, job_id: str, action: str, *, now: float) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.lease_free(now):
                return False
            self._jobs[job_id] = job.model_copy(update={"pending_action": action})
            return True

    def take_slots(self, ask: SlotAsk, *, count: int, limit: int, now: float) -> int:
        with self._lock:
            self._holders = {owner: holder for owner, holder in self._holders.items() if holder.lease_until > now}
            current = self._holders.get(ask.owner)
            taken = grantable(ask, self._holders.values(), limit, now, count)
            held = (current.held if current else 0) + taken
            self._holders[ask.owner] = ask.holder(held, current.since if current else now)
            return taken

    def give_slot(self, owner: str, *, wants: int) -> None:
        with self._lock:
            holder = self._holders.get(owner)
            if holder is not None and holder.held > 0:
                self._holders[owner] = replace(holder, held=holder.held - 1, wants=wants)

    def renew_slots(self, owner: str, until: float) -> None:
        with self._lock:
            holder = self._holders.get(owner)
            if holder is not None:
                self._holders[owner] = replace(holder, lease_until=until)

    def leave_slots(self, owner: str) -> None:
        with self._lock:
            self._holders.pop(owner, None)

    def slot_holders(self) -> builtins.list[SlotHolder]:
        with self._lock:
            return builtins.list(self._holders.values())
    def record_delivery(self, job_id: str, delivery: DeliveryRecord) -> bool:
        with self._lock:
            if job_id not in self._jobs:
                return False
            kept = self._deliveries.setdefault(job_id, {})
            if not delivery.supersedes(kept.get(delivery.delivery_id)):
                return False
            kept[delivery.delivery_id] = delivery
            return True

    def deliveries(self, job_id: str) -> builtins.list[DeliveryRecord]:
        with self._lock:
            return sorted(self._deliveries.get(job_id, {}).values(), key=lambda record: record.created_at)
