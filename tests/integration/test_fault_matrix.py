"""Faults by backends: each fault injected into chunk 1 of a 3-chunk job, on each backend that can have it.

Backends: local subprocesses; the AWS flow (submit → orchestrator → render-chunk on devcloud, moto's
server for S3 and DynamoDB); the Cloud Run worker in its own process, started as its image starts it,
behind a relay that injects the platform's faults (429, 500, a reset connection).
For every cell: the job ends in the expected state, chunk 1 took the expected attempts (deterministic
failures within ``retries``, transient ones within ``transient_retries``), the job's counters equal
the sums of its chunk records, and the stitcher gets every chunk exactly once — or, for a failed job,
refuses to stitch and names the missing chunk.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from framefarm import (
    CloudRunWorkerAdapter,
    ExecutionOptions,
    JobExecutor,
    JobManager,
    LocalStorage,
    LocalWorkerAdapter,
    RetryPolicy,
    S3MergeAdapter,
    SqliteJobRepository,
    StitchError,
    plan_job,
)
from framefarm.devcloud import LocalAwsStack
from framefarm.repositories.base import put_spec
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.spec import JobSpec
from framefarm.status import ChunkState, JobRecord, JobState
from framefarm.storage.s3 import S3Storage
from tests.helpers import FAULTY_CHUNK, PlatformFaults, RecordingStitcher, WorkerProcess, WorkerServer

RETRIES, TRANSIENT_RETRIES = 1, 2
RETRY = RetryPolicy(retries=RETRIES, transient_retries=TRANSIENT_RETRIES, delay=0.01)  # Lambda: the same, as submit options
WORKER = "framefarm-render-chunk"


@dataclass(frozen=True)
class Fault:
    """A fault in chunk 1: what its command does per attempt, or a platform fault and how often."""

    name: str
    steps: tuple[str, ...] = ()
    platform: str | None = None
    times: int = 0
    final: JobState | None = None  # None: the job succeeds
    attempts: int = 1
    throttles: int = 0
    error: str = ""  # in the failed chunk's error


FAULTS = [
    Fault("exit 1, once", steps=("exit1",), attempts=2),
    Fault("exit 1, always", steps=("exit1",) * 9, final=JobState.FAILED, attempts=1 + RETRIES, error="exit code 1"),
    Fault("handler exception, once", platform="crash", times=1, attempts=2),
    Fault("throttled 3 times", platform="throttle", times=3, attempts=1, throttles=3),
    Fault("connection reset mid-call, once", platform="reset", times=1, attempts=2),
    Fault("worker timeout, once", steps=("slow",), attempts=2),
    Fault("worker timeout, always", steps=("slow",) * 9, final=JobState.FAILED, attempts=1 + TRANSIENT_RETRIES,
          error="timed out"),
    Fault("exit 0 without output, once", steps=("no-output",), attempts=2),
]
LOCAL_CRASH = {"crash": ("killed",)}  # a local worker has no handler: its process dies by SIGKILL instead
NOT_LOCAL = {"throttle", "reset"}  # a subprocess is never throttled and has no connection to lose


def job_document(job_id: str, plan_dir: Path) -> dict:
    return {"id": job_id, "width": 64, "height": 48, "fps": 10, "total_frames": 3, "frames_per_chunk": 1,
            "command": [sys.executable, str(FAULTY_CHUNK), str(plan_dir), "{chunk_id}", "{output}"]}


def write_plan(plan_dir: Path, steps: tuple[str, ...]) -> None:
    plan_dir.mkdir(parents=True, exist_ok=True)
    (plan_dir / "plan.json").write_text(json.dumps({"1": list(steps)}))


def command_runs(plan_dir: Path, chunk_id: int) -> int:
    ledger = plan_dir / f"calls-{chunk_id}"
    return len(ledger.read_text().splitlines()) if ledger.exists() else 0


# -- backends -------------------------------------------------------------------------------------

class LocalBackend:
    name = "local"

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def run(self, job_id: str, plan_dir: Path, fault: Fault) -> tuple[JobRecord, RecordingStitcher]:
        storage = LocalStorage(self.tmp_path / "store")
        manager = JobManager(SqliteJobRepository(self.tmp_path / "jobs.db"), JobExecutor(LocalWorkerAdapter()),
                             storage)
        spec = plan_job(job_document(job_id, plan_dir))
        manager.create_job(spec)
        stitcher = RecordingStitcher()
        manager.run_job(job_id, ExecutionOptions(
            concurrency=2, retry=RETRY, timeout=1.0, stitcher=stitcher, output_file=self.tmp_path / f"{job_id}.mp4"))
        return manager.get_job(job_id), stitcher


class LambdaBackend:
    name = "lambda"

    def __init__(self, stack: LocalAwsStack, tmp_path: Path) -> None:
        self.stack, self.tmp_path = stack, tmp_path

    def run(self, job_id: str, plan_dir: Path, fault: Fault) -> tuple[JobRecord, RecordingStitcher]:
        is_chunk_1 = lambda event: event.get("job_id") == job_id and event.get("chunk_id") == 1  # noqa: E731
        if fault.platform:
            self.stack.cloud.inject(WORKER, fault.platform, fault.times, match=is_chunk_1)
        answer = boto3.client("lambda").invoke(FunctionName="framefarm-submit", Payload=json.dumps({
            "job": job_document(job_id, plan_dir),
            "options": {"concurrency": 2, "retries": RETRIES, "transient_retries": TRANSIENT_RETRIES,
                        "retry_delay": 0.01}}).encode())
        assert json.loads(answer["Payload"].read())["statusCode"] == 202
        assert self.stack.cloud.wait_idle(timeout=120)
        storage = S3Storage(self.stack.bucket)
        status = DynamoDBJobRepository(self.stack.table, storage=storage).require(job_id)
        return status, merge(storage, status.spec, self.tmp_path)


class CloudRunBackend:
    name = "cloudrun"

    def __init__(self, worker: WorkerProcess, tmp_path: Path) -> None:
        self.worker, self.tmp_path = worker, tmp_path

    def run(self, job_id: str, plan_dir: Path, fault: Fault) -> tuple[JobRecord, RecordingStitcher]:
        faults = PlatformFaults()
        if fault.platform:
            faults.add(fault.platform, fault.times, chunk_id=1)
        relay = WorkerServer(faults=faults, process=self.worker)
        try:
            storage = LocalStorage(self.tmp_path / "store")
            spec = plan_job(job_document(job_id, plan_dir))
            put_spec(storage, spec)  # as `render --backend cloudrun`
            adapter = CloudRunWorkerAdapter(relay.url, storage, service_timeout=30, retry_delay=0.01)
            manager = JobManager(SqliteJobRepository(self.tmp_path / "jobs.db"), JobExecutor(adapter), storage)
            manager.create_job(spec)
            manager.run_job(job_id, ExecutionOptions(
                concurrency=1, retry=RETRY, merge=False))
            status = manager.get_job(job_id)
        finally:
            relay.close()
        return status, merge(storage, spec, self.tmp_path)


def merge(storage, spec: JobSpec, tmp_path: Path) -> RecordingStitcher:
    """The operator's merge with a recording stitcher; a refusal is kept for the test to check."""
    stitcher = RecordingStitcher()
    try:
        S3MergeAdapter(storage, stitcher=stitcher).merge(spec, tmp_path / f"{spec.id}.mp4")
    except StitchError as exc:
        stitcher.refusal = str(exc)
    return stitcher


