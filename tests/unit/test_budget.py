"""Spending caps (framefarm.budget): the gate in the dispatch loop, counted at the worker."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from framefarm import (
    CallableWorkerAdapter,
    ExecutionOptions,
    JobAbortedError,
    JobExecutor,
    JobManager,
    JobState,
    LocalWorkerAdapter,
    RetryPolicy,
    WorkerJob,
    WorkerResult,
)
from framefarm.budget import BudgetGate, max_cost_of, with_budget
from framefarm.errors import JobSpecError
from framefarm.repositories.sqlite import SqliteJobRepository
from framefarm.spec import parse_job
from tests.helpers import FAULTY_CHUNK, hooks, make_spec

PRICE = 0.01  # what each attempt costs


class FlatPriceWorker:
    """The real local worker, its attempts billed at a flat price (as a cloud backend reports them)."""

    def __init__(self, price: float) -> None:
        self.local, self.price = LocalWorkerAdapter(), price

    def execute(self, job: WorkerJob) -> WorkerResult:
        return self.local.execute(job).model_copy(update={"cost_usd": self.price})


def ledger_job(tmp_path: Path, chunks: int, **extra: object) -> dict[str, object]:
    """A job whose chunk commands append a line to ``plan/calls-<chunk id>`` each time they run."""
    plan = tmp_path / "plan"
    plan.mkdir(exist_ok=True)
    (plan / "plan.json").write_text("{}")
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAULTY_CHUNK))} {shlex.quote(str(plan))} " \
              "{chunk_id} {output}"
    return {"id": "capped", "width": 64, "height": 48, "fps": 10, "total_frames": chunks, "frames_per_chunk": 1,
            "command": command, **extra}


def started_at_worker(tmp_path: Path) -> dict[int, int]:
    """How often each chunk's command ran, from the ledger the commands write."""
    return {int(path.name.removeprefix("calls-")): len(path.read_text().splitlines())
            for path in (tmp_path / "plan").glob("calls-*")}


@pytest.fixture
def manager(tmp_path: Path) -> JobManager:
    return JobManager(SqliteJobRepository(tmp_path / "jobs.db"), JobExecutor(FlatPriceWorker(PRICE)))


def test_the_cap_stops_dispatch_and_pauses_the_job_and_a_higher_cap_finishes_it(manager, tmp_path):
    # GIVEN a job of 8 chunks at $0.01 an attempt, capped at $0.025, run 4 at a time
    spec = parse_job(ledger_job(tmp_path, 8, budget={"max_cost": 0.025}), source="job")
    manager.create_job(spec)
    reached: list[tuple[float, float]] = []
    # WHEN it runs
    status = manager.run_job(spec.id, ExecutionOptions(
        concurrency=4, job_dir=tmp_path / "run", hooks=hooks(budget_reached=lambda *args: reached.append(args))))
    # THEN the first chunk ran alone (no estimate yet), then one more fitted: 2 chunks started at the worker,
    # none after the cap (4 at once would have spent $0.04)
    assert started_at_worker(tmp_path) == {0: 1, 1: 1}
    # AND the job is paused for its budget, its cost within the cap; the hooks were told once, when chunk 1
    # was refused a companion ($0.01 spent then)
    assert status.state is JobState.PAUSED and status.pause_reason == "budget"
    assert status.error.startswith("budget: $0.020000 spent of the $0.025000 cap")
    assert status.metrics.cost_usd == pytest.approx(0.02) and status.completed_chunks == 2
    assert reached == [(pytest.approx(0.01), 0.025)]
    # AND a library caller waiting on it hears why it stopped
    import framefarm as ff

    with pytest.raises(JobAbortedError) as stopped:
        ff.attach(spec.id, backend=ff.Local(home=tmp_path)).wait(timeout=60)
    assert stopped.value.reason == "budget"
    # WHEN it is resumed with a higher cap
    resumed = manager.resume_job(spec.id, ExecutionOptions(concurrency=4, job_dir=tmp_path / "run", max_cost=1.0),
                                 background=False)
    # THEN it completes, each chunk run once in all, and nothing says paused any more
    assert resumed.state is JobState.RENDERED and resumed.error is None and resumed.pause_reason is None
    assert started_at_worker(tmp_path) == dict.fromkeys(range(8), 1)
    assert resumed.metrics.cost_usd == pytest.approx(0.08)


