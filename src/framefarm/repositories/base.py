"""The job store contract every backend implements, and the logic they share.

Writes per event are O(1): recording an attempt touches one chunk record and the job's counters in
one atomic step and is idempotent (see :func:`framefarm.status.apply_attempt`); ``set_state`` is a
conditional transition, so two processes cannot both move a job out of the same state.

A run owns its job through a lease (:mod:`framefarm.lease`): ``take_lease``, ``renew_lease`` and
``hand_over`` are each one conditional write, and ``set_state`` can be made conditional on holding it.

Every chunk event goes through one method, ``record_batch``: backends that can commit several
events at once (SQLite) do, the rest apply them one by one; ``record_attempt`` and
``mark_chunk_running`` are one-event batches.

The store also keeps the concurrency budget every job on it shares (:mod:`framefarm.concurrency`):
one holder record per runner holding or wanting slots; ``take_slots`` is one conditional step.
"""

from __future__ import annotations

import builtins
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence

from framefarm.concurrency import SlotAsk, SlotHolder
from framefarm.config import TAIL_CHARS
from framefarm.errors import JobNotFoundError
from framefarm.lease import Beat, Lease
from framefarm.spec import JobSpec
from framefarm.status import (
    ChunkAttempt,
    ChunkEvent,
    ChunkStarted,
    ChunkState,
    DeliveryRecord,
    JobRecord,
    JobState,
)
from framefarm.storage.base import Storage
from framefarm.storage.keys import spec_key


def put_spec(storage: Storage, spec: JobSpec, data: bytes | None = None) -> str:
    """Store ``spec`` where workers read it (``keys.spec_key``); ``data`` is its JSON if already made.
    Returns the URL a worker request carries."""
    key = spec_key(spec.id)
    storage.put_bytes(key, data if data is not None else spec.model_dump_json().encode())
    return storage.url(key)


