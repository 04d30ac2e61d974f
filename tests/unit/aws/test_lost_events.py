"""Lost events: the orchestrator's on-failure destination records, read from SQS (moto) and acted on."""

from __future__ import annotations

import json

import pytest

from framefarm import InMemoryJobRepository, JobExecutor, JobManager, JobState, events
from framefarm.aws.lost_events import MAX_REDELIVERIES, LostEvent, UnreadableRecord, recover_lost_events
from framefarm.lease import Lease
from framefarm.webhooks.notifier import Notifier
from tests.helpers import ScriptedWorker, make_spec

NOW = 10_000.0


def record(event: dict | None, *, condition: str = "RetriesExhausted", error: str = "boom") -> str:
    """An on-failure invocation record as Lambda writes it to an SQS destination (AWS's documented shape)."""
    body: dict = {
        "version": "1.0", "timestamp": "2026-12-01T18:16:05.568Z",
        "requestContext": {"requestId": "e4b46cbf-b738-4f1c-8880-a18cdf61200e",
                           "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:Framefarm-orchestrate:$LATEST",
                           "condition": condition, "approximateInvokeCount": 3},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": error, "errorType": "RuntimeError", "stackTrace": []},
    }
    if event is not None:
        body["requestPayload"] = event
    return json.dumps(body)


@pytest.fixture
def queue(aws):
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    return sqs, sqs.create_queue(QueueName="lost-events")["QueueUrl"]


@pytest.fixture
def manager():
    return JobManager(InMemoryJobRepository(), JobExecutor(ScriptedWorker().adapter()), clock=lambda: NOW,
                      stale_after=15.0)


def job(manager: JobManager, job_id: str, state: JobState = JobState.PENDING, *, lease_until: float = NOW - 60) -> str:
    manager.create_job(make_spec(2, job_id=job_id))
    if state is not JobState.PENDING:
        assert manager.repository.take_lease(job_id, Lease(f"lambda-sandbox:1:{job_id}", lease_until), now=NOW - 100,
                                             expected={JobState.PENDING})
    if state not in (JobState.PENDING, JobState.RUNNING):
        assert manager.repository.set_state(job_id, state, now=NOW - 90, expected={JobState.RUNNING})
    return job_id


def recover(queue, manager, *bodies: str):
    sqs, url = queue
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    handed: list[dict] = []
    recovery = recover_lost_events(sqs, url, manager, handed.append, clock=lambda: NOW)
    left = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return recovery, handed, left


def test_a_job_whose_first_event_was_lost_is_handed_back_at_once(queue, manager):
    # GIVEN a pending job whose orchestrator event failed every attempt (nothing ever ran it)
    job(manager, "never-ran")
    # WHEN the sweep reads the queue
    recovery, handed, left = recover(queue, manager, record({"job_id": "never-ran", "options": {"concurrency": 7}}))
    # THEN the job goes back to the orchestrator with its options, counted as a redelivery, and the record is gone
    assert handed == [{"job_id": "never-ran", "options": {"concurrency": 7}, "redelivery": 1}]
    assert recovery.as_dict() == {"handed_back": ["never-ran"], "failed": [], "dropped": 0}
    assert left == []


def test_a_lost_continuation_is_handed_back_as_a_take_over_and_a_lost_resume_as_a_resume(queue, manager):
    # GIVEN a running job whose runner is gone (lease run out) and whose continuation was lost,
    # and a paused job whose `framefarm resume` event was lost
    job(manager, "handed-over", JobState.RUNNING)
    job(manager, "paused", JobState.PAUSED)
    continuation = {"job_id": "handed-over", "continuation": 3, "run_id": "handover:abc", "idle": 1, "options": {}}
    resume = {"job_id": "paused", "options": {"retries": 1}, "resume": True}
    # WHEN the sweep reads the queue
    recovery, handed, left = recover(queue, manager, record(continuation), record(resume, condition="EventAgeExceeded"))
    # THEN the running job is handed back without the spent run token (the orchestrator takes it over),
    # and the paused one is resumed as asked
    assert sorted(handed, key=lambda event: event["job_id"]) == [
        {"job_id": "handed-over", "options": {}, "redelivery": 1},
        {"job_id": "paused", "options": {"retries": 1}, "redelivery": 1, "resume": True}]
    assert sorted(recovery.handed_back) == ["handed-over", "paused"] and left == []


