"""The shared concurrency budget in the dispatch loop: jobs run by separate managers on one store
never have more chunks in flight than the budget, each gets its weighted share, a waiting job is
queued and stops at once when asked, and a live runner's slots stay its own."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from framefarm import ExecutionOptions, InMemoryJobRepository, JobExecutor, JobManager, JobState, WorkerResult
from framefarm.adapters.base import CallableWorkerAdapter, WorkerJob
from framefarm.concurrency import queue_places
from framefarm.errors import JobSpecError
from framefarm.slots import shared_budget
from tests.helpers import eventually, make_spec


class HeldCalls:
    """A worker whose calls run until the test lets them finish; it counts calls in flight per job."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.running: dict[str, list[threading.Event]] = {}
        self.most_at_once = 0
        self.open = threading.Event()  # once set, calls finish at once

    def __call__(self, job: WorkerJob) -> WorkerResult:
        done = threading.Event()
        with self.changed:
            self.running.setdefault(job.meta["job_id"], []).append(done)
            self.most_at_once = max(self.most_at_once, sum(map(len, self.running.values())))
            self.changed.notify_all()
        try:
            while not (done.wait(0.05) or self.open.is_set() or (job.cancel is not None and job.cancel.cancelled)):
                pass
            return WorkerResult(exit_code=0, duration_ms=1.0)
        finally:
            with self.changed:
                self.running[job.meta["job_id"]].remove(done)
                self.changed.notify_all()

    def in_flight(self) -> Counter[str]:
        with self.changed:
            return Counter({job: len(calls) for job, calls in self.running.items()})

    def wait_until(self, wanted: dict[str, int], timeout: float = 30.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: {job: len(calls) for job, calls in self.running.items()
                                                  if calls} == wanted, timeout):
                raise AssertionError(f"in flight {self.in_flight()} never became {wanted}")

    def finish(self, job_id: str, timeout: float = 10.0) -> None:
        """Let one call of ``job_id`` end, and wait until it has."""
        with self.changed:
            call = self.running[job_id][0]
            call.set()
            if not self.changed.wait_for(lambda: call not in self.running[job_id], timeout):
                raise AssertionError(f"a call of {job_id} did not end")


def manager(store: InMemoryJobRepository, worker: HeldCalls, budget: int, **timing: float) -> JobManager:
    """One runner of the store (as one process would be): its own manager, the store's budget."""
    return JobManager(store, JobExecutor(CallableWorkerAdapter(worker)), max_concurrency=budget, **timing)


@pytest.mark.parametrize(("priority_a", "share_a", "share_b"), [(1.0, 4, 4), (3.0, 6, 2)])
def test_two_jobs_share_the_budget_by_priority_and_never_exceed_it(priority_a, share_a, share_b):
    # GIVEN a store with a budget of 8, and job a (40 chunks, concurrency 8) holding all of it
    store, worker = InMemoryJobRepository(), HeldCalls()
    first, second = manager(store, worker, 8), manager(store, worker, 8)
    job_a = make_spec(40, job_id="a").model_copy(update={"priority": priority_a})
    first.submit_job(job_a, ExecutionOptions(concurrency=8, merge=False))
    worker.wait_until({"a": 8})
    # WHEN job b (concurrency 8) arrives on another runner
    second.submit_job(make_spec(40, job_id="b"), ExecutionOptions(concurrency=8, merge=False))
    # THEN it waits for its first slot, first in the queue
    eventually(lambda: queue_places(store.slot_holders(), 0.0) == {"b": 1}, what="b queued", timeout=10)
    # WHEN a's chunks end one by one
    for _ in range(12):
        worker.finish("a")
        eventually(lambda: sum(worker.in_flight().values()) == 8, what="freed slot taken", timeout=10)
    # THEN the freed slots went to b until each job holds its weighted share, and no more ran at once
    worker.wait_until({"a": share_a, "b": share_b})
    assert worker.most_at_once == 8
    worker.open.set()
    assert first.wait("a", timeout=60).state is JobState.RENDERED
    assert second.wait("b", timeout=60).state is JobState.RENDERED
    assert store.slot_holders() == []  # every run gave its slots back


def test_a_job_waiting_for_a_slot_stops_at_once_when_cancelled():
    # GIVEN a budget of 1 held by job a, and job b waiting for it
    store, worker = InMemoryJobRepository(), HeldCalls()
    first, second = manager(store, worker, 1), manager(store, worker, 1)
    first.submit_job(make_spec(2, job_id="a"), ExecutionOptions(concurrency=1, merge=False))
    worker.wait_until({"a": 1})
    second.submit_job(make_spec(2, job_id="b"), ExecutionOptions(concurrency=2, merge=False))
    eventually(lambda: queue_places(store.slot_holders(), 0.0) == {"b": 1}, what="b queued", timeout=10)
    # WHEN b is cancelled
    second.cancel_job("b")
    # THEN it ends cancelled without running a chunk, and leaves the queue; a still holds its slot
    assert second.wait("b", timeout=10).state is JobState.CANCELLED
    assert worker.in_flight() == Counter({"a": 1})
    assert [holder.job_id for holder in store.slot_holders()] == ["a"]
    worker.open.set()
    assert first.wait("a", timeout=30).state is JobState.RENDERED


def test_a_live_runner_keeps_its_slots_past_the_first_lease():
    # GIVEN runners whose leases last 0.5 s unless their heartbeat (every 0.05 s) renews them
    store, worker = InMemoryJobRepository(), HeldCalls()
    timing = {"heartbeat_interval": 0.05, "stale_after": 0.5}
    first, second = manager(store, worker, 1, **timing), manager(store, worker, 1, **timing)
    first.submit_job(make_spec(1, job_id="a"), ExecutionOptions(concurrency=1, merge=False))
    worker.wait_until({"a": 1})
    until = store.slot_holders()[0].lease_until
    second.submit_job(make_spec(1, job_id="b"), ExecutionOptions(concurrency=1, merge=False))
    # WHEN the first lease on a's slot has run out
    eventually(lambda: store.slot_holders()[0].lease_until > until + 0.5, what="renewed twice over", timeout=10)
    # THEN a's slot was renewed, never reclaimed: b is still waiting
    assert worker.in_flight() == Counter({"a": 1})
    assert queue_places(store.slot_holders(), time.time()) == {"b": 1}
    worker.open.set()
    assert first.wait("a", timeout=30).state is JobState.RENDERED
    assert second.wait("b", timeout=30).state is JobState.RENDERED


def test_no_budget_unless_one_is_set(monkeypatch):
    monkeypatch.delenv("FRAMEFARM_MAX_CONCURRENCY", raising=False)
    assert shared_budget() is None
    assert shared_budget(environ={"FRAMEFARM_MAX_CONCURRENCY": "250"}) == 250
    assert shared_budget(7, environ={"FRAMEFARM_MAX_CONCURRENCY": "250"}) == 7
    with pytest.raises(JobSpecError, match="FRAMEFARM_MAX_CONCURRENCY='lots': expected a whole number"):
        shared_budget(environ={"FRAMEFARM_MAX_CONCURRENCY": "lots"})
