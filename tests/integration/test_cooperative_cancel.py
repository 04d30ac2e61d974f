"""Cancelling a job stops remote workers early: they see the job's cancel marker and exit.

The chunks would sleep 60 s and then write their output; a cancelled one writes nothing, is recorded
as cancelled with the time it was billed, and the job's cost counts what ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest

from framefarm import CloudRunWorkerAdapter, ExecutionOptions, JobExecutor, JobManager, LocalStorage, plan_job
from framefarm.devcloud import LocalAwsStack
from framefarm.repositories.base import put_spec
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.repositories.sqlite import SqliteJobRepository
from framefarm.status import ChunkState, JobRecord, JobState
from framefarm.storage.keys import cancel_key
from framefarm.storage.s3 import S3Storage
from tests.helpers import WorkerServer, eventually

MINUTE_CHUNK = [sys.executable, "-c", "import sys, time; time.sleep(60); open(sys.argv[1], 'w').write('late')",
                "{output}"]


def minute_job(job_id: str, chunks: int) -> dict:
    return {"id": job_id, "width": 64, "height": 48, "fps": 10, "total_frames": chunks, "frames_per_chunk": 1,
            "command": MINUTE_CHUNK}


def check_cancelled(status: JobRecord, chunks: int) -> None:
    assert status.state is JobState.CANCELLED
    assert [record.state for record in status.chunks] == [ChunkState.CANCELLED] * chunks
    assert all(record.billed_duration_ms > 0 and record.error == "cancelled" for record in status.chunks)
    assert all(record.duration_ms < 60_000 for record in status.chunks)  # stopped, not run to the end
    assert status.metrics.total_billed_duration_ms == sum(record.billed_duration_ms for record in status.chunks)
    assert status.metrics.cost_usd == pytest.approx(sum(record.cost_usd for record in status.chunks))
    assert status.metrics.cost_usd > 0


def test_cancel_from_the_cli_stops_lambda_workers_between_stages(aws_credentials, monkeypatch):
    monkeypatch.setenv("FRAMEFARM_CANCEL_POLL", "0.2")
    with LocalAwsStack(worker_timeout=120, orchestrator_timeout=300) as stack:
        # GIVEN a job of three one-minute chunks, all running on render-chunk workers
        invoke = boto3.client("lambda").invoke(FunctionName="framefarm-submit", Payload=json.dumps(
            {"job": minute_job("stop-me", 3), "options": {"concurrency": 3}}).encode())
        assert json.loads(invoke["Payload"].read())["statusCode"] == 202
        storage = S3Storage(stack.bucket)
        repository = DynamoDBJobRepository(stack.table, storage=storage)
        eventually(lambda: all(state is ChunkState.RUNNING for state, _ in repository.chunk_states("stop-me").values())
                   and len(repository.chunk_states("stop-me")) == 3, what="three chunks running")
        # WHEN the operator cancels it from their terminal
        cancel = subprocess.run([sys.executable, "-m", "framefarm", "cancel", "stop-me", "--table", stack.table,
                                 "--bucket", stack.bucket], capture_output=True,
                                text=True, timeout=60, env={**os.environ, **stack.env})
        assert cancel.returncode == 0, cancel.stderr
        assert storage.exists(cancel_key("stop-me"))
        assert stack.cloud.wait_idle(timeout=60)
        # THEN every worker stopped early, nothing was uploaded, and the billed time is counted
        check_cancelled(repository.require("stop-me"), 3)
        assert storage.list("jobs/stop-me/chunks/") == []


def test_cancel_stops_a_cloud_run_worker_and_resume_clears_the_marker(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMEFARM_CANCEL_POLL", "0.2")
    server = WorkerServer()
    try:
        # GIVEN a one-minute chunk running on the Cloud Run worker
        storage = LocalStorage(tmp_path / "store")
        spec = plan_job(minute_job("cr-stop", 1))
        put_spec(storage, spec)
        manager = JobManager(SqliteJobRepository(tmp_path / "jobs.db"),
                             JobExecutor(CloudRunWorkerAdapter(server.url, storage)), storage)
        manager.create_job(spec)
        manager.resume_job("cr-stop", ExecutionOptions(merge=False))
        eventually(lambda: manager.repository.chunk_states("cr-stop").get(0, (None,))[0] is ChunkState.RUNNING,
                   what="chunk running")
        # WHEN the job is cancelled
        manager.cancel_job("cr-stop")
        status = manager.wait("cr-stop", timeout=60)
        # THEN the worker saw the marker and stopped; the attempt is recorded as cancelled and billed
        check_cancelled(manager.get_job("cr-stop"), 1)
        assert not storage.exists("jobs/cr-stop/chunks/00000.mp4")
        # AND resuming removes the marker, so the chunk runs again instead of stopping at once
        assert status.state is JobState.CANCELLED and storage.exists(cancel_key("cr-stop"))
        manager.resume_job("cr-stop", ExecutionOptions(merge=False))
        eventually(lambda: not storage.exists(cancel_key("cr-stop")), what="marker cleared")
        manager.cancel_job("cr-stop")
        manager.wait("cr-stop", timeout=60)
    finally:
        server.close()