@pytest.fixture(scope="module")
def aws_stack():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            patch.setenv(name, value)
        with LocalAwsStack(worker_timeout=3, orchestrator_timeout=120) as stack:
            yield stack


@pytest.fixture(scope="module")
def cloud_run_worker():
    worker = WorkerProcess(timeout=1.0)
    yield worker
    worker.close()


CELLS = [pytest.param(backend, fault, id=f"{backend}-{fault.name}")
         for fault in FAULTS for backend in ("local", "lambda", "cloudrun")
         if not (backend == "local" and fault.platform in NOT_LOCAL)]


@pytest.mark.parametrize(("backend_name", "fault"), CELLS)
def test_fault_matrix(backend_name, fault, tmp_path, request):
    # GIVEN a 3-chunk job whose chunk 1 meets the fault
    backend = {"local": lambda: LocalBackend(tmp_path),
               "lambda": lambda: LambdaBackend(request.getfixturevalue("aws_stack"), tmp_path),
               "cloudrun": lambda: CloudRunBackend(request.getfixturevalue("cloud_run_worker"), tmp_path)}[backend_name]()
    steps = LOCAL_CRASH.get(fault.platform or "", fault.steps) if backend_name == "local" else fault.steps
    if backend_name == "local" and fault.platform == "crash":
        fault = Fault(fault.name, steps=steps, attempts=fault.attempts)
    plan_dir = tmp_path / "plan"
    write_plan(plan_dir, steps)
    job_id = f"{backend_name}-{abs(hash(fault.name)) % 10**8}"
    # WHEN it runs
    status, stitcher = backend.run(job_id, plan_dir, fault)
    # THEN it ends as it should
    done = JobState.COMPLETED if backend_name == "local" else JobState.RENDERED
    assert status.state is (fault.final or done), status.error
    # AND chunk 1 took exactly the attempts its fault class allows; the others one each
    chunk1 = status.chunk(1)
    assert chunk1.attempts == fault.attempts and chunk1.throttles == fault.throttles
    assert command_runs(plan_dir, 1) <= fault.attempts
    for record in status.chunks:
        if record.chunk_id != 1:
            assert record.attempts <= 1 and record.state in (ChunkState.COMPLETED, ChunkState.PENDING)
    # AND the job's counters are the sums of its chunk records (nothing lost, nothing counted twice)
    completed = [record for record in status.chunks if record.state is ChunkState.COMPLETED]
    assert status.completed_chunks == len(completed)
    assert status.metrics.total_billed_duration_ms == sum(record.billed_duration_ms for record in status.chunks)
    assert math.isclose(status.metrics.cost_usd, sum(record.cost_usd for record in status.chunks), abs_tol=1e-12)
    assert math.isclose(status.metrics.total_duration_ms, sum(r.duration_ms for r in status.chunks), rel_tol=1e-9)
    if fault.final is None:
        # AND every chunk's output reaches the stitcher exactly once, in order
        assert chunk1.state is ChunkState.COMPLETED and len(completed) == 3
        assert len(stitcher.calls) == 1 and stitcher.texts == ["chunk 0", "chunk 1", "chunk 2"]
    else:
        # AND the failure says why, and nothing is stitched without chunk 1
        assert chunk1.state is ChunkState.FAILED and fault.error in chunk1.error
        assert f"Chunk 1 failed after {fault.attempts} attempts" in status.error
        assert stitcher.calls == []
        if backend_name != "local":
            missing = ", ".join(str(r.chunk_id) for r in status.chunks if r.state is not ChunkState.COMPLETED)
            assert "chunks are not in" in stitcher.refusal and stitcher.refusal.endswith(f": {missing}")
