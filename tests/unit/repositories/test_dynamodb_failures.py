"""How the DynamoDB store answers DynamoDB's refusals: each cancellation reason of a recording
transaction, and unprocessed BatchWriteItem items. moto never produces these, so botocore's Stubber
plays DynamoDB's side."""

from __future__ import annotations

import dataclasses

import pytest
from botocore.stub import Stubber

from framefarm.errors import FramefarmError, JobNotFoundError
from framefarm.repositories.dynamodb import (
    CONFLICT_BACKOFF,
    UNPROCESSED_BACKOFF,
    UNPROCESSED_TRIES,
    DynamoDBJobRepository,
)
from framefarm.status import ChunkAttempt, ChunkRecord, ChunkState, JobRecord
from tests.helpers import make_spec, stubbed_client


@pytest.fixture
def stubbed(aws_credentials):
    with stubbed_client("dynamodb") as pair:
        yield pair


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def repo(stubbed, sleeps) -> DynamoDBJobRepository:
    return DynamoDBJobRepository("jobs", client=stubbed[0], sleep=sleeps.append, conflict_tries=4)


def cancel(stubber: Stubber, chunk_item: str, job_item: str, message: str = "") -> None:
    """Queue one cancelled transaction whose reasons, in item order, are ``chunk_item`` and ``job_item``."""
    reasons = [{"Code": code, **({"Message": message} if code not in ("None", "ConditionalCheckFailed") else {})}
               for code in (chunk_item, job_item)]
    stubber.add_client_error(
        "transact_write_items", service_error_code="TransactionCanceledException", http_status_code=400,
        service_message=f"Transaction cancelled, please refer cancellation reasons for specific reasons "
                        f"[{', '.join(r['Code'] for r in reasons)}]",
        modeled_fields={"CancellationReasons": reasons})


def completed(chunk_id: int = 3) -> ChunkAttempt:
    return ChunkAttempt(chunk_id=chunk_id, attempt=1, state=ChunkState.COMPLETED, duration_ms=10.0, finished_at=5.0)


@pytest.mark.parametrize(("chunk_item", "job_item", "shown"), [
    ("ValidationError", "None", "chunk item: ValidationError: Item size has exceeded the maximum allowed size"),
    ("None", "ItemCollectionSizeLimitExceeded", "job item: ItemCollectionSizeLimitExceeded: Item size has"),
])
def test_a_refusal_that_retrying_cannot_fix_is_raised_at_once(repo, stubbed, sleeps, chunk_item, job_item, shown):
    # GIVEN DynamoDB cancels the transaction for a reason that is not a conflict or a throttle
    cancel(stubbed[1], chunk_item, job_item, "Item size has exceeded the maximum allowed size")
    # WHEN an attempt is recorded THEN one line names the job, the chunk, the item and the reason, with no retry
    with pytest.raises(FramefarmError) as raised:
        repo.record_attempt("j", completed(3))
    message = str(raised.value)
    assert message.startswith("job j: chunk 3 not recorded: DynamoDB refused it (") and shown in message
    assert "\n" not in message and sleeps == []


def test_a_failed_condition_is_told_apart_by_the_item_it_failed_on(repo, stubbed, sleeps):
    # GIVEN the chunk item's condition fails (the attempt, or the chunk's completion, is recorded)
    cancel(stubbed[1], "ConditionalCheckFailed", "None")
    # THEN the attempt counts as already recorded
    assert repo.record_attempt("j", completed(3)) is False
    # GIVEN the job item's condition fails (the job was deleted while it ran)
    cancel(stubbed[1], "None", "ConditionalCheckFailed")
    # THEN that is not mistaken for "already recorded": the caller hears the job is gone
    with pytest.raises(JobNotFoundError, match=r"^job j: chunk 3 not recorded: job j is no longer in the table"):
        repo.record_attempt("j", completed(3))
    assert sleeps == []