class JobRepository(ABC):
    """Where jobs live. Implementations must be safe to call from many threads at once.

    ``storage`` is the object store this repository keeps job objects in and clears on ``delete``
    (the DynamoDB store keeps specs there); None for stores that keep everything themselves.
    """

    storage: Storage | None = None
    #: Characters of each log a chunk record keeps (``status.tail``); a longer log is cut, and the
    #: manager keeps it whole in storage (``keys.log_key``), where ``framefarm logs`` finds it.
    tail_chars: int = TAIL_CHARS

    @property
    def location(self) -> str:
        """Where this store keeps jobs, for messages: "No job 'x' in <location>"."""
        return "the job store"

    def not_found(self, job_id: str) -> JobNotFoundError:
        return JobNotFoundError(job_id, f"No job {job_id!r} in {self.location}")

    @abstractmethod
    def save(self, status: JobRecord) -> None:
        """Insert or replace a whole job with its chunk records (at creation; not per event)."""

    @abstractmethod
    def create(self, status: JobRecord) -> JobRecord | None:
        """Insert a new job only if its id is free, in one conditional write; returns None when it was
        inserted, else the job already there (without chunk records), which is left as it is."""

    @abstractmethod
    def get(self, job_id: str, *, chunks: bool = True) -> JobRecord | None:
        """The job with all its chunk records, or None. With ``chunks=False`` a summary: no chunk
        records, and the spec read (through this store) only when ``status.spec`` is asked for."""

    @abstractmethod
    def chunk_states(self, job_id: str) -> dict[int, tuple[ChunkState, int]]:
        """Each chunk's state and attempt count: what a run needs to resume, without the records."""

    @abstractmethod
    def list(self, limit: int | None = None) -> list[JobRecord]:
        """Jobs newest first, as summaries (see ``get(chunks=False)``): counters filled, ``chunks``
        empty, no spec read."""

    @abstractmethod
    def delete(self, job_id: str) -> bool:
        """Remove the job and its chunk records; False when there was none."""

    @abstractmethod
    def record_batch(self, job_id: str, events: Sequence[ChunkEvent]) -> int:
        """Apply chunk events in order; returns how many attempts were newly recorded.

        Each attempt moves its chunk record and the job counters together, or not at all when it
        was recorded before. A started event never reopens a completed chunk.
        """

    def record_attempt(self, job_id: str, attempt: ChunkAttempt) -> bool:
        """Record one chunk attempt and move the job counters; False when already recorded."""
        return self.record_batch(job_id, [attempt]) == 1

    def mark_chunk_running(self, job_id: str, chunk_id: int, attempt: int, now: float) -> None:
        """Note that an attempt started (for status displays and stuck-chunk detection)."""
        self.record_batch(job_id, [ChunkStarted(chunk_id, attempt, now)])

    @abstractmethod
    def set_state(self, job_id: str, state: JobState, *, now: float, error: str | None = None,
                  output: str | None = None, expected: Collection[JobState] | None = None,
                  owner: str | None = None, free_at: float | None = None, release: bool = False) -> bool:
        """Move the job to ``state`` in one conditional write; clears any request. Only from
        ``expected`` states, when given; only while ``owner`` holds the lease, when given; only while
        no lease is held at ``free_at`` (none, or run out), when given. A state that is not active
        (``JobState.is_active``), or ``release``, releases the lease; otherwise it is kept."""

    @abstractmethod
    def take_lease(self, job_id: str, lease: Lease, *, now: float, expected: Collection[JobState],
                   successor_of: str | None = None) -> bool:
        """Make ``lease`` the job's and move it to ``running``, in one conditional write: only from
        ``expected`` states, and only when the lease is free at ``now`` (none, or run out), already
        ``lease.owner``'s, or held by the hand-over token ``successor_of``. Stamps the heartbeat."""

    @abstractmethod
    def renew_lease(self, job_id: str, lease: Lease, *, now: float) -> Beat | None:
        """Extend the lease to ``lease.until`` and stamp the heartbeat, only while ``lease.owner``
        holds it; None when it does not (lost, released, or no such job)."""

    @abstractmethod
    def hand_over(self, job_id: str, owner: str, successor: Lease) -> bool:
        """Pass the lease from ``owner`` to ``successor`` (a hand-over token); False if ``owner``
        no longer held it. The job stays ``running``."""

    @abstractmethod
    def reopen_chunks(self, job_id: str, chunk_ids: Collection[int], *, state: JobState, now: float,
                      expected: Collection[JobState], gone_owner: str | None = None) -> builtins.list[int] | None:
        """Ready ``chunk_ids`` to render again, in one conditional write, only while the job is in an
        ``expected`` state: those that completed go back to pending (their attempt counts and amounts
        billed stay: they were paid), the job's completed counter moves down by as many, and the job
        moves to ``state`` (error, request and any lease cleared). Only while no runner holds the job
        (its lease free at ``now``, or held by ``gone_owner``, a runner known to be gone). Returns the
        chunk ids reopened, sorted; None when the job is missing, in another state or held, and then
        nothing changed."""

    @abstractmethod
    def ask_runner(self, job_id: str, action: str, *, now: float) -> bool:
        """Ask the runner holding a job to ``cancel`` or ``pause`` it, in one conditional write: only
        while a lease on the job runs past ``now`` (a request left on a job nobody runs would stop
        its next run). False when nobody holds it: then act on the job directly."""

    # -- the shared concurrency budget (framefarm.concurrency) ----------------------------------

    @abstractmethod
    def take_slots(self, ask: SlotAsk, *, count: int, limit: int, now: float) -> int:
        """Give ``ask.owner`` up to ``count`` more slots of the budget of ``limit`` in one conditional
        step, as many as ``concurrency.grantable`` allows (fair share), never taking the live holders
        past ``limit`` in all; returns how many. Either way the holder's ``wants``, priority and lease
        are recorded (a refused runner keeps its place in the queue); holders whose lease ran out at
        ``now`` no longer count and are dropped."""

    @abstractmethod
    def give_slot(self, owner: str, *, wants: int) -> None:
        """Give back one of ``owner``'s slots (an attempt ended) and record what it wants now."""

    @abstractmethod
    def renew_slots(self, owner: str, until: float) -> None:
        """Extend the lease of ``owner``'s slots (the run's heartbeat); nothing if it holds none."""

    @abstractmethod
    def leave_slots(self, owner: str) -> None:
        """Drop ``owner``'s holder record and give back every slot it holds (its run ended)."""

    @abstractmethod
    def slot_holders(self) -> builtins.list[SlotHolder]:
        """Every holder record, leases run out or not (``concurrency.live`` filters)."""

    # -- webhook deliveries (framefarm.webhooks) ---------------------------------------------------

    @abstractmethod
    def record_delivery(self, job_id: str, delivery: DeliveryRecord) -> bool:
        """Insert or move forward a webhook delivery of the job, in one conditional write: only when
        ``delivery.supersedes`` the one stored (a late or repeated write never undoes a newer one).
        False when it did not, or the job is gone."""

    @abstractmethod
    def deliveries(self, job_id: str) -> builtins.list[DeliveryRecord]:
        """The job's webhook deliveries, oldest first (empty for none, or no such job)."""

    def require(self, job_id: str) -> JobRecord:
        """The job, or JobNotFoundError."""
        status = self.get(job_id)
        if status is None:
            raise self.not_found(job_id)
        return status

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing to release
        """Release connections; the default has none."""


class SpecCache:
    """The last ``size`` specs a store parsed. Specs never change once stored, and parsing one of a
    10,000-chunk job costs ~0.1 s, so a store reading the same job again (status, heartbeat checks,
    each chunk's record) keeps it. An entry is used only while its ``fingerprint`` (the stored text,
    or a digest of it) is unchanged: a job saved again under its id gets its new spec."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._specs: dict[str, tuple[str, JobSpec]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, fingerprint: str, load: Callable[[], JobSpec]) -> JobSpec:
        """The cached spec for ``key`` if it has this ``fingerprint``, else ``load()`` (then kept)."""
        with self._lock:
            cached = self._specs.get(key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        spec = load()
        self.remember(key, fingerprint, spec)
        return spec

    def remember(self, key: str, fingerprint: str, spec: JobSpec) -> None:
        with self._lock:
            self._specs.pop(key, None)
            if len(self._specs) >= self._size:
                self._specs.pop(next(iter(self._specs)))  # the oldest
            self._specs[key] = (fingerprint, spec)