def test_events_that_lost_nothing_are_dropped(queue, manager):
    # GIVEN lost events for a job a live runner holds, a finished job, a deleted job, a sweep's own event,
    # and a message that is no invocation record at all
    job(manager, "alive", JobState.RUNNING, lease_until=NOW + 600)
    job(manager, "done", JobState.RENDERED)
    # WHEN the sweep reads the queue
    recovery, handed, left = recover(queue, manager, record({"job_id": "alive"}), record({"job_id": "done"}),
                                     record({"job_id": "deleted"}), record({"sweep": True}), record(None),
                                     "not json", json.dumps({"hello": "world"}))
    # THEN nothing is handed back, nothing is changed, and the queue is empty
    assert handed == [] and recovery.as_dict() == {"handed_back": [], "failed": [], "dropped": 7} and left == []
    assert manager.summary("alive").state is JobState.RUNNING and manager.summary("done").state is JobState.RENDERED


def test_an_event_lost_on_every_redelivery_fails_its_job_with_the_last_error(queue, manager):
    # GIVEN a pending job whose event was already handed back the most times, and lost once more
    job(manager, "cursed")
    event = {"job_id": "cursed", "options": {}, "redelivery": MAX_REDELIVERIES}
    # WHEN the sweep reads the queue
    recovery, handed, left = recover(queue, manager, record(event, error="KeyError: 'spec_url'"))
    # THEN it is not handed back again: the job fails, saying why, and the record is gone
    assert handed == [] and recovery.failed == ["cursed"] and left == []
    status = manager.summary("cursed")
    assert status.state is JobState.FAILED
    assert status.error == (f"the orchestrator gave up on this job's event {MAX_REDELIVERIES + 1} times "
                            "(RetriesExhausted, 3 attempts the last time): KeyError: 'spec_url'")


def test_a_job_failed_for_its_lost_events_is_announced(queue):
    # GIVEN a pending job, on a manager whose EventBridge events are recorded
    published: list[tuple[str, dict]] = []
    repository = InMemoryJobRepository()
    notifier = Notifier(repository, publish=lambda kind, detail: published.append((kind, dict(detail))) or True)
    manager = JobManager(repository, JobExecutor(ScriptedWorker().adapter()), clock=lambda: NOW, stale_after=15.0,
                         notifier=notifier)
    job(manager, "cursed")
    # WHEN its event is lost once more than it may be handed back, and the sweep fails it
    event = {"job_id": "cursed", "options": {}, "redelivery": MAX_REDELIVERIES}
    recovery, _, _ = recover(queue, manager, record(event, error="KeyError: 'spec_url'"))
    assert recovery.failed == ["cursed"]
    # THEN its end is announced, as every job's end is: a Job State Change saying failed, with the error
    [(kind, detail)] = published
    assert (kind, detail["job_id"], detail["state"]) == (events.JOB_STATE_CHANGE, "cursed", "failed")
    assert detail["error"].endswith("KeyError: 'spec_url'")


def test_a_record_whose_hand_back_fails_stays_for_the_next_sweep(queue, manager):
    # GIVEN a lost event for a pending job, and an orchestrator that cannot be invoked right now
    job(manager, "unlucky")
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody=record({"job_id": "unlucky"}))

    def unreachable(event: dict) -> None:
        raise ConnectionError("endpoint unreachable")

    # WHEN the sweep reads the queue
    recovery = recover_lost_events(sqs, url, manager, unreachable, clock=lambda: NOW)
    # THEN nothing was handed back and the record is still in the queue (visible again after its timeout)
    assert recovery.handed_back == []
    # (hidden for its visibility timeout, not deleted)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_a_sweep_reads_a_bounded_number_of_records(queue, manager):
    # GIVEN 25 lost sweep events
    sqs, url = queue
    for _ in range(25):
        sqs.send_message(QueueUrl=url, MessageBody=record({"sweep": True}))
    # WHEN a sweep may read 12
    recovery = recover_lost_events(sqs, url, manager, lambda event: None, clock=lambda: NOW, limit=12)
    # THEN it handles 12 and leaves the rest for the next one
    assert recovery.dropped == 12
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "13"


@pytest.mark.parametrize(("body", "reason"), [
    ("{", "not JSON"),
    ("[1, 2]", "no requestContext.condition"),
    (json.dumps({"requestContext": {"requestId": "x"}}), "no requestContext.condition"),
])
def test_unreadable_records_say_why(body, reason):
    with pytest.raises(UnreadableRecord, match=reason):
        LostEvent.parse(body)