def test_conflicts_and_throttles_are_retried_with_backoff_up_to_a_bound(repo, stubbed, sleeps):
    # GIVEN a conflict, then each kind of throttle, then success
    cancel(stubbed[1], "None", "TransactionConflict")
    cancel(stubbed[1], "ThrottlingError", "None", "Throughput exceeds the current capacity")
    cancel(stubbed[1], "None", "ProvisionedThroughputExceeded", "The level of configured provisioned throughput")
    stubbed[1].add_response("transact_write_items", {})
    # WHEN an attempt is recorded THEN it lands after three backed-off retries
    assert repo.record_attempt("j", completed(3)) is True
    assert len(sleeps) == 3
    ceilings = [min(CONFLICT_BACKOFF.maximum, CONFLICT_BACKOFF.initial * 2 ** n) for n in range(3)]
    assert all(ceiling / 2 <= s <= ceiling for ceiling, s in zip(ceilings, sleeps, strict=True))
    # GIVEN the table stays throttled
    for _ in range(4):
        cancel(stubbed[1], "ThrottlingError", "None", "Throughput exceeds the current capacity")
    # THEN after conflict_tries transactions the error says how often, and on which item
    with pytest.raises(FramefarmError, match=r"^job j: chunk 3 not recorded after 4 tries, each cancelled "
                                             r"\(chunk item: ThrottlingError\); the table is busy or throttled"):
        repo.record_attempt("j", completed(3))
    assert len(sleeps) == 3 + 3


def test_unprocessed_batch_items_are_retried_a_bounded_number_of_times(repo, stubbed, sleeps):
    # GIVEN a job with 30 chunk records to write (two batches), and DynamoDB leaving 5 of the first
    # batch unprocessed however often they are sent again
    records = [ChunkRecord(chunk_id=i, state=ChunkState.COMPLETED, attempts=1) for i in range(30)]
    status = JobRecord.new(make_spec(30, job_id="j"), now=1.0).model_copy(update={"chunks": records})
    stubber = stubbed[1]
    stubber.add_response("get_item", {})
    stubber.add_response("put_item", {})
    left = {"jobs": [{"PutRequest": {"Item": {"PK": {"S": "JOB#j"}, "SK": {"S": f"CHUNK#{i:05d}"}}}}
                     for i in range(5)]}
    for _ in range(UNPROCESSED_TRIES):
        stubber.add_response("batch_write_item", {"UnprocessedItems": left})
    # WHEN the job is saved THEN it stops after UNPROCESSED_TRIES calls, naming how many writes are not done
    with pytest.raises(FramefarmError, match=rf"^job j: 10 of 30 item writes not done: DynamoDB returned them "
                                             rf"unprocessed {UNPROCESSED_TRIES} times \(throttled\); try again$"):
        repo.save(status)
    assert sleeps == [UNPROCESSED_BACKOFF.delay(n) for n in range(1, UNPROCESSED_TRIES)]


def test_a_slot_given_back_during_a_conflict_on_the_counter_is_given_back_on_the_next_try(repo, stubbed, sleeps):
    # GIVEN DynamoDB cancels the first give-back for a conflict with another transaction on the counter
    cancel(stubbed[1], "TransactionConflict", "None")
    stubbed[1].add_response("transact_write_items", {})
    # WHEN a run gives a slot back THEN it is written on the second try, after one backoff
    repo.give_slot("run-1", wants=3)
    stubbed[1].assert_no_pending_responses()
    longest = dataclasses.replace(CONFLICT_BACKOFF, jitter=lambda: 1.0).delay(1)  # the first backoff at most
    assert len(sleeps) == 1 and 0 < sleeps[0] <= longest


def test_a_slot_given_back_by_a_holder_already_reclaimed_is_not_tried_again(repo, stubbed, sleeps):
    # GIVEN the holder's item is gone (its lease ran out and another runner reclaimed its slots)
    cancel(stubbed[1], "ConditionalCheckFailed", "None")
    # WHEN the run gives a slot back THEN nothing more is sent: its slots are back in the budget already
    repo.give_slot("run-1", wants=0)
    stubbed[1].assert_no_pending_responses()
    assert sleeps == []
