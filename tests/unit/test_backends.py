"""Backend values build the adapter, the job store and the storage: one wiring for the library, the CLI
and the Lambda handlers."""

from __future__ import annotations

import json

import boto3
import pytest

import framefarm as ff
from framefarm.adapters.aws_lambda import LambdaWorkerAdapter
from framefarm.adapters.local import LocalWorkerAdapter
from framefarm.repositories.dynamodb import DynamoDBJobRepository, create_table
from framefarm.repositories.sqlite import SqliteJobRepository
from framefarm.storage.local import LocalStorage
from framefarm.storage.s3 import S3Storage
from tests.helpers import make_spec


def deploy_outputs(name: str, outputs: dict[str, str]) -> None:
    template = {"Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {key: {"Value": value} for key, value in outputs.items()}}
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


def test_local_keeps_everything_under_its_home(tmp_path):
    backend = ff.Local(home=tmp_path / "home")
    manager = backend.manager()
    assert isinstance(manager.repository, SqliteJobRepository)
    assert manager.repository.path == tmp_path / "home" / "jobs.db"
    assert isinstance(manager.storage, LocalStorage) and isinstance(manager.executor.adapter, LocalWorkerAdapter)


def test_a_manager_that_does_not_run_chunks_refuses_one(tmp_path):
    manager = ff.Local(home=tmp_path).manager(runs_chunks=False)
    manager.create_job(make_spec(1, job_id="j"))
    assert manager.run_job("j").error.endswith("FramefarmError: this manager does not run chunks")


def test_lambda_names_come_from_arguments_then_the_stack_then_the_environment(aws, monkeypatch):
    # GIVEN a deployed stack's outputs, and names in the environment
    deploy_outputs("Framefarm", {"TableName": "stack-table", "BucketName": "stack-bucket",
                                 "WorkerFunctionName": "stack-worker", "SubmitFunctionName": "stack-submit"})
    monkeypatch.setenv("FRAMEFARM_TABLE", "env-table")
    monkeypatch.setenv("FRAMEFARM_ORCHESTRATOR_FUNCTION", "env-orchestrator")
    # WHEN a backend names the stack and one name of its own
    backend = ff.Lambda(stack="Framefarm", bucket="my-bucket")
    # THEN the argument wins, then the stack's outputs, then the environment
    settings = backend.settings
    assert (settings.table, settings.bucket, settings.worker_function, settings.orchestrator_function) == (
        "stack-table", "my-bucket", "stack-worker", "env-orchestrator")
    assert backend.submit_function_name == "stack-submit"
    assert ff.Lambda(stack="Framefarm", run_here=True).submit_function_name is None  # orchestrated here
    assert ff.Lambda().settings.table == "env-table"


def test_lambda_builds_its_clients_from_the_session_it_is_given(aws):
    # GIVEN a session for another region, and a table and bucket there
    session = boto3.session.Session(region_name="eu-west-1")
    create_table(session.client("dynamodb"), "jobs")
    session.client("s3").create_bucket(Bucket="chunks", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    # WHEN a backend is built on that session
    manager = ff.Lambda(table="jobs", bucket="chunks", function="render-chunk", session=session).manager()
    # THEN its store, its storage and its Lambda client all live there
    assert isinstance(manager.repository, DynamoDBJobRepository) and isinstance(manager.storage, S3Storage)
    assert manager.repository.client.meta.region_name == "eu-west-1"
    assert manager.storage.client.meta.region_name == "eu-west-1"
    adapter = manager.executor.adapter
    assert isinstance(adapter, LambdaWorkerAdapter) and adapter.client.meta.region_name == "eu-west-1"
    manager.create_job(make_spec(2, job_id="there"))
    assert manager.repository.get("there") is not None
    assert "Item" in session.client("dynamodb").get_item(TableName="jobs", Key={"PK": {"S": "JOB#there"},
                                                                                 "SK": {"S": "META"}})


def test_a_missing_name_says_how_to_give_it(aws, monkeypatch):
    for name in ("FRAMEFARM_TABLE", "FRAMEFARM_BUCKET", "FRAMEFARM_WORKER_FUNCTION"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ff.FramefarmError,
                       match=r"no table given: pass --table \(ff\.Lambda\(table=\.\.\.\)\), a stack, or set FRAMEFARM_TABLE"):
        ff.Lambda(bucket="b").repository()
    with pytest.raises(ff.FramefarmError, match="no worker function given"):
        ff.Lambda(table="t", bucket="b").manager()
    with pytest.raises(ff.FramefarmError, match="stack Missing: Stack with id Missing does not exist"):
        _ = ff.Lambda(stack="Missing").settings


def test_cloud_run_needs_its_service_only_to_run_chunks(tmp_path):
    backend = ff.CloudRun(home=tmp_path)
    assert isinstance(backend.manager(runs_chunks=False).repository, SqliteJobRepository)
    with pytest.raises(ff.JobSpecError, match="cloudrun: give the service"):
        backend.manager()


def test_a_submit_function_from_the_environment_serves_only_the_environments_table(monkeypatch):
    # GIVEN a shell set up for one deployment (devcloud's exports, or a Lambda function's environment)
    environ = {"FRAMEFARM_TABLE": "theirs", "FRAMEFARM_BUCKET": "their-bucket", "FRAMEFARM_SUBMIT_FUNCTION": "submit"}
    # THEN a backend that names its own table does not send jobs to that deployment's submit function
    assert ff.Lambda(table="mine", bucket="my-bucket", environ=environ).submit_function_name is None
    assert ff.Lambda(environ=environ).submit_function_name == "submit"


def test_a_lambda_backends_storage_keeps_connections_for_a_merges_record_reads(aws):
    # GIVEN a Lambda backend with a bucket
    backend = ff.Lambda(table="jobs", bucket="chunks", function="render-chunk")
    # WHEN its storage is built, THEN its client keeps 64 connections (a merge reads that many records at once)
    assert backend.storage().parallel_requests == 64
