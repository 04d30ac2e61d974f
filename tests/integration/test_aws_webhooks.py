"""The AWS flow end to end on devcloud: a job submitted with a webhook is announced by the
orchestrator function itself, signed with the secret it was given, and recorded in DynamoDB."""

from __future__ import annotations

import json
import sys

import boto3

from framefarm.devcloud import LocalAwsStack
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.status import DeliveryState
from framefarm.storage.s3 import S3Storage
from tests.helpers import eventually
from tests.webhook_receiver import Receiver

SECRET = "whsec-devcloud-0123456789abcdef"


def test_the_orchestrator_posts_the_webhook_of_a_submitted_job(aws_credentials, monkeypatch):
    monkeypatch.setenv("FRAMEFARM_WEBHOOK_SECRET", SECRET)  # what the functions' environment gives them here
    command = [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write('chunk')", "{output}"]
    with Receiver(SECRET) as hook, LocalAwsStack(worker_timeout=60) as stack:
        # GIVEN a job document asking for a webhook, sent to the submit function
        job = {"id": "hooked", "width": 64, "height": 48, "fps": 10, "total_frames": 2, "frames_per_chunk": 1,
               "command": command, "notify": {"webhook": hook.url}}
        answer = boto3.client("lambda").invoke(FunctionName="framefarm-submit",
                                               Payload=json.dumps({"job": job}).encode())
        assert json.loads(answer["Payload"].read())["statusCode"] == 202
        # WHEN the orchestrator has run it
        assert stack.cloud.wait_idle(timeout=120)
        repository = DynamoDBJobRepository(stack.table, storage=S3Storage(stack.bucket))
        [record] = eventually(lambda: [d for d in repository.deliveries("hooked")
                                       if d.state is not DeliveryState.PENDING], timeout=30, what="delivery")
        state = repository.require("hooked").state.value
        runs = stack.cloud.calls("framefarm-orchestrate")
    # THEN the receiver got one genuine delivery of the rendered job, recorded delivered in the table
    assert state == "rendered"
    [got] = hook.received
    assert got.genuine and got.payload["event"] == "job.rendered" and got.payload["completed_chunks"] == 2
    assert (record.state, record.delivery_id) == (DeliveryState.DELIVERED, got.headers["Framefarm-Delivery"])
    assert [run.function_error for run in runs] == [None]