def test_a_resume_counts_the_earlier_runs_cost_and_stops_at_once_when_it_is_spent(manager, tmp_path):
    # GIVEN a job paused by its $0.025 cap after $0.02 of work
    spec = parse_job(ledger_job(tmp_path, 6, budget={"max_cost": 0.025}), source="job")
    manager.create_job(spec)
    manager.run_job(spec.id, ExecutionOptions(concurrency=2, job_dir=tmp_path / "run"))
    assert started_at_worker(tmp_path) == {0: 1, 1: 1}
    # WHEN it is resumed without a new cap, and then with a cap one more chunk fits under
    again = manager.resume_job(spec.id, ExecutionOptions(concurrency=2, job_dir=tmp_path / "run"), background=False)
    assert again.state is JobState.PAUSED and again.pause_reason == "budget"
    assert started_at_worker(tmp_path) == {0: 1, 1: 1}  # THEN the job's own cap starts nothing
    more = manager.resume_job(spec.id, ExecutionOptions(concurrency=2, job_dir=tmp_path / "run", max_cost=0.035),
                              background=False)
    # THEN the earlier runs' mean ($0.01) is the estimate from the start: exactly one more chunk runs
    assert more.state is JobState.PAUSED and more.pause_reason == "budget"
    assert started_at_worker(tmp_path) == {0: 1, 1: 1, 2: 1}
    assert more.metrics.cost_usd == pytest.approx(0.03)


def test_a_failed_attempt_is_not_retried_past_the_cap(tmp_path):
    # GIVEN chunks whose attempts all fail, at $0.01 each, with retries allowed and a $0.015 cap
    attempts: list[int] = []

    def failing(job: WorkerJob) -> WorkerResult:
        attempts.append(job.meta["chunk_id"])
        return WorkerResult(exit_code=1, stderr="boom", cost_usd=PRICE)

    spec = with_budget(make_spec(3), 0.015)
    # WHEN it runs
    with pytest.raises(JobAbortedError) as stopped:
        JobExecutor(CallableWorkerAdapter(failing)).execute(
            spec, ExecutionOptions(job_dir=tmp_path, retry=RetryPolicy(retries=5, delay=0)))
    # THEN the probe's retry would pass the cap ($0.01 + $0.01 > $0.015): it never starts, and the run stops
    # for its budget (the chunk keeps its retries for a resume) rather than failing
    assert attempts == [0]
    assert stopped.value.reason == "budget"


def test_the_gate_waits_for_the_probe_then_admits_what_fits():
    # GIVEN a $0.10 cap and no attempt priced yet
    reached: list[tuple[float, float]] = []
    gate = BudgetGate(0.10, hooks=hooks(budget_reached=lambda *args: reached.append(args)))
    # THEN one attempt may start, a second waits for it (the cap is not reached)
    assert gate.allows_another(0) and not gate.allows_another(1) and not gate.reached
    # WHEN it cost $0.03, THEN a second fits beside one in flight ($0.03 + 2 * $0.03 <= $0.10), a third does not
    gate.charge(WorkerResult(exit_code=0, cost_usd=0.03))
    assert gate.allows_another(1) and not gate.allows_another(2)
    # AND the first refusal is for good, told once
    assert gate.reached and not gate.allows_another(0) and reached == [(0.03, 0.10)]


def test_an_attempt_without_a_cost_counts_as_free_and_no_cap_admits_everything():
    gate = BudgetGate(0.05)
    gate.charge(WorkerResult(exit_code=1, error="connection lost"))
    assert gate.spent == 0 and gate.expected_attempt_cost is None
    assert BudgetGate(None).allows_another(10_000)


def test_a_cap_must_be_a_positive_number_of_dollars(tmp_path):
    for bad in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(JobSpecError, match="max_cost"):
            ExecutionOptions(max_cost=bad)
    with pytest.raises(JobSpecError, match=r"budget\.max_cost"):
        parse_job(ledger_job(tmp_path, 2, budget={"max_cost": -2}), source="job")
    # the run's cap wins over the job's own
    spec = parse_job(ledger_job(tmp_path, 2, budget={"max_cost": 2}), source="job")
    assert max_cost_of(spec) == 2 and max_cost_of(spec, 5) == 5 and max_cost_of(make_spec(2)) is None
    assert json.loads(spec.model_dump_json())["budget"] == {"max_cost": 2.0}


def test_the_library_refuses_a_cap_the_local_backend_cannot_keep_and_stores_nothing(tmp_path):
    import framefarm as ff
    from framefarm.api import run_options

    local = ff.Local(home=tmp_path / "home")
    # WHEN a job is rendered locally with max_cost=, or with a budget of its own
    for job, cap in ((ledger_job(tmp_path, 2), 1.0), (ledger_job(tmp_path, 2, budget={"max_cost": 1}), None)):
        with pytest.raises(JobSpecError, match="the local backend reports no cost"):
            ff.render(job, backend=local, max_cost=cap)
    # THEN no chunk ran and no job was stored
    assert started_at_worker(tmp_path) == {} and local.manager(runs_chunks=False).list_jobs() == []
    # AND on a backend that reports cost, a run's cap reaches its options
    options = run_options(ff.CloudRun(service="http://127.0.0.1:9"), make_spec(2), output=None, max_cost=2.5)
    assert options.max_cost == 2.5
