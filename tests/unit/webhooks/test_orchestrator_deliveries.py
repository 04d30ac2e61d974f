"""On AWS the orchestrator sends the webhooks: it waits for them only while its own time lasts,
hands what is still pending to a new invocation, and that one carries the same delivery on."""

from __future__ import annotations

import json

from framefarm import Lambda
from framefarm.aws.handlers import MAX_IDLE_CONTINUATIONS, _settle_deliveries, deliver, orchestrate
from framefarm.aws.lost_events import MAX_REDELIVERIES
from framefarm.config import HANDOVER_SPARE
from framefarm.spec import Notify
from framefarm.status import DeliveryState, JobRecord, JobState
from tests.helpers import make_spec
from tests.unit.aws.test_lost_events import record as lost_record
from tests.webhook_receiver import Receiver

SECRET = "whsec-aws-0123456789abcdef"


class Context:
    def __init__(self, remaining_s: float) -> None:
        self.remaining_ms = remaining_s * 1000

    def get_remaining_time_in_millis(self) -> float:
        return self.remaining_ms


class Invokes:
    """A Lambda client that records asynchronous invokes."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def invoke(self, *, FunctionName, InvocationType, Payload):
        assert InvocationType == "Event"
        self.events.append((FunctionName, json.loads(Payload)))


def test_pending_deliveries_are_handed_over_and_carried_on_by_the_next_invocation(aws, table, bucket, monkeypatch):
    monkeypatch.setenv("FRAMEFARM_WEBHOOK_SECRET", SECRET)
    backend = Lambda(table=table, bucket=bucket, orchestrator="Framefarm-orchestrate")
    with Receiver(SECRET, answers=[503]) as hook:
        # GIVEN a job on DynamoDB that ended, with its webhook answering 503 at first
        manager = backend.manager(runs_chunks=False)
        spec = make_spec(2, job_id="job-1").model_copy(update={"notify": Notify(webhook=hook.url)})
        manager.repository.create(JobRecord.new(spec, now=1.0).model_copy(update={"state": JobState.RENDERED}))
        manager.announce("job-1")
        hook.arrived.wait(30)
        # WHEN the orchestrator has no time left to wait for its retry (its spare excepted)
        client = Invokes()
        answer = _settle_deliveries(manager, Context(HANDOVER_SPARE), client, "Framefarm-orchestrate")
        # THEN it hands the pending delivery to a new invocation, still pending in the table
        assert answer == {"deliveries_handed_over": 1}
        [(function, event)] = client.events
        [record] = manager.repository.deliveries("job-1")
        assert function == "Framefarm-orchestrate"
        assert event == {"deliveries": [{"job_id": "job-1", "delivery_id": record.delivery_id}]}
        assert record.state is DeliveryState.PENDING and record.outcomes == ["503"]
        # AND the next invocation, with time to spare, delivers it under the same delivery id
        later = Invokes()
        assert deliver(event, Context(HANDOVER_SPARE + 60), backend=backend, client=later) == {}
    [record] = backend.manager(runs_chunks=False).repository.deliveries("job-1")
    assert (record.state, record.attempts, record.outcomes) == (DeliveryState.DELIVERED, 2, ["503", "200"])
    assert [got.headers["Framefarm-Delivery"] for got in hook.received] == [record.delivery_id] * 2
    assert all(got.genuine for got in hook.received) and later.events == []
    # AND a repeated hand-over event finds nothing left to send
    assert deliver(event, Context(HANDOVER_SPARE + 60), backend=backend, client=later) == {}
    assert len(hook.received) == 2


def test_the_sweep_hands_over_the_webhook_of_a_job_it_failed(aws, table, bucket, monkeypatch):
    import boto3

    monkeypatch.setenv("FRAMEFARM_WEBHOOK_SECRET", SECRET)
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="lost-events")["QueueUrl"]
    monkeypatch.setenv("FRAMEFARM_LOST_EVENTS_QUEUE", queue)
    backend = Lambda(table=table, bucket=bucket, orchestrator="Framefarm-orchestrate")
    with Receiver(SECRET, answers=[503]) as hook:
        # GIVEN a pending job with a webhook (answering 503 at first) whose event was lost once too often
        spec = make_spec(2, job_id="cursed").model_copy(update={"notify": Notify(webhook=hook.url)})
        backend.manager(runs_chunks=False).create_job(spec)
        event = {"job_id": "cursed", "options": {}, "redelivery": MAX_REDELIVERIES}
        sqs.send_message(QueueUrl=queue, MessageBody=lost_record(event))
        # WHEN the scheduled sweep runs, with no time to spare for the webhook's retry
        client = Invokes()
        answer = orchestrate({"sweep": True}, Context(HANDOVER_SPARE), backend=backend, client=client)
        # THEN the job fails, and its webhook, still pending, is handed to a new invocation as the
        # orchestrator's own are (a sweep that returned with it in memory would lose it when frozen)
        assert answer["lost_events"]["failed"] == ["cursed"] and answer["deliveries_handed_over"] == 1
        [record] = backend.manager(runs_chunks=False).repository.deliveries("cursed")
        assert record.event == "job.failed" and record.state is DeliveryState.PENDING
        assert client.events == [("Framefarm-orchestrate",
                                  {"deliveries": [{"job_id": "cursed", "delivery_id": record.delivery_id}]})]


class NoWorkers(Invokes):
    """A Lambda client on which every worker call loses its connection (no chunk ever completes)."""

    def invoke(self, *, FunctionName, InvocationType, Payload, **kwargs):
        if InvocationType == "RequestResponse":
            raise ConnectionResetError("connection reset by peer")
        super().invoke(FunctionName=FunctionName, InvocationType=InvocationType, Payload=Payload)


def test_a_job_the_orchestrator_fails_for_idle_continuations_is_announced(aws, table, bucket, monkeypatch):
    monkeypatch.setenv("FRAMEFARM_WEBHOOK_SECRET", SECRET)
    backend = Lambda(table=table, bucket=bucket, orchestrator="Framefarm-orchestrate", function="Framefarm-render")
    with Receiver(SECRET) as hook:
        # GIVEN a pending job with a webhook, whose orchestrator already handed over idle one time short of the
        # limit, and no time left to run anything (it hands over again at once)
        spec = make_spec(2, job_id="stuck").model_copy(update={"notify": Notify(webhook=hook.url)})
        backend.manager(runs_chunks=False).create_job(spec)
        client = NoWorkers()
        event = {"job_id": "stuck", "options": {}, "idle": MAX_IDLE_CONTINUATIONS - 1}
        # WHEN the orchestrator runs it
        answer = orchestrate(event, Context(backend.settings.worker_timeout + HANDOVER_SPARE), backend=backend,
                             client=client)
        # THEN it fails the job for its idle continuations, and its webhook hears of it, delivered
        assert answer["state"] == "failed" and "continued" not in answer
        status = backend.manager(runs_chunks=False).summary("stuck")
        assert status.state is JobState.FAILED and "no chunk completed" in (status.error or "")
        [record] = backend.manager(runs_chunks=False).repository.deliveries("stuck")
        assert (record.event, record.state) == ("job.failed", DeliveryState.DELIVERED)
        assert [got.payload["state"] for got in hook.received] == ["failed"] and hook.received[0].genuine
