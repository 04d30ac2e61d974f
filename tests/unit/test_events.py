"""EventBridge events through moto: what the orchestrator puts, read back through a rule whose
target is an SQS queue; the README's rule for failed jobs matches a failed job's event only."""

from __future__ import annotations

import json

import boto3
import pytest

from framefarm import JobExecutor, JobManager, JobState, SqliteJobRepository, events
from framefarm.options import ExecutionOptions
from tests.helpers import ScriptedWorker, make_spec, retry_at_once

# The README's example rule (proposed in the notify report): failed jobs to an SNS topic.
FAILED_JOBS_PATTERN = {"source": ["framefarm"], "detail-type": ["Job State Change"], "detail": {"state": ["failed"]}}


@pytest.fixture
def bus_to_queue(aws, monkeypatch):
    """A rule on the default bus matching every framefarm event, delivering to a queue; returns a reader."""
    monkeypatch.setenv("FRAMEFARM_EVENT_BUS", "default")

    def route(pattern: dict) -> callable:
        sqs, bridge = boto3.client("sqs"), boto3.client("events")
        queue = sqs.create_queue(QueueName=f"q{len(sqs.list_queues().get('QueueUrls', []))}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        name = f"rule-{arn.rsplit(':', 1)[1]}"
        bridge.put_rule(Name=name, EventPattern=json.dumps(pattern))
        bridge.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])

        def read() -> list[dict]:
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            return [json.loads(message["Body"]) for message in messages]
        return read

    return route


def test_publish_puts_a_framefarm_event_on_the_bus(bus_to_queue):
    # GIVEN a rule routing framefarm's events to a queue
    read = bus_to_queue({"source": ["framefarm"]})
    # WHEN an event is published (as the budget gate does)
    assert events.publish(events.BUDGET_REACHED, {"job_id": "job-1", "max_cost_usd": 5.0, "cost_usd": 5.02})
    # THEN it arrives with framefarm's source, its detail-type and detail
    [event] = read()
    assert (event["source"], event["detail-type"]) == ("framefarm", "Budget Reached")
    assert event["detail"] == {"job_id": "job-1", "max_cost_usd": 5.0, "cost_usd": 5.02}


def test_publish_is_a_no_op_where_no_bus_is_configured(monkeypatch):
    monkeypatch.delenv("FRAMEFARM_EVENT_BUS", raising=False)

    class NoClient:
        def __getattr__(self, name):
            raise AssertionError("no call may reach EventBridge")

    assert events.publish(events.JOB_STATE_CHANGE, {"job_id": "job-1"}, client=NoClient()) is False
    with pytest.raises(ValueError, match="expected one of"):
        events.publish("Job Exploded", {"job_id": "job-1"})


def test_a_bus_that_refuses_costs_only_the_event(aws, monkeypatch):
    monkeypatch.setenv("FRAMEFARM_EVENT_BUS", "no-such-bus")

    class Refusing:
        def put_events(self, **request):
            raise RuntimeError("AccessDeniedException: not allowed")

    assert events.publish(events.JOB_STATE_CHANGE, {"job_id": "job-1"}, client=Refusing()) is False


def test_a_failed_job_sends_chunk_failed_then_job_state_change_and_the_readme_rule_matches_it(
        bus_to_queue, tmp_path, monkeypatch):
    secret = "whsec-events-0123456789abcdef"
    monkeypatch.setenv("FRAMEFARM_WEBHOOK_SECRET", secret)
    # GIVEN every framefarm event routed to one queue, and the README's failed-jobs rule to another
    everything, failed_only = bus_to_queue({"source": ["framefarm"]}), bus_to_queue(FAILED_JOBS_PATTERN)
    store = SqliteJobRepository(tmp_path / "jobs.db")
    manager = JobManager(store, JobExecutor(ScriptedWorker(fail={2: 99}).adapter()))
    # WHEN a job whose chunk 2 always fails runs, then a second one completes
    manager.submit_job(make_spec(3, job_id="bad"), ExecutionOptions(merge=False, retry=retry_at_once(1)))
    assert manager.wait("bad", timeout=60).state is JobState.FAILED
    manager.submit_job(make_spec(2, job_id="good"), ExecutionOptions(merge=False))
    assert manager.wait("good", timeout=60).state is JobState.RENDERED
    # THEN the bus got the failed chunk, the failed job and the rendered one, with their facts
    got = everything()
    assert [(e["detail-type"], e["detail"]["job_id"]) for e in got] == [
        ("Chunk Failed", "bad"), ("Job State Change", "bad"), ("Job State Change", "good")]
    assert got[0]["detail"]["chunk_id"] == 2 and got[0]["detail"]["attempts"] == 2
    assert got[1]["detail"]["state"] == "failed" and got[1]["detail"]["failed_attempts"] == 2
    # AND the README's rule caught the failed job only
    assert [(e["detail-type"], e["detail"]["job_id"]) for e in failed_only()] == [("Job State Change", "bad")]
    # AND no event carries the webhook secret
    assert secret not in json.dumps(got)
    store.close()


def test_the_orchestrator_puts_budget_reached_when_a_job_hits_its_cap(bus_to_queue):
    from framefarm.aws.handlers import _LogAttempts

    # GIVEN a rule routing framefarm's budget events to a queue
    read = bus_to_queue({"source": ["framefarm"], "detail-type": ["Budget Reached"]})
    # WHEN the orchestrator's run hears that its job reached its cap
    _LogAttempts("job-7").budget_reached(0.51, 0.5)
    # THEN a Budget Reached event names the job, what it spent and its cap
    [event] = read()
    assert event["detail"] == {"job_id": "job-7", "cost_usd": 0.51, "max_cost_usd": 0.5}
