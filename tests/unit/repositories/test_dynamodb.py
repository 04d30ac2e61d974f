"""What only the DynamoDB store has: item sizes, spec placement, TTL, S3 cleanup, conflicts."""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from framefarm import FramefarmError, JobRecord, JobState
from framefarm.failures import FailureKind
from framefarm.lease import Lease
from framefarm.repositories.dynamodb import (
    GSI_NAME,
    GSI_PK,
    GSI_SK,
    INLINE_SPEC_LIMIT,
    ITEM_ERROR_CHARS,
    ITEM_TAIL_CHARS,
    LISTED,
    PK,
    SK,
    TTL_ATTRIBUTE,
    DynamoDBJobRepository,
    chunk_sk,
    item_size,
    job_pk,
)
from framefarm.status import TAIL_CHARS, TAIL_MARK, ChunkAttempt, ChunkState, is_cut, tail
from framefarm.storage.keys import log_key, spec_key
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
    # GIVEN a 100-chunk job (moto copies its table on every transaction: keep it small)
    repo.save(JobRecord.new(make_spec(100, job_id="big"), now=1.0))
    meta_before = item_bytes(dynamodb_client, table, "big", "META")
    # WHEN every chunk is recorded with full-size log tails
    for chunk_id in range(100):
        repo.record_attempt("big", attempt(chunk_id, "x" * TAIL_CHARS))
    # THEN the job item grew only by its counters' digits, and each chunk item is bounded by its tails
    assert item_bytes(dynamodb_client, table, "big", "META") - meta_before < 100
    sizes = {item_bytes(dynamodb_client, table, "big", chunk_sk(i)) for i in (0, 50, 99)}
    assert max(sizes) < 2 * ITEM_TAIL_CHARS + 2_000
    assert repo.require("big").completed_chunks == 100


def test_a_chunk_item_stays_under_2_kb_so_recording_costs_4_write_units(repo, table, dynamodb_client):
    # GIVEN a failed attempt with everything at its largest: a 128-character job id, full 8 KB tails
    # of multi-line logs, a long error, the longest failure kind, a request id and an S3 output URL
    job_id = "j" * 128
    repo.save(JobRecord.new(make_spec(2, job_id=job_id), now=1.0))
    log = "".join(f"frame={i:5d} fps=24 q=28.0 size=  1024kB time=00:00:{i % 60:02d}.00 bitrate=1234.5kbits/s\n"
                  for i in range(200))
    repo.record_attempt(job_id, ChunkAttempt(
        chunk_id=1, attempt=3, state=ChunkState.FAILED, duration_ms=123456.789, billed_duration_ms=123457,
        memory_mb=10240, max_memory_used_mb=10240, init_duration_ms=1234.56, request_id=str(uuid.uuid4()),
        cost_usd=0.0123456789, throttles=12, stdout_tail=tail(log), stderr_tail=tail(log), error="E" * 5000,
        kind=FailureKind.RESPONSE_TOO_LARGE, output=f"s3://framefarm-artifacts-123456789012/jobs/{job_id}/chunks/00001.mp4", started_at=1.7e9 + 0.123,
        finished_at=1.7e9 + 123.456))
    # THEN its item, measured by DynamoDB's size rules, is at most 2 KB (2 x 2 write units in a transaction)
    item = dynamodb_client.get_item(TableName=table, Key={"PK": {"S": job_pk(job_id)}, "SK": {"S": chunk_sk(1)}})
    assert item_size(item["Item"]) <= 2048
    # AND the record keeps each log's last lines, marked as cut, the error's start and the kind
    record = repo.require(job_id).chunk(1)
    assert record.kind is FailureKind.RESPONSE_TOO_LARGE
    assert record.stdout_tail == tail(log, ITEM_TAIL_CHARS) and is_cut(record.stderr_tail, repo.tail_chars)
    assert record.error == "E" * (ITEM_ERROR_CHARS - 1) + TAIL_MARK


