"""SlotGate: one run's use of the concurrency budget its job store keeps for every job on it.

Before each attempt the dispatch loop's pool thread calls ``acquire``: it returns once the store gave
this run a slot (``JobRepository.take_slots``, one conditional step under the fair-share rule of
:mod:`framefarm.concurrency`), or False as soon as the run is stopped (cancel, pause, a failure). The
attempt gives the slot back when it ends (``release``). The run's heartbeat renews the lease on its
slots (``renew``) with the lease on its job, so a runner that dies leaves its slots to be reclaimed
when that lease runs out; ``leave`` gives back whatever is left when the run ends.

One thread of a run asks the store at a time, for a slot for every attempt waiting (so 200 attempts
waiting cost one conditional write, not 200), and hands what it got to them; refused, it asks again
with backoff (``POLL``), at once when one of the run's own slots is given back, and never waits past
a stop. Slots handed out but not picked up by an attempt (the run stopped) go back with ``leave``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping

from framefarm.backoff import Backoff
from framefarm.cancel import CancelToken
from framefarm.concurrency import UNLIMITED_SLOTS, SlotAsk, Slots, queue_places
from framefarm.config import ENV_MAX_CONCURRENCY
from framefarm.errors import JobSpecError
from framefarm.repositories.base import JobRepository
from framefarm.status import JobRecord, JobState

logger = logging.getLogger(__name__)

POLL = Backoff(0.02, 0.5)  # between asks while the budget is spent
TURN_WAIT = 0.1  # seconds a waiting thread sleeps before it looks at the stop token again


def shared_budget(explicit: int | None = None, environ: Mapping[str, str] | None = None) -> int | None:
    """The budget of chunks in flight across every job on a store: ``explicit``, else
    ``$FRAMEFARM_MAX_CONCURRENCY``; None (no budget) when neither is set."""
    if explicit is not None:
        return explicit
    text = (os.environ if environ is None else environ).get(ENV_MAX_CONCURRENCY, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise JobSpecError(f"{ENV_MAX_CONCURRENCY}={text!r}: expected a whole number of chunks, 1 or more "
                           "(unset it for no shared budget)")
    return int(text)


class SlotGate:
    """The slots of one run (``owner``, the run id) of ``job_id`` in ``repository``'s budget of ``limit``."""

    def __init__(self, repository: JobRepository, job_id: str, owner: str, *, limit: int, priority: float,
                 lease_for: float, clock: Callable[[], float]) -> None:
        self._repository, self._job_id, self._owner = repository, job_id, owner
        self._limit, self._priority, self._lease_for, self._clock = limit, priority, lease_for, clock
        self._changed = threading.Condition()
        self._held = 0  # slots attempts of this run hold
        self._granted = 0  # slots the store gave this run that no attempt has picked up yet
        self._waiting = 0  # attempts waiting for a slot
        self._asking = False  # one thread asks the store for all of them
        self._waker: CancelToken | None = None  # what the asking thread waits on between asks
        self._lease_until = clock() + lease_for

    def acquire(self, stop: CancelToken) -> bool:
        with self._changed:
            self._waiting += 1
        try:
            while not stop.stopping:
                with self._changed:
                    if self._granted:
                        self._granted -= 1
                        self._held += 1
                        return True
                    if self._asking:
                        self._changed.wait(TURN_WAIT)
                        continue
                    self._asking = True
                got = 0
                try:
                    got = self._ask_until_given(stop)
                finally:
                    with self._changed:
                        self._asking = False
                        self._granted += got
                        self._changed.notify_all()
            return False
        finally:
            with self._changed:
                self._waiting -= 1

    def _ask_until_given(self, stop: CancelToken) -> int:
        """Ask the store for a slot for every attempt waiting, until it gives some or the run stops."""
        tries = 0
        while not stop.stopping:
            # woken by a stop of the run, or by a slot this run gives back while it waits
            waker = stop.child()
            with self._changed:
                self._waker = waker
                count = self._waiting - self._granted
                ask = SlotAsk(self._owner, self._job_id, self._held + self._waiting, self._priority,
                              self._lease_until)
            try:
                taken = self._repository.take_slots(ask, count=count, limit=self._limit, now=self._clock())
                if taken:
                    return taken
                tries += 1
                waker.wait(POLL.delay(tries))
            finally:
                with self._changed:
                    self._waker = None
                stop.release(waker)
        return 0

    def release(self) -> None:
        with self._changed:
            self._held -= 1
            wants, waker = self._held + self._waiting, self._waker
        try:
            self._repository.give_slot(self._owner, wants=wants)
        except Exception:  # the slot comes back when this run's lease runs out
            logger.warning("job %s: could not give a slot back to the shared budget", self._job_id, exc_info=True)
        if waker is not None:
            waker.drain("a slot was given back")

    def renew(self, until: float) -> None:
        """Extend the lease on this run's slots (called by the run's heartbeat with its job lease)."""
        self._lease_until = until
        self._repository.renew_slots(self._owner, until)

    def leave(self) -> None:
        """Give back every slot and the place in the queue (the run ended)."""
        try:
            self._repository.leave_slots(self._owner)
        except Exception:  # its lease runs out instead
            logger.warning("job %s: could not leave the shared budget", self._job_id, exc_info=True)


def gate_for(repository: JobRepository, job_id: str, owner: str, *, limit: int | None, priority: float,
             lease_for: float, clock: Callable[[], float]) -> Slots:
    """A gate when there is a budget (``limit``), else no gate at all."""
    if limit is None:
        return UNLIMITED_SLOTS
    return SlotGate(repository, job_id, owner, limit=limit, priority=priority, lease_for=lease_for, clock=clock)


def waiting_jobs(repository: JobRepository, now: float) -> dict[str, int]:
    """The jobs on ``repository`` waiting for a slot with none held, by id: their place in the queue
    (1 is served first). A job waiting so for its first slot shows as ``pending``."""
    return queue_places(repository.slot_holders(), now)


def as_queued(job: JobRecord, queue: Mapping[str, int]) -> JobRecord:
    """A running job still waiting for its first slot of the shared budget (in ``queue``: see
    ``waiting_jobs``) is shown ``pending``; any other job as it is."""
    if job.id in queue and job.state is JobState.RUNNING and job.completed_chunks == 0:
        return job.model_copy(update={"state": JobState.PENDING})
    return job
