"""What only the DynamoDB store has: item sizes, spec placement, TTL, S3 cleanup, conflicts."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from framefarm import FramefarmError, JobState, JobStatus
from framefarm.repositories.dynamodb import (
    INLINE_SPEC_LIMIT,
    TTL_ATTRIBUTE,
    DynamoDBJobRepository,
    chunk_sk,
    job_pk,
)
from framefarm.status import TAIL_CHARS, ChunkAttempt, ChunkState
from framefarm.storage.keys import spec_key
from framefarm.storage.s3 import S3Storage
from tests.helpers import make_spec


@pytest.fixture
def storage(bucket, s3_client):
    return S3Storage(bucket, client=s3_client)


@pytest.fixture
def repo(table, dynamodb_client, storage):
    return DynamoDBJobRepository(table, client=dynamodb_client, storage=storage, sleep=lambda s: None,
                                 clock=lambda: 1_000.0, ttl_days=7)


def item_bytes(client, table: str, job_id: str, sort_key: str) -> int:
    item = client.get_item(TableName=table, Key={"PK": {"S": job_pk(job_id)}, "SK": {"S": sort_key}})["Item"]
    return len(json.dumps(item, default=str))


def attempt(chunk_id: int, tail: str = "") -> ChunkAttempt:
    return ChunkAttempt(chunk_id=chunk_id, attempt=1, state=ChunkState.COMPLETED, duration_ms=1234.5,
                        billed_duration_ms=1300, cost_usd=0.000123, stdout_tail=tail, stderr_tail=tail,
                        finished_at=5.0)


def test_item_sizes_stay_flat_whatever_the_number_of_chunks(repo, table, dynamodb_client):
    # GIVEN a 200-chunk job
    repo.save(JobStatus.new(make_spec(200, job_id="big"), now=1.0))
    meta_before = item_bytes(dynamodb_client, table, "big", "META")
    # WHEN every chunk is recorded with full-size log tails
    for chunk_id in range(200):
        repo.record_attempt("big", attempt(chunk_id, "x" * TAIL_CHARS))
    # THEN the job item grew only by its counters' digits, and each chunk item is bounded by its tails
    assert item_bytes(dynamodb_client, table, "big", "META") - meta_before < 100
    sizes = {item_bytes(dynamodb_client, table, "big", chunk_sk(i)) for i in (0, 100, 199)}
    assert max(sizes) < 2 * TAIL_CHARS + 2_000
    assert repo.require("big").completed_chunks == 200


def test_creating_a_job_writes_one_item_however_many_chunks(repo, table, dynamodb_client):
    repo.save(JobStatus.new(make_spec(2000, frames_per_chunk=1, job_id="wide"), now=1.0))
    assert dynamodb_client.scan(TableName=table, Select="COUNT")["Count"] == 1
    assert repo.chunk_states("wide") == {}
    assert len(repo.require("wide").chunks) == 2000


def test_without_storage_the_spec_rides_inline_up_to_the_item_limit(table, dynamodb_client):
    import secrets

    from framefarm.errors import FramefarmError

    repo = DynamoDBJobRepository(table, client=dynamodb_client)
    repo.save(JobStatus.new(make_spec(50, job_id="small"), now=1.0))
    assert DynamoDBJobRepository(table, client=dynamodb_client).require("small").spec.id == "small"
    spec = make_spec(3000, frames_per_chunk=1, job_id="huge")
    spec = spec.model_copy(update={"chunks": [c.model_copy(update={"command": ["r", secrets.token_urlsafe(300)]})
                                              for c in spec.chunks]})
    with pytest.raises(FramefarmError, match="too large for a DynamoDB item; give the repository a storage"):
        repo.save(JobStatus.new(spec, now=1.0))


def test_with_storage_the_spec_lives_there_whatever_its_size(repo, storage, table, dynamodb_client):
    # GIVEN a large spec (commands that do not compress)
    import secrets

    spec = make_spec(3000, frames_per_chunk=1, job_id="huge",
                     command="render {start_frame} " + secrets.token_hex(80))
    spec = spec.model_copy(update={"chunks": [c.model_copy(update={"command": ["r", secrets.token_urlsafe(300)]})
                                              for c in spec.chunks]})
    repo.save(JobStatus.new(spec, now=1.0))
    # THEN the item points at storage, stays small, and the spec reads back whole
    assert storage.exists(spec_key("huge"))
    assert item_bytes(dynamodb_client, table, "huge", "META") < INLINE_SPEC_LIMIT
    fresh = DynamoDBJobRepository(table, client=dynamodb_client, storage=storage)
    assert fresh.require("huge").spec == spec


def test_every_item_carries_the_ttl_attribute(repo, table, dynamodb_client):
    repo.save(JobStatus.new(make_spec(2, job_id="t"), now=100.0))
    repo.record_attempt("t", attempt(0))
    items = dynamodb_client.scan(TableName=table)["Items"]
    assert {item[TTL_ATTRIBUTE]["N"] for item in items} == {str(100 + 7 * 86_400), str(1_000 + 7 * 86_400)}


def test_delete_removes_the_jobs_s3_objects_too(repo, storage):
    repo.save(JobStatus.new(make_spec(2, job_id="gone"), now=1.0))
    storage.put_bytes("jobs/gone/chunks/00000.mp4", b"video")
    storage.put_bytes("jobs/kept/chunks/00000.mp4", b"other job")
    assert repo.delete("gone") is True
    assert storage.list("jobs/gone/") == [] and storage.exists("jobs/kept/chunks/00000.mp4")


def test_transaction_conflicts_are_retried_and_count_once(table, dynamodb_client, storage):
    # GIVEN a client whose first two transactions conflict, as concurrent writers to one job item do
    class Conflicting:
        def __init__(self, client):
            self._client, self.conflicts = client, 2

        def __getattr__(self, name):
            return getattr(self._client, name)

        def transact_write_items(self, **kwargs):
            if self.conflicts:
                self.conflicts -= 1
                raise self._client.exceptions.TransactionCanceledException(
                    {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                     "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}]},
                    "TransactWriteItems")
            return self._client.transact_write_items(**kwargs)

    client = Conflicting(dynamodb_client)
    repo = DynamoDBJobRepository(table, client=client, storage=storage, sleep=lambda s: None)
    repo.save(JobStatus.new(make_spec(2, job_id="c"), now=1.0))
    # WHEN a chunk is recorded THEN it lands once after the retries
    assert repo.record_attempt("c", attempt(1)) is True
    assert client.conflicts == 0 and repo.require("c").completed_chunks == 1


def test_reopening_is_one_transaction_so_at_most_99_chunks_at_once(repo):
    # GIVEN a completed job of 100 chunks
    repo.save(JobStatus.new(make_spec(100, job_id="wide"), now=1.0))
    for chunk_id in range(100):
        repo.record_attempt("wide", attempt(chunk_id))
    repo.set_state("wide", JobState.COMPLETED, now=2.0)
    # WHEN all 100 are reopened THEN it is refused in one line and nothing changed
    with pytest.raises(FramefarmError, match=r"^job wide: 100 completed chunks to reopen; a DynamoDB transaction "
                                             r"holds 99 at most, so retry fewer at once$"):
        repo.reopen_chunks("wide", range(100), state=JobState.PAUSED, now=3.0, expected={JobState.COMPLETED})
    job = repo.require("wide")
    assert job.completed_chunks == 100 and all(record.state is ChunkState.COMPLETED for record in job.chunks)
    # AND 99 of them go in one transaction
    assert repo.reopen_chunks("wide", range(99), state=JobState.PAUSED, now=3.0,
                              expected={JobState.COMPLETED}) == list(range(99))
    assert repo.get("wide", chunks=False).completed_chunks == 1


def test_missing_table_is_a_clear_error(dynamodb_client):
    repo = DynamoDBJobRepository("no-such-table", client=dynamodb_client)
    with pytest.raises(ClientError, match=r"ResourceNotFoundException|not found"):
        repo.get("x")


def test_a_manager_over_this_store_clears_a_jobs_objects_once(repo, storage):
    from framefarm import CallableWorkerAdapter, JobExecutor, JobManager

    calls = []
    original = storage.delete_prefix
    storage.delete_prefix = lambda prefix: calls.append(prefix) or original(prefix)
    manager = JobManager(repo, JobExecutor(CallableWorkerAdapter(lambda job: None)), storage)
    manager.create_job(make_spec(2, job_id="once"))
    storage.put_bytes("jobs/once/chunks/00000.mp4", b"video")
    assert manager.delete_job("once") is True
    assert calls == ["jobs/once/"] and storage.list("jobs/once/") == []


def test_tiny_costs_are_written_in_positional_notation(repo):
    # GIVEN a one-millisecond attempt whose cost Python prints as 3e-07
    # (unpatched moto stores the sum as "3E-7", then fails to add to it; found by the fault matrix)
    repo.save(JobStatus.new(make_spec(2, job_id="tiny"), now=1.0))
    small = ChunkAttempt(chunk_id=0, attempt=1, state=ChunkState.FAILED, duration_ms=1.0, billed_duration_ms=1,
                         cost_usd=3e-07, finished_at=5.0)
    # WHEN it is recorded, THEN it lands and adds up exactly
    assert repo.record_attempt("tiny", small) is True
    job = repo.require("tiny")
    assert job.metrics.cost_usd == 3e-07 and job.chunk(0).cost_usd == 3e-07