def test_logs_longer_than_a_chunk_items_tail_are_kept_whole_in_storage(repo, storage, table, bucket, capsys):
    # GIVEN a chunk whose log is longer than a DynamoDB chunk item keeps, but shorter than TAIL_CHARS
    from framefarm import JobExecutor, JobManager
    from framefarm.cli import main
    from tests.helpers import ScriptedWorker

    log = "".join(f"line {i:04d}\n" for i in range(200))
    assert ITEM_TAIL_CHARS < len(log) < TAIL_CHARS
    manager = JobManager(repo, JobExecutor(ScriptedWorker(stdout=lambda chunk_id: log).adapter()), storage)
    manager.create_job(make_spec(1, job_id="chatty"))
    # WHEN it runs
    manager.run_job("chatty")
    # THEN the item keeps the log's end, cut, and storage keeps all of it
    assert repo.require("chatty").chunk(0).stdout_tail == tail(log, ITEM_TAIL_CHARS)
    assert storage.get_text(log_key("chatty", 0, 1, "stdout")) == log
    # AND `framefarm logs` shows it whole
    assert main(["logs", "chatty", "--table", table, "--bucket", bucket]) == 0
    shown = capsys.readouterr().out
    assert "line 0000" in shown and "line 0199" in shown


def test_creating_a_job_writes_one_item_however_many_chunks(repo, table, dynamodb_client):
    repo.save(JobRecord.new(make_spec(2000, frames_per_chunk=1, job_id="wide"), now=1.0))
    assert dynamodb_client.scan(TableName=table, Select="COUNT")["Count"] == 1
    assert repo.chunk_states("wide") == {}
    assert len(repo.require("wide").chunks) == 2000


def test_without_storage_the_spec_rides_inline_up_to_the_item_limit(table, dynamodb_client):
    import secrets

    from framefarm.errors import FramefarmError

    repo = DynamoDBJobRepository(table, client=dynamodb_client)
    repo.save(JobRecord.new(make_spec(50, job_id="small"), now=1.0))
    assert DynamoDBJobRepository(table, client=dynamodb_client).require("small").spec.id == "small"
    spec = make_spec(3000, frames_per_chunk=1, job_id="huge")
    spec = spec.model_copy(update={"chunks": [c.model_copy(update={"command": ["r", secrets.token_urlsafe(300)]})
                                              for c in spec.chunks]})
    with pytest.raises(FramefarmError, match="too large for a DynamoDB item; give the repository a storage"):
        repo.save(JobRecord.new(spec, now=1.0))


def test_with_storage_the_spec_lives_there_whatever_its_size(repo, storage, table, dynamodb_client):
    # GIVEN a large spec (commands that do not compress)
    import secrets

    spec = make_spec(3000, frames_per_chunk=1, job_id="huge",
                     command="render {start_frame} " + secrets.token_hex(80))
    spec = spec.model_copy(update={"chunks": [c.model_copy(update={"command": ["r", secrets.token_urlsafe(300)]})
                                              for c in spec.chunks]})
    repo.save(JobRecord.new(spec, now=1.0))
    # THEN the item points at storage, stays small, and the spec reads back whole
    assert storage.exists(spec_key("huge"))
    assert item_bytes(dynamodb_client, table, "huge", "META") < INLINE_SPEC_LIMIT
    fresh = DynamoDBJobRepository(table, client=dynamodb_client, storage=storage)
    assert fresh.require("huge").spec == spec


def test_every_item_carries_the_ttl_attribute(repo, table, dynamodb_client):
    repo.save(JobRecord.new(make_spec(2, job_id="t"), now=100.0))
    repo.record_attempt("t", attempt(0))
    items = dynamodb_client.scan(TableName=table)["Items"]
    assert {item[TTL_ATTRIBUTE]["N"] for item in items} == {str(100 + 7 * 86_400), str(1_000 + 7 * 86_400)}


def test_delete_removes_the_jobs_s3_objects_too(repo, storage):
    repo.save(JobRecord.new(make_spec(2, job_id="gone"), now=1.0))
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
    repo.save(JobRecord.new(make_spec(2, job_id="c"), now=1.0))
    # WHEN a chunk is recorded THEN it lands once after the retries
    assert repo.record_attempt("c", attempt(1)) is True
    assert client.conflicts == 0 and repo.require("c").completed_chunks == 1


def test_reopening_is_one_transaction_so_at_most_99_chunks_at_once(repo):
    # GIVEN a completed job of 100 chunks
    repo.save(JobRecord.new(make_spec(100, job_id="wide"), now=1.0))
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
    repo.save(JobRecord.new(make_spec(2, job_id="tiny"), now=1.0))
    small = ChunkAttempt(chunk_id=0, attempt=1, state=ChunkState.FAILED, duration_ms=1.0, billed_duration_ms=1,
                         cost_usd=3e-07, finished_at=5.0)
    # WHEN it is recorded, THEN it lands and adds up exactly
    assert repo.record_attempt("tiny", small) is True
    job = repo.require("tiny")
    assert job.metrics.cost_usd == 3e-07 and job.chunk(0).cost_usd == 3e-07


