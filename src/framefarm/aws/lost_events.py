"""Lost events: orchestrator events Lambda gave up on, read back from their queue and handed back.

The orchestrator's asynchronous invocations have an on-failure destination, an SQS queue the stack
creates (``infra/components/lost_events.py``; ``FRAMEFARM_LOST_EVENTS_QUEUE`` names it). When an
event has failed every attempt (condition ``RetriesExhausted``) or waited too long to run
(``EventAgeExceeded``), Lambda puts an invocation record there::

    {"version": "1.0", "timestamp": "...",
     "requestContext": {"requestId": "...", "functionArn": "...", "condition": "RetriesExhausted",
                        "approximateInvokeCount": 3},
     "requestPayload": {"job_id": "...", ...},                 # the event itself
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
     "responsePayload": {"errorMessage": "...", "errorType": "..."}}

The sweep reads the queue (``recover_lost_events``) and, for each record, at once:

- a job still ``pending`` (its first event never ran), or ``running`` with nobody holding its lease
  (a continuation or a retry that died), or stopped when the lost event asked to ``resume`` it, is
  handed back to the orchestrator: the event's job and options, counted as one more redelivery;
- a job whose event was already handed back ``MAX_REDELIVERIES`` times and lost again is not handed
  back: a handler that fails on every delivery is not run every sweep for ever. A job left pending
  or running fails, with the orchestrator's last error, in one conditional write (only while nobody
  holds it); a stopped one stays as it is;
- otherwise nothing is lost (the job ended, a live runner has it, it is gone, or the event was a
  sweep's own) and the record is dropped.

A record is deleted only after it was acted on; one whose hand-back failed reappears after its
visibility timeout, for the next sweep. An unreadable record is logged whole, then deleted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from framefarm.manager import RUNNABLE, JobManager
from framefarm.status import JobState

logger = logging.getLogger(__name__)

MAX_REDELIVERIES = 2  # hand-backs of one job's event before the job fails instead
RECEIVE_BATCH = 10  # SQS's most per ReceiveMessage
MAX_RECORDS = 100  # records one sweep handles at most; the rest wait for the next
VISIBILITY_TIMEOUT = 60  # seconds a received record stays hidden while it is handled
REDELIVERY = "redelivery"  # the event field counting hand-backs


class UnreadableRecord(ValueError):
    """A queue message that is not a Lambda invocation record."""


@dataclass(frozen=True)
class LostEvent:
    """What one invocation record says: the event, why Lambda gave up on it, and the last error."""

    event: dict[str, Any] | None  # None when the record carries no event (requestPayload left out)
    condition: str
    attempts: int
    error: str

    @classmethod
    def parse(cls, body: str) -> LostEvent:
        """The record in a message body; UnreadableRecord naming what is wrong."""
        try:
            record = json.loads(body)
        except json.JSONDecodeError as exc:
            raise UnreadableRecord(f"not JSON ({exc.msg} at column {exc.colno})") from None
        context = record.get("requestContext") if isinstance(record, dict) else None
        if not isinstance(context, dict) or not isinstance(context.get("condition"), str):
            raise UnreadableRecord("no requestContext.condition: not a Lambda invocation record")
        payload = record.get("requestPayload")
        response = record.get("responsePayload")
        error = response.get("errorMessage") if isinstance(response, dict) else None
        attempts = context.get("approximateInvokeCount")
        return cls(event=payload if isinstance(payload, dict) else None, condition=context["condition"],
                   attempts=attempts if isinstance(attempts, int) else 0,
                   error=str(error) if error else context["condition"])

    @property
    def job_id(self) -> str | None:
        job_id = (self.event or {}).get("job_id")
        return job_id if isinstance(job_id, str) else None

    @property
    def redeliveries(self) -> int:
        count = (self.event or {}).get(REDELIVERY, 0)
        return count if isinstance(count, int) else 0

    @property
    def asks_to_resume(self) -> bool:
        return (self.event or {}).get("resume") is True

    def hand_back_event(self) -> dict[str, Any]:
        """The event that hands the job back: its job and options, without a continuation's run token
        (the orchestrator takes a dead run over once its lease has run out)."""
        event = self.event or {}
        options = event.get("options")
        handed: dict[str, Any] = {"job_id": self.job_id, "options": options if isinstance(options, dict) else {},
                                  REDELIVERY: self.redeliveries + 1}
        if self.asks_to_resume:
            handed["resume"] = True
        return handed


@dataclass
class Recovery:
    """What a sweep did with the lost events it read."""

    handed_back: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"handed_back": self.handed_back, "failed": self.failed, "dropped": self.dropped}


def recover_lost_events(sqs: Any, queue_url: str, manager: JobManager, hand_back: Callable[[dict[str, Any]], None],
                        *, clock: Callable[[], float] = time.time, limit: int = MAX_RECORDS) -> Recovery:
    """Read up to ``limit`` records from ``queue_url`` and act on each (see the module's docstring).
    ``hand_back(event)`` sends an event to the orchestrator."""
    recovery = Recovery()
    seen = 0
    while seen < limit:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=min(RECEIVE_BATCH, limit - seen),
                                       WaitTimeSeconds=0, VisibilityTimeout=VISIBILITY_TIMEOUT).get("Messages", [])
        if not messages:
            break
        seen += len(messages)
        for message in messages:
            try:
                _act(message["Body"], manager, hand_back, recovery, clock)
            except Exception:  # kept in the queue: it reappears for the next sweep
                logger.exception("lost event not handled; kept for the next sweep: %s", message["Body"][:500])
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return recovery


def _act(body: str, manager: JobManager, hand_back: Callable[[dict[str, Any]], None], recovery: Recovery,
         clock: Callable[[], float]) -> None:
    try:
        lost = LostEvent.parse(body)
    except UnreadableRecord as exc:
        logger.error("unreadable lost event (%s), dropped: %s", exc, body)
        recovery.dropped += 1
        return
    job_id = lost.job_id
    status = manager.repository.get(job_id, chunks=False) if job_id is not None else None
    if job_id is None or status is None:  # a sweep's own event (the schedule sweeps again), or a deleted job
        logger.info("lost event with no job to hand back, dropped: %s", json.dumps(lost.event))
        recovery.dropped += 1
        return
    nobody_runs_it = status.state is JobState.PENDING or (status.state is JobState.RUNNING
                                                           and manager.is_stale(status))
    asked_to_resume = lost.asks_to_resume and status.state in RUNNABLE
    if not (nobody_runs_it or asked_to_resume):
        logger.info("lost event for job %s, which is %s and needs nothing: dropped", job_id, status.state.value)
        recovery.dropped += 1
    elif lost.redeliveries >= MAX_REDELIVERIES:
        error = (f"the orchestrator gave up on this job's event {lost.redeliveries + 1} times "
                 f"({lost.condition}, {lost.attempts} attempts the last time): {lost.error}")
        logger.error("job %s: %s", job_id, error)
        now = clock()
        # a stopped job whose resume was lost stays as it was; one left pending or running fails, saying why
        if nobody_runs_it and manager.repository.set_state(job_id, JobState.FAILED, now=now, error=error,
                                                           expected={JobState.PENDING, JobState.RUNNING}, free_at=now):
            recovery.failed.append(job_id)
            manager.announce(job_id)  # its webhook and events hear of this end as of any other
        else:
            recovery.dropped += 1
    else:
        hand_back(lost.hand_back_event())
        recovery.handed_back.append(job_id)
        logger.info("job %s: lost event (%s: %s) handed back", job_id, lost.condition, lost.error)
