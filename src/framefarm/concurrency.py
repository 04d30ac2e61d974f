"""The concurrency budget shared by every job on one store: its records and its fair-share rule.

Every runner holding slots of the budget has one holder record in the job store (keyed by its run
id): the job it runs, how many slots it holds, how many it wants now (held + attempts waiting for a
slot), its priority, when it first asked (its place in the queue) and until when its slots are
leased. The run's heartbeat renews that lease; a holder whose lease ran out (its runner died) no
longer counts, and its slots go back to the budget. Chunks in flight across all jobs = the sum of
``held`` over live holders, never above the limit.

Fair share (weighted max-min, "water-filling"): the limit is divided among the jobs that hold or
want slots in proportion to their priorities; a job that wants less than its part keeps only what it
wants and the rest is divided again among the others. A job may take a free slot while it holds
fewer than its share; above its share, only while more slots are free than the jobs below their
share still lack (so idle slots never wait for a job that does not want them). Jobs holding no slot
yet are served in queue order (highest priority, then the longest waiting): one takes a free slot
only while more are free than jobs ahead of it. A job over its share is not preempted: its attempts
end, and the slots they free go to the jobs below theirs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from framefarm.cancel import CancelToken


@dataclass(frozen=True)
class SlotHolder:
    """One runner's part of the budget, as the store keeps it."""

    owner: str  # the run id (``lease.new_run_id``)
    job_id: str
    held: int
    wants: int  # slots it would hold now: held + attempts waiting for one
    priority: float
    since: float  # when it first asked (epoch s): the queue's order
    lease_until: float


@dataclass(frozen=True)
class SlotAsk:
    """A runner asking for one more slot: who, for which job, how many it wants now (counting this
    one), its priority, and the lease its slots get."""

    owner: str
    job_id: str
    wants: int
    priority: float
    lease_until: float

    def holder(self, held: int, since: float) -> SlotHolder:
        return SlotHolder(self.owner, self.job_id, held, self.wants, self.priority, since, self.lease_until)


class Slots(Protocol):
    """What the dispatch loop needs of a budget: a slot before each attempt, given back after it."""

    def acquire(self, stop: CancelToken) -> bool:
        """Block until a slot is taken (True) or ``stop`` is stopping (False)."""

    def release(self) -> None: ...

    def renew(self, until: float) -> None:
        """Extend the lease on the run's slots (its heartbeat)."""

    def leave(self) -> None:
        """Give back every slot and the place in the queue (the run ended)."""


class NoSlotLimit:
    """No budget (``FRAMEFARM_MAX_CONCURRENCY`` unset): every attempt may start."""

    def acquire(self, stop: CancelToken) -> bool:
        return not stop.stopping

    def release(self) -> None:
        pass

    def renew(self, until: float) -> None:
        pass

    def leave(self) -> None:
        pass


UNLIMITED_SLOTS = NoSlotLimit()


def fair_shares(demands: Mapping[str, tuple[float, int]], limit: int) -> dict[str, float]:
    """Each job's share of ``limit`` from its (priority, demand): weighted water-filling.

    >>> fair_shares({"a": (1, 200), "b": (1, 200)}, 250)
    {'a': 125.0, 'b': 125.0}
    >>> fair_shares({"a": (3, 200), "b": (1, 10)}, 100)
    {'b': 10, 'a': 90.0}
    """
    shares: dict[str, float] = {}
    left = {job: (weight, demand) for job, (weight, demand) in demands.items() if demand > 0}
    capacity = float(limit)
    while left:
        per_weight = capacity / sum(weight for weight, _ in left.values())
        content = [job for job, (weight, demand) in left.items() if demand <= per_weight * weight]
        if not content:
            shares.update({job: per_weight * weight for job, (weight, _) in left.items()})
            break
        for job in content:
            shares[job] = left[job][1]
            capacity -= left.pop(job)[1]
    return shares


def live(holders: Iterable[SlotHolder], now: float) -> list[SlotHolder]:
    """The holders whose lease still holds at ``now``."""
    return [holder for holder in holders if holder.lease_until > now]


def grantable(ask: SlotAsk, holders: Iterable[SlotHolder], limit: int, now: float, count: int = 1) -> int:
    """How many of the ``count`` slots ``ask`` asks for it may take now, given the store's ``holders``
    and a budget of ``limit`` (see the module docstring for the rule)."""
    current = [holder for holder in live(holders, now) if holder.owner == ask.owner]
    others = [holder for holder in live(holders, now) if holder.owner != ask.owner]
    me = ask.holder(current[0].held if current else 0, current[0].since if current else now)
    everyone = [*others, me]
    held, priority, demand = _by_job(everyone)
    free = limit - sum(held.values())
    if held[ask.job_id] == 0:  # a job with no slot yet leaves one to each job ahead of it in the queue
        free -= queue_places(everyone, now).get(ask.job_id, 1) - 1
    if free <= 0 or count <= 0:
        return 0
    shares = fair_shares({job: (priority[job], demand[job]) for job in held}, limit)
    up_to_share = min(free, max(0, math.ceil(shares.get(ask.job_id, 0.0)) - held[ask.job_id]))
    lacking = sum(max(0, math.ceil(share) - held[job]) for job, share in shares.items() if job != ask.job_id)
    return min(count, up_to_share + max(0, free - up_to_share - lacking))


def queue_places(holders: Iterable[SlotHolder], now: float) -> dict[str, int]:
    """The jobs waiting with no slot at all, by job id: 1 is served first (highest priority, then
    the longest waiting)."""
    held, _, _ = _by_job(live(holders, now))
    waiting = [holder for holder in live(holders, now) if holder.wants > 0 and held[holder.job_id] == 0]
    waiting.sort(key=lambda holder: (-holder.priority, holder.since))
    places: dict[str, int] = {}
    for holder in waiting:
        places.setdefault(holder.job_id, len(places) + 1)
    return places


def _by_job(holders: Iterable[SlotHolder]) -> tuple[dict[str, int], dict[str, float], dict[str, int]]:
    """Per job: slots held, priority, demand (what it holds or wants, whichever is more)."""
    held: dict[str, int] = {}
    priority: dict[str, float] = {}
    demand: dict[str, int] = {}
    for holder in holders:
        held[holder.job_id] = held.get(holder.job_id, 0) + holder.held
        priority[holder.job_id] = max(priority.get(holder.job_id, 0.0), holder.priority)
        demand[holder.job_id] = demand.get(holder.job_id, 0) + max(holder.held, holder.wants)
    return held, priority, demand