@pytest.fixture
def clients_built(monkeypatch) -> list[str]:
    """The service of every boto3 client built from here on."""
    import boto3.session

    built: list[str] = []
    original = boto3.session.Session.client

    def client(self, service_name, *args, **kwargs):
        built.append(service_name)
        return original(self, service_name, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", client)
    return built


def test_listing_jobs_reads_no_spec_and_builds_no_client(table, dynamodb_client, storage, s3_client, clients_built):
    # GIVEN 50 jobs whose specs are in S3, and a store that has not seen them (as a new CLI process)
    specs = [make_spec(3, job_id=f"job-{i:02d}") for i in range(50)]
    writer = DynamoDBJobRepository(table, client=dynamodb_client, storage=storage)
    for i, spec in enumerate(specs):
        writer.save(JobRecord.new(spec, now=float(i)))
    s3_calls: list[str] = []
    s3_client.meta.events.register("before-call.s3.*", lambda model, **_: s3_calls.append(model.name))
    reader = DynamoDBJobRepository(table, client=dynamodb_client, storage=storage)
    clients_built.clear()
    # WHEN the jobs are listed, and one job's summary is read
    listed = reader.list()
    summary = reader.get("job-07", chunks=False)
    # THEN no spec was fetched and no boto3 client was built
    assert [job.id for job in listed] == [spec.id for spec in reversed(specs)]
    assert listed[0].completed_chunks == 0 and summary.total_chunks == 3
    assert s3_calls == [] and clients_built == []
    # AND a spec asked for is read once, through the store's own storage
    assert listed[0].spec == specs[-1] and listed[0].spec.id == "job-49"
    assert s3_calls == ["GetObject"] and clients_built == []


def test_the_listing_index_keeps_what_a_listing_shows_and_no_heartbeat(table, dynamodb_client):
    # GIVEN a job kept without storage (its spec inline in the item), running and heartbeating
    repo = DynamoDBJobRepository(table, client=dynamodb_client)
    repo.save(JobRecord.new(make_spec(3, job_id="beating"), now=1.0))
    assert repo.take_lease("beating", Lease("runner", 20.0), now=2.0, expected={JobState.PENDING})
    assert repo.renew_lease("beating", Lease("runner", 21.0), now=3.0) is not None
    # WHEN the listing index is read
    index = dynamodb_client.describe_table(TableName=table)["Table"]["GlobalSecondaryIndexes"][0]
    entry = dynamodb_client.query(TableName=table, IndexName=GSI_NAME, KeyConditionExpression="#pk = :jobs",
                                  ExpressionAttributeNames={"#pk": GSI_PK},
                                  ExpressionAttributeValues={":jobs": {"S": "JOBS"}})["Items"][0]
    # THEN it projects only the listing's attributes: no heartbeat, no spec
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(LISTED)}
    assert set(entry) <= {PK, SK, GSI_PK, GSI_SK, *LISTED}
    assert "heartbeat_at" not in entry and "spec" not in entry and entry["state"] == {"S": "running"}
    assert "lease_owner" not in entry and "lease_until" not in entry
    # AND a listed job's inline spec is read from the table when asked for
    listed = DynamoDBJobRepository(table, client=dynamodb_client).list()
    assert [(job.id, job.heartbeat_at) for job in listed] == [("beating", None)]
    assert listed[0].spec == make_spec(3, job_id="beating")


def test_a_create_that_loses_a_race_for_its_id_leaves_the_winners_spec(repo, storage, table, dynamodb_client):
    # GIVEN a job created with one spec, and a second create of the same id that looked before it existed
    winner = make_spec(2, job_id="raced")
    assert repo.create(JobRecord.new(winner, now=1.0)) is None
    late = DynamoDBJobRepository(table, client=dynamodb_client, storage=storage)
    looks = iter([None])
    late.get = lambda job_id, chunks=True: next(looks, "missing") and repo.get(job_id, chunks=chunks)
    # WHEN it reaches the table with another spec
    existing = late.create(JobRecord.new(make_spec(5, job_id="raced"), now=2.0))
    # THEN it gets the first job back, and the spec workers read is still the first job's
    assert existing is not None and existing.total_chunks == 2
    assert json.loads(storage.get_bytes(spec_key("raced")))["chunks"] == json.loads(winner.model_dump_json())["chunks"]
