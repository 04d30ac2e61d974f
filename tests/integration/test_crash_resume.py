"""The orchestrator dies at random points while chunks are in flight; resuming finishes the job with
every chunk counted once. Seeded, so a failure names a reproducible kill point.

Local: ``framefarm render`` is SIGKILLed, then ``framefarm resume`` takes over once its heartbeat is
stale. AWS: the orchestrator Lambda runs in its own process under devcloud and is SIGKILLed when
its k-th render-chunk call goes out; Lambda's own retries of the asynchronous call take over, and
when they are used up too, ``framefarm resume --table`` hands the job back to the orchestrator;
``framefarm retry --table`` reopens chosen chunks and hands the job back the same way.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time

import boto3
import pytest
import yaml

from framefarm import JobExecutor, JobManager, LocalWorkerAdapter, S3MergeAdapter, plan_job
from framefarm.devcloud import LocalAwsStack
from framefarm.lease import Lease
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.repositories.sqlite import SqliteJobRepository
from framefarm.status import ChunkState, JobRecord, JobState
from framefarm.storage.s3 import S3Storage
from tests.helpers import RecordingStitcher, eventually

KILL_POINTS = 20
# Each AWS kill point costs a lease running out and process instances starting cold: 8 keep the suite's time.
AWS_KILL_POINTS = 8
SHORT_CHUNK = [sys.executable, "-c",
               "import sys, time; time.sleep(float(sys.argv[2])); open(sys.argv[1], 'w').write(sys.argv[3])",
               "{output}", "0.25", "chunk {chunk_id}"]
# A lease of 4 s renewed every 0.2 s: short, so take-overs come quickly, yet long enough that a renewal
# slowed by a loaded machine (make test runs three test processes beside devcloud and moto; a moto call
# can take over a second then) does not trip the fence.
FAST_HEARTBEAT = {"FRAMEFARM_HEARTBEAT_INTERVAL": "0.2", "FRAMEFARM_STALE_AFTER": "4"}
LEASE_RUNS_OUT = float(FAST_HEARTBEAT["FRAMEFARM_STALE_AFTER"]) + 0.2


def short_job(job_id: str, chunks: int) -> dict:
    return {"id": job_id, "width": 64, "height": 48, "fps": 10, "total_frames": chunks, "frames_per_chunk": 1,
            "command": SHORT_CHUNK}


def check_counted_once(status: JobRecord, chunks: int) -> None:
    assert status.state is JobState.RENDERED, status.error
    assert status.completed_chunks == chunks
    assert [record.state for record in status.chunks] == [ChunkState.COMPLETED] * chunks
    assert all(record.attempts >= 1 for record in status.chunks)
    assert status.metrics.total_billed_duration_ms == sum(record.billed_duration_ms for record in status.chunks)
    assert math.isclose(status.metrics.total_duration_ms, sum(r.duration_ms for r in status.chunks), rel_tol=1e-9)


@pytest.mark.slow
def test_local_orchestrator_killed_at_random_points_resumes_each_chunk_once(tmp_path):
    rng = random.Random(20261121)
    home = tmp_path / "home"
    env = {**os.environ, "FRAMEFARM_HOME": str(home), **FAST_HEARTBEAT}
    store = SqliteJobRepository(home / "jobs.db")
    kills, jobs = 0, 0
    while kills < KILL_POINTS:
        # GIVEN a job of 16 quarter-second chunks, three at a time
        jobs += 1
        job_id, chunks = f"local-{jobs}", 16
        job_file = tmp_path / f"{job_id}.yaml"
        job_file.write_text(yaml.safe_dump(short_job(job_id, chunks)))
        command = ["render", str(job_file), "--job-id", job_id]
        while kills < KILL_POINTS:
            # WHEN its runner is killed a random moment after a chunk started
            runner = subprocess.Popen([sys.executable, "-m", "framefarm", *command, "--no-stitch", "--concurrency",
                                       "3"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            eventually(lambda: runner.poll() is not None or any(  # noqa: B023
                state is ChunkState.RUNNING for state, _ in store.chunk_states(job_id).values()),  # noqa: B023
                what="a chunk in flight")
            time.sleep(rng.uniform(0.0, 0.6))
            if runner.poll() is not None:
                break  # the job finished first
            runner.send_signal(signal.SIGKILL)
            runner.wait()
            kills += 1  # `resume` takes over at once: the runner's process is gone from this host
            command = ["resume", job_id]
        # THEN `framefarm resume` finishes it, with every chunk counted once
        if store.require(job_id).state is not JobState.RENDERED:
            final = subprocess.run([sys.executable, "-m", "framefarm", "resume", job_id, "--no-stitch"], env=env,
                                   capture_output=True, text=True, timeout=120)
            assert final.returncode == 0, final.stderr
        check_counted_once(store.require(job_id), chunks)
        outputs = sorted((home / "jobs" / job_id / "chunks").iterdir())
        assert [path.read_text() for path in outputs] == [f"chunk {n}" for n in range(chunks)]


@pytest.mark.slow
def test_lambda_orchestrator_killed_at_random_points_is_taken_over_with_each_chunk_once(aws_credentials, monkeypatch,
                                                                                       tmp_path):
    for name, value in FAST_HEARTBEAT.items():
        monkeypatch.setenv(name, value)
    rng = random.Random(7)
    with LocalAwsStack(worker_timeout=30, orchestrator_timeout=120,
                       event_retry_delays=(0.1, 0.1)) as stack:
        storage = S3Storage(stack.bucket)
        repository = DynamoDBJobRepository(stack.table, storage=storage)
        jobs = 0
        while stack.cloud.kills_done < AWS_KILL_POINTS:
            # GIVEN a job of 12 quarter-second chunks, three at a time, whose orchestrator runs will be
            # killed when their k-th worker call goes out (k random), the first call's and both retries'
            jobs += 1
            job_id, chunks = f"aws-{jobs}", 12
            for _ in range(3):
                stack.cloud.kill("framefarm-orchestrate", after_calls_to="framefarm-render-chunk",
                                 calls=rng.randint(1, 5))
            answer = boto3.client("lambda").invoke(FunctionName="framefarm-submit", Payload=json.dumps(
                {"job": short_job(job_id, chunks), "options": {"concurrency": 3, "retry_delay": 0.01}}).encode())
            assert json.loads(answer["Payload"].read())["statusCode"] == 202
            assert stack.cloud.wait_idle(timeout=300)
            # WHEN Lambda's retries died too, the operator resumes it from the CLI
            while repository.require(job_id).state is JobState.RUNNING:
                time.sleep(LEASE_RUNS_OUT)  # the dead orchestrator's lease runs out
                resumed = subprocess.run(
                    [sys.executable, "-m", "framefarm", "resume", job_id, "--table", stack.table, "--bucket",
                     stack.bucket, "--function", "framefarm-orchestrate", "--concurrency", "3"],
                    capture_output=True, text=True, timeout=120, env={**os.environ, **stack.env})
                assert resumed.returncode == 0, resumed.stderr
                assert stack.cloud.wait_idle(timeout=300)
            # THEN the job is ready to stitch, every chunk counted once and stitched once
            status = repository.require(job_id)
            check_counted_once(status, chunks)
            stitcher = RecordingStitcher()
            S3MergeAdapter(storage, stitcher=stitcher).merge(status.spec, tmp_path / f"{job_id}.mp4")
            assert stitcher.texts == [f"chunk {n}" for n in range(chunks)]
        killed = [call for call in stack.cloud.calls("framefarm-orchestrate") if call.function_error]
        assert len(killed) >= AWS_KILL_POINTS
        print(f"{AWS_KILL_POINTS} kill points over {jobs} jobs; {len(stack.cloud.calls('framefarm-orchestrate'))} "
              f"orchestrator runs", file=sys.stderr)


def test_resume_refuses_an_aws_job_whose_orchestrator_is_alive(aws_credentials):
    with LocalAwsStack() as stack:
        repository = DynamoDBJobRepository(stack.table, storage=S3Storage(stack.bucket))
        manager = JobManager(repository, JobExecutor(LocalWorkerAdapter()), S3Storage(stack.bucket))
        manager.create_job(plan_job(short_job("alive", 1)))
        repository.take_lease("alive", Lease("elsewhere:1:alive", time.time() + 3600), now=time.time(),
                              expected={JobState.PENDING})
        resumed = subprocess.run(
            [sys.executable, "-m", "framefarm", "resume", "alive", "--table", stack.table, "--bucket", stack.bucket,
             "--function", "framefarm-orchestrate"], capture_output=True, text=True, timeout=60,
            env={**os.environ, **stack.env})
        assert resumed.returncode == 2 and "(its orchestrator is alive)" in resumed.stderr
        assert stack.cloud.calls("framefarm-orchestrate") == []


def test_the_sweep_hands_abandoned_jobs_back_and_leaves_live_ones(aws_credentials, monkeypatch):
    for name, value in FAST_HEARTBEAT.items():
        monkeypatch.setenv(name, value)
    with LocalAwsStack(worker_timeout=30, orchestrator_timeout=120) as stack:
        storage = S3Storage(stack.bucket)
        repository = DynamoDBJobRepository(stack.table, storage=storage)
        manager = JobManager(repository, JobExecutor(LocalWorkerAdapter()), storage)
        # GIVEN a running job whose orchestrator died long ago, and one whose orchestrator beats on
        then = time.time() - 60
        for job_id, lease_until in (("abandoned", then + 15), ("alive", time.time() + 3600)):
            manager.create_job(plan_job(short_job(job_id, 3)))
            repository.take_lease(job_id, Lease(f"elsewhere:1:{job_id}", lease_until), now=then,
                                  expected={JobState.PENDING})
        # WHEN the scheduled sweep runs
        answer = json.loads(boto3.client("lambda").invoke(
            FunctionName="framefarm-orchestrate", Payload=json.dumps({"sweep": True}).encode())["Payload"].read())
        assert stack.cloud.wait_idle(timeout=120)
        # THEN the abandoned job was taken over and finished, each chunk once; the live one untouched
        assert answer == {"checked": 2, "resumed": ["abandoned"],
                          "lost_events": {"handed_back": [], "failed": [], "dropped": 0}}
        check_counted_once(repository.require("abandoned"), 3)
        assert repository.require("alive").state is JobState.RUNNING
        assert repository.require("alive").completed_chunks == 0


def test_retry_of_an_aws_job_reopens_its_chunks_and_hands_it_to_the_orchestrator(aws_credentials, monkeypatch):
    for name, value in FAST_HEARTBEAT.items():
        monkeypatch.setenv(name, value)
    with LocalAwsStack() as stack:
        # GIVEN a job of 3 chunks rendered on AWS, ready to stitch, its orchestrator gone
        repository = DynamoDBJobRepository(stack.table, storage=S3Storage(stack.bucket))
        answer = boto3.client("lambda").invoke(FunctionName="framefarm-submit", Payload=json.dumps(
            {"job": short_job("redo", 3), "options": {"concurrency": 3}}).encode())
        assert json.loads(answer["Payload"].read())["statusCode"] == 202
        assert stack.cloud.wait_idle(timeout=120)
        manager = JobManager(repository, JobExecutor(LocalWorkerAdapter()))
        eventually(lambda: manager.is_stale(repository.require("redo")), timeout=10, what="a stale heartbeat")
        # WHEN chunk 1 is retried from the CLI
        retried = subprocess.run(
            [sys.executable, "-m", "framefarm", "retry", "redo", "--chunk", "1", "--table", stack.table,
             "--bucket", stack.bucket, "--function", "framefarm-orchestrate"],
            capture_output=True, text=True, timeout=120, env={**os.environ, **stack.env})
        assert retried.returncode == 0, retried.stderr
        assert stack.cloud.wait_idle(timeout=120)
        # THEN the orchestrator rendered chunk 1 alone again, and the job is ready to stitch once more
        rendered = [call.event["chunk_id"] for call in stack.cloud.calls("framefarm-render-chunk")]
        assert sorted(rendered) == [0, 1, 1, 2]
        status = repository.require("redo")
        assert status.state is JobState.RENDERED and status.completed_chunks == 3
        assert [record.attempts for record in status.chunks] == [1, 2, 1]
