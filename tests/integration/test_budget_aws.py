"""Spending caps and estimates on the AWS flow (devcloud + moto's server): the orchestrator keeps the cap,
counted at the worker; ``framefarm estimate`` against the real cost of the same job."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import yaml

from framefarm.billing import LAMBDA_PRICES
from framefarm.devcloud.server import ORCHESTRATOR_FUNCTION, SUBMIT_FUNCTION, WORKER_FUNCTION
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.status import JobState
from framefarm.storage.s3 import S3Storage
from tests.helpers import LEDGER_CHUNK, assert_stopped_at_the_cap, ledger_starts
from tests.integration.test_aws import framefarm, stack

__all__ = ["stack"]  # the AWS tests' fixture (devcloud + moto's server), used here too

WORKER_MEMORY_MB = 2048  # devcloud's render-chunk, as the stack deploys it by default


def ledger_job(tmp_path: Path, chunks: int, seconds: float) -> Path:
    jobfile = tmp_path / "job.yaml"
    jobfile.write_text(yaml.safe_dump({
        "width": 64, "height": 48, "fps": 10, "total_frames": chunks, "frames_per_chunk": 1,
        "command": [*LEDGER_CHUNK, str(tmp_path / "ledger"), str(seconds)]}))
    return jobfile


def starts(tmp_path: Path) -> list[tuple[int, float]]:
    return ledger_starts(tmp_path / "ledger")


def test_the_orchestrator_stops_at_the_cap_and_a_resume_with_a_higher_one_finishes(stack, tmp_path):
    # GIVEN 12 chunks of ~0.4 s on 2 GB workers, submitted 4 at a time with a cap of about 4.5 chunks' cost
    chunk_cost = LAMBDA_PRICES.cost(billed_duration_ms=450, memory_mb=WORKER_MEMORY_MB)
    cap = 4.5 * chunk_cost
    jobfile = ledger_job(tmp_path, 12, 0.4)
    submitted = framefarm(stack, "submit", str(jobfile), "--function", SUBMIT_FUNCTION, "--job-id", "capped",
                          "--concurrency", "4", "--max-cost", f"{cap:.10f}")
    assert submitted.returncode == 0, submitted.stderr
    # WHEN the orchestrator runs it
    assert stack.cloud.wait_idle(timeout=240)
    # THEN the job is paused for its budget, and says so
    repository = DynamoDBJobRepository(stack.table, storage=S3Storage(stack.bucket))
    status = json.loads(framefarm(stack, "status", "capped", "--json").stdout)["job"]
    assert status["pause_reason"] == "budget" and status["error"].startswith("budget: $")
    # AND the workers started fewer chunks than the job has, each one recorded (chunks in flight finished),
    # none once what had finished before it had reached the cap
    assert_stopped_at_the_cap(repository.require("capped"), starts(tmp_path), cap)
    # WHEN it is resumed with a higher cap
    resumed = framefarm(stack, "resume", "capped", "--function", ORCHESTRATOR_FUNCTION, "--max-cost", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert stack.cloud.wait_idle(timeout=240)
    # THEN it renders every chunk, each started exactly once in all
    job = repository.require("capped")
    assert job.state is JobState.RENDERED and job.error is None and job.pause_reason is None
    assert Counter(chunk for chunk, _ in starts(tmp_path)) == dict.fromkeys(range(12), 1)


def test_an_estimate_is_within_a_quarter_of_what_the_job_then_costs(stack, tmp_path):
    # GIVEN a job of 6 identical chunks of ~1 s
    jobfile = ledger_job(tmp_path, 6, 1.0)
    where = ("--backend", "lambda", "--function", WORKER_FUNCTION, "--table", stack.table, "--bucket", stack.bucket)
    # WHEN it is estimated (nothing ran before: a sample of two chunks renders, cold then warm), then again
    first = framefarm(stack, "estimate", str(jobfile), *where, "--concurrency", "3", "--json")
    assert first.returncode == 0, first.stderr
    sampled = json.loads(first.stdout)["estimate"]
    again = json.loads(framefarm(stack, "estimate", str(jobfile), *where, "--concurrency", "3", "--json").stdout)
    # THEN the first rendered two chunks, the second used their records and rendered nothing
    assert sampled["basis"] == "sample" and sampled["samples"] == 2 and len(starts(tmp_path)) == 2
    assert again["estimate"]["basis"] == "history" and again["estimate"]["sources"] == sampled["sources"]
    assert again["estimate"]["cost_usd"] == sampled["cost_usd"] and len(starts(tmp_path)) == 2
    # WHEN the job itself renders
    rendered = framefarm(stack, "render", str(jobfile), *where, "--concurrency", "3", "--no-stitch",
                         "--job-id", "real")
    assert rendered.returncode == 0, rendered.stderr
    # THEN the estimate was within 25 % of what it cost
    real = DynamoDBJobRepository(stack.table, storage=S3Storage(stack.bucket)).require("real").metrics.cost_usd
    assert real > 0 and abs(sampled["cost_usd"] - real) <= 0.25 * real, (sampled, real)
    assert sampled["chunks"] == 6 and sampled["concurrency"] == 3
