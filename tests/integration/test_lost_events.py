"""Lost events end to end: devcloud gives an orchestrator event up after Lambda's three attempts and
puts its on-failure record in the stack's queue (moto's SQS); the scheduled sweep hands the job back."""

from __future__ import annotations

import json

import boto3

from framefarm.devcloud import LocalAwsStack
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.status import JobState
from framefarm.storage.s3 import S3Storage
from tests.integration.test_crash_resume import FAST_HEARTBEAT, check_counted_once, short_job

ORCHESTRATOR = "framefarm-orchestrate"


def invoke(function: str, event: dict) -> dict:
    answer = boto3.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    return json.loads(answer["Payload"].read())


def test_a_job_whose_first_event_lambda_gave_up_on_is_handed_back_by_the_sweep(aws_credentials, monkeypatch):
    for name, value in FAST_HEARTBEAT.items():
        monkeypatch.setenv(name, value)
    with LocalAwsStack(worker_timeout=30, orchestrator_timeout=120, event_retry_delays=(0.1, 0.1)) as stack:
        repository = DynamoDBJobRepository(stack.table, storage=S3Storage(stack.bucket))
        # GIVEN a submitted job whose orchestrator event fails all three of Lambda's attempts
        stack.cloud.crash(ORCHESTRATOR, 3, match=lambda event: event.get("job_id") == "lost")
        assert invoke("framefarm-submit", {"job": short_job("lost", 3)})["statusCode"] == 202
        assert stack.cloud.wait_idle(timeout=60)
        assert [call.function_error for call in stack.cloud.calls(ORCHESTRATOR)] == ["Unhandled"] * 3
        assert repository.require("lost").state is JobState.PENDING  # no schedule alone would ever run it
        sqs = boto3.client("sqs")
        (message,) = sqs.receive_message(QueueUrl=stack.lost_events, VisibilityTimeout=0)["Messages"]
        record = json.loads(message["Body"])
        assert record["requestContext"]["condition"] == "RetriesExhausted"
        assert record["requestContext"]["approximateInvokeCount"] == 3
        assert record["requestPayload"]["job_id"] == "lost"
        assert record["responseContext"]["functionError"] == "Unhandled"
        assert record["responsePayload"]["errorMessage"] == "injected crash (devcloud)"
        # WHEN the scheduled sweep runs
        answer = invoke(ORCHESTRATOR, {"sweep": True})
        assert stack.cloud.wait_idle(timeout=120)
        # THEN it handed the job back at once, which rendered every chunk once, and the record is gone
        assert answer["lost_events"] == {"handed_back": ["lost"], "failed": [], "dropped": 0}
        assert answer["resumed"] == []
        check_counted_once(repository.require("lost"), 3)
        assert stack.cloud.calls(ORCHESTRATOR)[-1].event == {"job_id": "lost", "options": {}, "redelivery": 1}
        assert sqs.receive_message(QueueUrl=stack.lost_events, VisibilityTimeout=0).get("Messages", []) == []
