"""Jobs for the monitor's tests and screenshots, recorded by a real JobManager over a SQLite store and
local storage (what ``framefarm monitor`` reads with no settings), with a scripted in-process worker."""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console

from framefarm import ExecutionOptions, JobExecutor, JobManager, WorkerJob
from framefarm.attempt_history import keep_attempt
from framefarm.backends import Local
from framefarm.billing import LAMBDA_PRICES
from framefarm.cli.context import Context
from framefarm.cli.monitor import PageActions
from framefarm.failures import FailureKind
from framefarm.lease import Lease
from framefarm.monitor.app import Monitor
from framefarm.repositories.sqlite import SqliteJobRepository
from framefarm.status import ChunkAttempt, ChunkEvent, ChunkStarted, ChunkState, JobRecord, JobState
from framefarm.storage.local import LocalStorage
from tests.helpers import ScriptedWorker, make_spec, retry_at_once


@dataclass
class Farm:
    """A home like ``--home``'s (jobs.db and storage) with a manager whose worker is scripted; chunks in
    ``held`` wait in their attempt until ``release(chunk)`` (or a cancel) lets them end."""

    home: Path
    worker: ScriptedWorker = field(default_factory=ScriptedWorker)
    held: dict[int, threading.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        backend = Local(self.home)
        self.storage = backend.storage()
        self.repository = backend.repository(self.storage)
        assert isinstance(self.repository, SqliteJobRepository) and isinstance(self.storage, LocalStorage)
        self.manager = self.another_process()

    def another_process(self) -> JobManager:
        """A manager over the same store, as another process would have (a runner, or the monitor);
        a runner there hears a cancel or pause asked from elsewhere within 0.1 s."""
        return JobManager(self.repository, JobExecutor(self.worker.adapter()), self.storage, heartbeat_interval=0.1)

    def monitor(self) -> Monitor:
        """The monitor's own manager over this store (it runs what the page resumes), with the CLI's actions."""
        manager = self.another_process()
        context = Context(home=self.home, out=Console(), err=Console(stderr=True))
        return Monitor(manager, PageActions(context, Local(self.home), manager), interval=0.05)

    def close(self, *monitors: Monitor) -> None:
        """Let every held chunk end, wait for the runs here and in ``monitors``, close the store."""
        for gate in self.held.values():
            gate.set()
        for manager in (self.manager, *(monitor.manager for monitor in monitors)):
            for job_id in manager.running_here():
                manager.wait(job_id, timeout=30)
        self.repository.close()

    def hold(self, *chunk_ids: int) -> None:
        for chunk_id in chunk_ids:
            gate = self.held[chunk_id] = threading.Event()
            self.worker.hooks[chunk_id] = lambda job, gate=gate: wait_or_cancel(job, gate)

    def release(self, chunk_id: int) -> None:
        self.held[chunk_id].set()

    def finished_job_with_a_retry(self, job_id: str = "finished", chunks: int = 6, retried: int = 2) -> str:
        """A rendered job whose chunk ``retried`` failed once, then rendered."""
        self.worker.fail[retried] = 1
        self.manager.create_job(make_spec(chunks, job_id=job_id))
        self.manager.run_job(job_id, ExecutionOptions(retry=retry_at_once(1)))
        return job_id

    def recorded_job(self, job_id: str, chunks: int, *, running_at: float | None = None, slots: int = 50,
                     seed: int = 14) -> str:
        """A job as a Lambda run would record it, written straight to the store (benchmarks and screenshots
        need big jobs and seconds-long attempts, not a real fan-out): ``slots`` chunks at a time of 2-6 s
        each (chunk 7 three times slower), a cold start on each slot's first call, throttled calls now and
        then, and every 17th chunk timing out once before its retry renders. With ``running_at`` (seconds
        into the run) it is still running: chunks that ended by then are done, those started are running."""
        rng = random.Random(seed)
        began = time.time() - (running_at if running_at is not None else 600.0)
        self.repository.save(JobRecord.new(make_spec(chunks, job_id=job_id), now=began))
        until = running_at if running_at is not None else float("inf")
        lease = Lease("recorded-run", time.time() + 3600)
        assert self.repository.take_lease(job_id, lease, now=began, expected={JobState.PENDING})
        free = [(began, slot) for slot in range(slots)]
        warm: set[int] = set()
        events: list[ChunkEvent] = []
        for chunk_id in range(chunks):
            at, slot = heapq.heappop(free)
            tries = [("timeout", 5.0)] if chunk_id % 17 == 3 else []
            tries.append((None, rng.uniform(2.0, 6.0) * (3 if chunk_id == 7 else 1)))
            for number, (kind, seconds) in enumerate(tries, start=1):
                cold = 0.0 if slot in warm else rng.uniform(0.4, 0.9)
                warm.add(slot)
                if at - began >= until:
                    break
                events.append(ChunkStarted(chunk_id, number, at))
                end = at + cold + seconds
                if end - began > until:
                    at = end
                    break
                billed = int((cold + seconds) * 1000)
                attempt = ChunkAttempt(
                    chunk_id=chunk_id, attempt=number, state=ChunkState.FAILED if kind else ChunkState.COMPLETED,
                    kind=FailureKind(kind) if kind else None, error="timed out after 5 s" if kind else None,
                    duration_ms=billed, billed_duration_ms=billed, memory_mb=2048,
                    max_memory_used_mb=rng.randint(600, 1400), init_duration_ms=cold * 1000 or None,
                    cost_usd=LAMBDA_PRICES.cost(billed_duration_ms=billed, memory_mb=2048),
                    throttles=2 if rng.random() < 0.03 else 0, started_at=at, finished_at=end)
                if kind:
                    keep_attempt(self.storage, job_id, attempt)
                events.append(attempt)
                at = end
            heapq.heappush(free, (at, slot))
        self.repository.record_batch(job_id, events)
        if running_at is None:
            ended = max(event.finished_at or 0.0 for event in events if isinstance(event, ChunkAttempt))
            self.repository.set_state(job_id, JobState.RENDERED, now=ended, owner=lease.owner)
        return job_id

    def running_job(self, job_id: str = "running", chunks: int = 6) -> str:
        """A job started in the background whose every chunk waits for ``release``, one at a time."""
        self.hold(*range(chunks))
        self.manager.submit_job(make_spec(chunks, job_id=job_id), ExecutionOptions(concurrency=1))
        return job_id


def wait_or_cancel(job: WorkerJob, gate: threading.Event) -> None:
    """Block the attempt until ``gate`` opens or the job is cancelled (bounded: 60 s)."""
    forget = job.cancel.on_cancel(gate.set)
    try:
        gate.wait(60)
    finally:
        forget()


@pytest.fixture(name="farm")
def farm_fixture(tmp_path: Path) -> Iterator[Farm]:
    """A Farm in the test's directory; held chunks released and runs waited for at the end."""
    farm = Farm(tmp_path)
    yield farm
    farm.close()


@pytest.fixture(name="monitor")
def monitor_fixture(farm: Farm) -> Iterator[Monitor]:
    """The monitor over ``farm``'s store, its own runs waited for at the end."""
    monitor = farm.monitor()
    yield monitor
    farm.close(monitor)
