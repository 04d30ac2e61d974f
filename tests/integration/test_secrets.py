"""No secret reaches a chunk's command, its records or the logs kept of it.

The worker's credentials are dropped from the command's environment; a secret the command finds
another way (here: a file standing for /proc of its parent) is blanked out of what it printed.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid

import boto3

from framefarm import ExecutionOptions, JobExecutor, JobManager, LocalStorage, LocalWorkerAdapter, plan_job
from framefarm.devcloud import LocalAwsStack
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.repositories.sqlite import SqliteJobRepository
from framefarm.storage.s3 import S3Storage

LEAKY_CHUNK = [sys.executable, "-c",
               "import os, sys; print(dict(os.environ)); print(open(sys.argv[1]).read()); print('x' * 9000); "
               "print(open(sys.argv[1]).read(), file=sys.stderr); open(sys.argv[2], 'w').write('chunk')",
               "{secret_file}", "{output}"]


def leaky_job(job_id: str, secret_file) -> dict:
    command = [part.replace("{secret_file}", str(secret_file)) for part in LEAKY_CHUNK]
    return {"id": job_id, "width": 64, "height": 48, "fps": 10, "total_frames": 2, "frames_per_chunk": 1,
            "command": command}


def everything_kept(status, storage, job_id: str) -> str:
    """Every text the job left behind: its records and the full logs in storage."""
    texts = [status.model_dump_json()]
    texts += [storage.get_text(obj.key) for obj in storage.list(f"jobs/{job_id}/logs/")]
    return "\n".join(texts)


def test_lambda_workers_keep_credentials_out_of_records_and_logs(aws_credentials, monkeypatch, tmp_path, caplog):
    token = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("FRAMEFARM_DEPLOY_TOKEN", token)
    secret_file = tmp_path / "found-elsewhere"
    secret_file.write_text(f"the token is {token}")
    caplog.set_level(logging.INFO)
    with LocalAwsStack(worker_timeout=60) as stack:
        # GIVEN a chunk command that prints its environment and a secret it found on disk
        answer = boto3.client("lambda").invoke(FunctionName="framefarm-submit", Payload=json.dumps(
            {"job": leaky_job("leaky", secret_file)}).encode())
        assert json.loads(answer["Payload"].read())["statusCode"] == 202
        assert stack.cloud.wait_idle(timeout=120)
        storage = S3Storage(stack.bucket)
        status = DynamoDBJobRepository(stack.table, storage=storage).require("leaky")
        kept = everything_kept(status, storage, "leaky")
        # THEN the job ran, and its records and logs hold neither the credentials nor the token
        assert status.completed_chunks == 2 and storage.list("jobs/leaky/logs/")
        assert "[redacted]" in kept and "PATH" in kept  # the command did print its environment
        for secret in (token, "AWS_SECRET_ACCESS_KEY", stack.env["AWS_SECRET_ACCESS_KEY"] + "'"):
            assert secret not in kept
        assert token not in caplog.text


def test_local_runs_blank_secrets_out_of_records_and_logs(monkeypatch, tmp_path):
    token = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("MY_SERVICE_PASSWORD", token)
    secret_file = tmp_path / "found-elsewhere"
    secret_file.write_text(token)
    storage = LocalStorage(tmp_path / "store")
    manager = JobManager(SqliteJobRepository(tmp_path / "jobs.db"), JobExecutor(LocalWorkerAdapter()), storage)
    spec = plan_job(leaky_job("local-leaky", secret_file))
    manager.create_job(spec)
    status = manager.run_job("local-leaky", ExecutionOptions(merge=False))
    assert status.completed_chunks == 2
    kept = everything_kept(manager.get_job("local-leaky"), storage, "local-leaky")
    assert token not in kept and "[redacted]" in kept
