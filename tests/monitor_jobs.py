"""Jobs for the monitor's tests and screenshots, recorded by a real JobManager over a SQLite store and
local storage (what ``framefarm monitor`` reads with no settings), with a scripted in-process worker."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from framefarm import ExecutionOptions, JobExecutor, JobManager, WorkerJob
from framefarm.backends import Local
from framefarm.cli.context import Context
from framefarm.cli.monitor import PageActions
from framefarm.monitor.app import Monitor
from framefarm.repositories.sqlite import SqliteJobRepository
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
