"""A chunk of several steps runs the same way on every worker: locally, on the render-chunk Lambda
(devcloud: the real handler in its own process) and on the Cloud Run worker server (its own
process): both steps in the chunk's directory, the output uploaded, and a failing step named."""

from __future__ import annotations

import sys

import pytest

from framefarm import LocalStorage, LocalWorkerAdapter, WorkerJob, plan_job
from framefarm.adapters.aws_lambda import LambdaWorkerAdapter
from framefarm.adapters.cloud_run import CloudRunWorkerAdapter
from framefarm.devcloud import LocalAwsStack
from framefarm.failures import FailureKind
from framefarm.repositories.base import put_spec
from framefarm.storage.s3 import S3Storage
from tests.helpers import WorkerServer

PY = sys.executable
RENDER = [PY, "-c", "import sys; open('frame.txt', 'w').write('frames ' + sys.argv[1]); print('rendered')",
          "{start_frame}-{last_frame}"]
ENCODE = [PY, "-c", "import sys; open(sys.argv[1], 'w').write(open('frame.txt').read()); print('encoded')",
          "{output}"]
FAIL_ON_CHUNK_1 = [PY, "-c", "import sys; print('no encoder', file=sys.stderr); sys.exit(int(sys.argv[1]) * 4)",
                   "{chunk_id}"]


def two_steps(job_id: str):
    return plan_job({"id": job_id, "width": 64, "height": 48, "fps": 10, "total_frames": 4, "frames_per_chunk": 2,
                     "command": {"steps": [RENDER, FAIL_ON_CHUNK_1, ENCODE]}})


def chunk_job(job_id: str, chunk_id: int) -> WorkerJob:
    return WorkerJob(command="ignored by remote workers: they read the spec",
                     meta={"job_id": job_id, "chunk_id": chunk_id, "attempt": 1})


def check(ok, failed, stored: bytes) -> None:
    # chunk 0: all three steps ran, in one directory, and its output is what they made
    assert ok.ok, ok
    assert ok.stdout == "rendered\nencoded\n" and stored == b"frames 0-1"
    # chunk 1: step 2 exited 4, named; step 3 never ran; what ran is in the output
    assert (failed.kind, failed.exit_code) == (FailureKind.EXIT_CODE, 4)
    assert failed.error == f"step 2 of 3 ({PY.rsplit('/', 1)[-1]}) exited 4"
    assert failed.stdout == "rendered\n" and "no encoder" in failed.stderr


def test_steps_locally(tmp_path):
    # GIVEN a job of two chunks, three steps each, the second failing on chunk 1
    spec = two_steps("steps-local")
    (tmp_path / "chunks").mkdir()
    # WHEN each chunk runs on this machine, in the job's directory, as the executor runs it
    ok, failed = (LocalWorkerAdapter().execute(WorkerJob(command=chunk.command, cwd=tmp_path,
                                                         meta={"output_file": chunk.output_file}))
                  for chunk in spec.chunks)
    # THEN the steps made chunk 0 and failed chunk 1 in step 2
    check(ok, failed, (tmp_path / spec.chunks[0].output_file).read_bytes())


def test_steps_on_the_cloud_run_worker(tmp_path):
    # GIVEN the job's spec in the worker's store and the Cloud Run worker server in its own process
    storage = LocalStorage(tmp_path / "store")
    spec = two_steps("steps-cloudrun")
    put_spec(storage, spec)
    server = WorkerServer(timeout=60)
    try:
        adapter = CloudRunWorkerAdapter(server.url, storage, token_provider=lambda audience: "token",
                                        service_timeout=60)
        # WHEN each chunk is sent to it
        ok, failed = (adapter.execute(chunk_job(spec.id, chunk_id)) for chunk_id in (0, 1))
    finally:
        server.close()
    # THEN the worker ran the steps as locally, and uploaded chunk 0's output
    check(ok, failed, storage.get_bytes(ok.output_location))


@pytest.mark.slow
def test_steps_on_the_render_chunk_lambda(aws_credentials):
    # GIVEN devcloud's stack (moto's S3 + the render-chunk handler in a function instance) and the spec in S3
    with LocalAwsStack(worker_timeout=60, orchestrator_timeout=300) as stack:
        storage = S3Storage(stack.bucket)
        spec = two_steps("steps-lambda")
        put_spec(storage, spec)
        adapter = LambdaWorkerAdapter("framefarm-render-chunk", storage, function_timeout=60)
        # WHEN each chunk is invoked
        ok, failed = (adapter.execute(chunk_job(spec.id, chunk_id)) for chunk_id in (0, 1))
        # THEN the function ran the steps as locally, and uploaded chunk 0's output to S3
        check(ok, failed, storage.get_bytes(ok.output_location))
