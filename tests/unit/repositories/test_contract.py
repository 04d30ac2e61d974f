"""One contract, every job store: the same behaviour from memory and SQLite."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from framefarm import JobRecord, JobSpec, JobState, SqliteJobRepository
from framefarm.errors import JobNotFoundError
from framefarm.failures import FailureKind
from framefarm.lease import Beat, Lease
from framefarm.repositories.base import JobRepository
from framefarm.status import ChunkAttempt, ChunkState, DeliveryRecord, DeliveryState
from tests.helpers import make_spec


def new_job(repo: JobRepository, chunks: int = 4, *, job_id: str = "job-1", now: float = 100.0) -> JobRecord:
    status = JobRecord.new(make_spec(chunks, job_id=job_id), now=now)
    repo.save(status)
    return status


def done(chunk_id: int, attempt: int = 1, *, duration: float = 100.0, billed: int = 200, cost: float = 0.5,
         state: ChunkState = ChunkState.COMPLETED, kind: FailureKind | None = None) -> ChunkAttempt:
    return ChunkAttempt(chunk_id=chunk_id, attempt=attempt, state=state, duration_ms=duration,
                        billed_duration_ms=billed, cost_usd=cost, stdout_tail=f"out {chunk_id}",
                        stderr_tail=f"err {chunk_id}", kind=kind, finished_at=200.0 + chunk_id)


def test_save_and_get_round_trip(repo):
    status = new_job(repo)
    assert repo.get("job-1") == status
    assert repo.get("missing") is None


def test_list_is_newest_first_without_chunk_records(repo):
    new_job(repo, job_id="old", now=1.0)
    new_job(repo, job_id="new", now=2.0)
    listed = repo.list()
    assert [job.id for job in listed] == ["new", "old"]
    assert all(job.chunks == [] and job.total_chunks == 4 for job in listed)
    assert [job.id for job in repo.list(limit=1)] == ["new"]
    assert listed[1].spec == make_spec(4, job_id="old")  # read when asked for


def test_delete(repo):
    new_job(repo)
    assert repo.delete("job-1") is True
    assert repo.get("job-1") is None
    assert repo.delete("job-1") is False


def test_recording_moves_chunk_and_counters(repo):
    new_job(repo)
    assert repo.record_attempt("job-1", done(2)) is True
    job = repo.require("job-1")
    record = job.chunk(2)
    assert (record.state, record.attempts, record.duration_ms, record.billed_duration_ms, record.cost_usd) == (
        ChunkState.COMPLETED, 1, 100.0, 200, 0.5)
    assert (record.stdout_tail, record.stderr_tail) == ("out 2", "err 2")
    assert job.completed_chunks == 1 and job.progress == 25.0
    assert (job.metrics.total_duration_ms, job.metrics.total_billed_duration_ms, job.metrics.cost_usd) == (
        100.0, 200, 0.5)


def test_recording_the_same_attempt_twice_counts_once(repo):
    new_job(repo)
    assert repo.record_attempt("job-1", done(1)) is True
    assert repo.record_attempt("job-1", done(1)) is False
    job = repo.require("job-1")
    assert job.completed_chunks == 1 and job.metrics.total_duration_ms == 100.0


def test_failed_attempts_add_cost_then_success_completes(repo):
    # GIVEN a chunk that failed once, then succeeded
    new_job(repo)
    repo.record_attempt("job-1", done(0, 1, duration=30.0, billed=100, cost=0.1, state=ChunkState.FAILED))
    repo.record_attempt("job-1", done(0, 2, duration=70.0, billed=100, cost=0.2))
    # THEN both attempts are paid for, it completed once, and a replay of attempt 1 changes nothing
    assert repo.record_attempt("job-1", done(0, 1, state=ChunkState.FAILED)) is False
    job = repo.require("job-1")
    record = job.chunk(0)
    assert (record.state, record.attempts, record.duration_ms, record.billed_duration_ms) == (
        ChunkState.COMPLETED, 2, 100.0, 200)
    assert record.cost_usd == pytest.approx(0.3)
    assert job.completed_chunks == 1 and job.metrics.failed_attempts == 1
    assert job.metrics.total_billed_duration_ms == 200


def test_a_chunk_record_keeps_the_failure_kind_of_its_latest_attempt(repo):
    # GIVEN a chunk whose first attempt timed out and a second chunk that ran out of output
    new_job(repo)
    repo.record_attempt("job-1", done(0, 1, state=ChunkState.FAILED, kind=FailureKind.TIMEOUT))
    repo.record_attempt("job-1", done(1, 1, state=ChunkState.FAILED, kind=FailureKind.RESPONSE_TOO_LARGE))
    # THEN each record names its kind, and saving the job again keeps them
    job = repo.require("job-1")
    assert (job.chunk(0).kind, job.chunk(1).kind, job.chunk(2).kind) == (
        FailureKind.TIMEOUT, FailureKind.RESPONSE_TOO_LARGE, None)
    repo.save(job)
    assert repo.require("job-1").chunk(0).kind is FailureKind.TIMEOUT
    # WHEN the timed-out chunk's next attempt succeeds
    repo.record_attempt("job-1", done(0, 2))
    # THEN its record has no failure kind any more
    assert repo.require("job-1").chunk(0).kind is None


def test_completed_chunk_ignores_later_attempts(repo):
    new_job(repo)
    repo.record_attempt("job-1", done(3, 1))
    assert repo.record_attempt("job-1", done(3, 2)) is False
    assert repo.require("job-1").chunk(3).attempts == 1


def test_recording_for_a_missing_job_records_nothing(repo):
    if type(repo).__name__ == "DynamoDBJobRepository":
        # Its job can be deleted by another machine mid-run: the runner hears it rather than render on
        with pytest.raises(JobNotFoundError, match="chunk 0 not recorded: job nobody is no longer in the table"):
            repo.record_attempt("nobody", done(0))
    else:
        assert repo.record_attempt("nobody", done(0)) is False
    assert repo.get("nobody") is None and repo.chunk_states("nobody") == {}


def test_counters_exact_under_32_threads_recording_1000_chunks_with_replays(repo):
    # moto copies the whole table for every transaction (O(n) each; 1,000 chunks took 215 s there),
    # so the DynamoDB leg uses 100 chunks: the same 32 threads, replays and checks.
    chunks = 100 if type(repo).__name__ == "DynamoDBJobRepository" else 1000
    # GIVEN a job with that many chunks
    new_job(repo, chunks)
    # WHEN 32 threads record every chunk, each chunk twice (a replayed event)
    with ThreadPoolExecutor(32) as pool:
        applied = list(pool.map(lambda i: repo.record_attempt("job-1", done(i % chunks, duration=1.0, billed=2,
                                                                            cost=0.25)), range(2 * chunks)))
    # THEN each chunk counted exactly once and the totals equal the sum of the records
    job = repo.require("job-1")
    assert sum(applied) == chunks
    assert job.completed_chunks == chunks
    assert job.metrics.total_duration_ms == sum(r.duration_ms for r in job.chunks) == chunks * 1.0
    assert job.metrics.total_billed_duration_ms == sum(r.billed_duration_ms for r in job.chunks) == chunks * 2
    assert job.metrics.cost_usd == pytest.approx(chunks * 0.25)


def test_mark_running_never_reopens_a_completed_chunk(repo):
    new_job(repo)
    repo.mark_chunk_running("job-1", 0, 1, now=150.0)
    repo.record_attempt("job-1", done(1))
    repo.mark_chunk_running("job-1", 1, 2, now=160.0)
    job = repo.require("job-1")
    assert (job.chunk(0).state, job.chunk(0).started_at) == (ChunkState.RUNNING, 150.0)
    assert job.chunk(1).state is ChunkState.COMPLETED


def test_an_attempt_is_recorded_after_its_start_event(repo):
    # Found end to end: DynamoDB compares a missing "attempts" attribute as false.
    new_job(repo)
    repo.mark_chunk_running("job-1", 2, 1, now=150.0)
    assert repo.record_attempt("job-1", done(2)) is True
    job = repo.require("job-1")
    assert (job.chunk(2).state, job.chunk(2).attempts, job.completed_chunks) == (ChunkState.COMPLETED, 1, 1)


def test_set_state_is_conditional(repo):
    new_job(repo)
    assert repo.set_state("job-1", JobState.RUNNING, now=1.0, expected={JobState.PENDING}) is True
    assert repo.set_state("job-1", JobState.RUNNING, now=2.0, expected={JobState.PENDING}) is False
    assert repo.set_state("job-1", JobState.FAILED, now=3.0, error="boom", output="/o.mp4") is True
    job = repo.require("job-1")
    assert (job.state, job.error, job.output, job.updated_at) == (JobState.FAILED, "boom", "/o.mp4", 3.0)
    assert repo.set_state("nobody", JobState.RUNNING, now=1.0) is False


def test_only_one_of_many_racing_transitions_wins(repo):
    new_job(repo)
    barrier = threading.Barrier(16)

    def race(_):
        barrier.wait()
        return repo.set_state("job-1", JobState.RUNNING, now=1.0, expected={JobState.PENDING})

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(race, range(16))) == 1


def test_requests_reach_the_lease_holder_and_a_transition_clears_them(repo):
    new_job(repo)
    lease = Lease("runner-a", 20.0)
    assert repo.take_lease("job-1", lease, now=5.0, expected={JobState.PENDING})
    assert repo.renew_lease("job-1", Lease("runner-a", 21.0), now=5.0) == Beat(None)
    assert repo.ask_runner("job-1", "cancel", now=5.5)
    assert repo.renew_lease("job-1", Lease("runner-a", 22.0), now=6.0) == Beat("cancel")
    job = repo.require("job-1")
    assert (job.heartbeat_at, job.lease_owner, job.lease_until) == (6.0, "runner-a", 22.0)
    repo.set_state("job-1", JobState.CANCELLED, now=7.0)
    job = repo.require("job-1")
    assert job.pending_action is None
    assert (job.lease_owner, job.lease_until) == (None, None)  # a state that is not active releases the lease
    # a request needs a runner to hear it: refused once nobody holds the job, so none is left for its next run
    assert not repo.ask_runner("job-1", "cancel", now=8.0)
    assert repo.require("job-1").pending_action is None
    assert not repo.ask_runner("nobody", "cancel", now=1.0)
    assert repo.renew_lease("nobody", lease, now=1.0) is None


def test_a_lease_is_taken_only_when_free_expired_own_or_handed_over(repo):
    # GIVEN a pending job
    new_job(repo)
    # WHEN one runner takes the lease, THEN it is running and another runner cannot take it while it holds
    assert repo.take_lease("job-1", Lease("a", 100.0), now=10.0, expected={JobState.PENDING})
    job = repo.require("job-1")
    assert (job.state, job.lease_owner, job.lease_until, job.heartbeat_at) == (JobState.RUNNING, "a", 100.0, 10.0)
    running = {JobState.RUNNING}
    assert not repo.take_lease("job-1", Lease("b", 150.0), now=50.0, expected=running)
    assert repo.renew_lease("job-1", Lease("b", 150.0), now=50.0) is None  # only the owner renews
    # ... its owner may take it again; a state outside ``expected`` refuses even the owner
    assert repo.take_lease("job-1", Lease("a", 110.0), now=50.0, expected=running)
    assert not repo.take_lease("job-1", Lease("a", 110.0), now=50.0, expected={JobState.PENDING})
    # WHEN the lease runs out, THEN another runner takes it, and the old owner can no longer renew it
    assert repo.take_lease("job-1", Lease("b", 200.0), now=110.0, expected=running)
    assert repo.renew_lease("job-1", Lease("a", 210.0), now=111.0) is None
    # WHEN the owner hands over to a token, THEN only that token's holder (or the owner) takes it
    assert not repo.hand_over("job-1", "a", Lease("handover:x", 300.0))
    assert repo.hand_over("job-1", "b", Lease("handover:x", 300.0))
    assert repo.require("job-1").state is JobState.RUNNING
    assert not repo.take_lease("job-1", Lease("c", 400.0), now=150.0, expected=running)
    assert not repo.take_lease("job-1", Lease("c", 400.0), now=150.0, expected=running, successor_of="handover:y")
    assert repo.take_lease("job-1", Lease("c", 400.0), now=150.0, expected=running, successor_of="handover:x")
    # ... and a duplicate continuation with the same token finds it taken
    assert not repo.take_lease("job-1", Lease("d", 400.0), now=151.0, expected=running, successor_of="handover:x")
    assert repo.require("job-1").lease_owner == "c"


def test_state_changes_can_require_the_lease(repo):
    new_job(repo)
    repo.take_lease("job-1", Lease("a", 100.0), now=10.0, expected={JobState.PENDING})
    # a runner that lost the job writes nothing; a controller waits until nobody holds it
    assert not repo.set_state("job-1", JobState.FAILED, now=20.0, owner="b")
    assert not repo.set_state("job-1", JobState.CANCELLED, now=20.0, free_at=20.0)
    # an active state keeps the lease; the owner's final state releases it
    assert repo.set_state("job-1", JobState.STITCHING, now=20.0, owner="a")
    assert repo.require("job-1").lease_owner == "a"
    assert repo.set_state("job-1", JobState.COMPLETED, now=30.0, owner="a", expected={JobState.STITCHING})
    job = repo.require("job-1")
    assert (job.state, job.lease_owner, job.lease_until) == (JobState.COMPLETED, None, None)
    assert repo.set_state("job-1", JobState.PAUSED, now=31.0, free_at=31.0)
    # a run that ends in an active state at rest (stitching: chunks ready to stitch) releases it explicitly
    repo.take_lease("job-1", Lease("c", 100.0), now=40.0, expected={JobState.PAUSED})
    assert repo.set_state("job-1", JobState.STITCHING, now=41.0, owner="c", release=True)
    assert repo.require("job-1").lease_owner is None


def test_only_one_of_many_racing_runners_takes_the_lease(repo):
    new_job(repo)
    barrier = threading.Barrier(8)

    def race(index):
        barrier.wait()
        return repo.take_lease("job-1", Lease(f"runner-{index}", 100.0), now=1.0, expected={JobState.PENDING})

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(race, range(8))) == 1


def test_create_inserts_only_a_new_id(repo):
    # GIVEN a job created with a client token
    first = JobRecord.new(make_spec(2, job_id="job-1"), now=1.0, client_token="tok")
    assert repo.create(first) is None
    # WHEN the same id is created again, THEN the first job is returned and left as it was
    again = JobRecord.new(make_spec(3, job_id="job-1"), now=2.0, client_token="other")
    existing = repo.create(again)
    assert existing is not None and (existing.client_token, existing.total_chunks) == ("tok", 2)
    assert repo.require("job-1").created_at == 1.0


def test_sqlite_store_is_shared_between_connections(tmp_path):
    # GIVEN two stores on one file, as two processes would have
    writer, reader = SqliteJobRepository(tmp_path / "j.db"), SqliteJobRepository(tmp_path / "j.db")
    new_job(writer)
    # WHEN one records, THEN the other sees it at once
    writer.record_attempt("job-1", done(0))
    assert reader.require("job-1").completed_chunks == 1


def test_sqlite_listings_and_summaries_parse_no_spec(tmp_path, monkeypatch):
    # GIVEN jobs stored by one process, and a store in another that has not read them
    writer = SqliteJobRepository(tmp_path / "j.db")
    for i in range(3):
        new_job(writer, job_id=f"job-{i}", now=float(i))
    reader = SqliteJobRepository(tmp_path / "j.db")
    parsed = []
    original = JobSpec.model_validate_json
    monkeypatch.setattr(JobSpec, "model_validate_json", lambda text: parsed.append(1) or original(text))
    # WHEN it lists them and reads a summary THEN no spec is parsed
    listed = reader.list()
    summary = reader.get("job-1", chunks=False)
    assert [job.id for job in listed] == ["job-2", "job-1", "job-0"] and summary.total_chunks == 4
    assert parsed == []
    # AND one is parsed when asked for
    assert listed[0].spec.id == "job-2" and parsed == [1]


# jobs.db as framefarm made it before the run lease and the chunks' failure kind.
OLD_SQLITE_SCHEMA = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY, spec TEXT NOT NULL, state TEXT NOT NULL, total_chunks INTEGER NOT NULL,
    completed_chunks INTEGER NOT NULL DEFAULT 0, failed_attempts INTEGER NOT NULL DEFAULT 0,
    total_duration_ms REAL NOT NULL DEFAULT 0, total_billed_duration_ms INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0, error TEXT, output TEXT, requested TEXT, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, heartbeat_at REAL
);
CREATE INDEX jobs_by_created ON jobs (created_at DESC);
CREATE TABLE chunks (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, chunk_id INTEGER NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, duration_ms REAL NOT NULL DEFAULT 0,
    billed_duration_ms INTEGER NOT NULL DEFAULT 0, memory_mb INTEGER, max_memory_used_mb INTEGER,
    init_duration_ms REAL, request_id TEXT, cost_usd REAL NOT NULL DEFAULT 0, throttles INTEGER NOT NULL DEFAULT 0,
    stdout_tail TEXT NOT NULL DEFAULT '', stderr_tail TEXT NOT NULL DEFAULT '', error TEXT, output TEXT,
    started_at REAL, finished_at REAL, PRIMARY KEY (job_id, chunk_id)
) WITHOUT ROWID;
"""


def test_an_old_sqlite_jobs_db_gets_the_kind_column_on_open(tmp_path):
    # GIVEN a jobs.db made before chunks had a kind, holding a job whose chunk 0 failed once
    path = tmp_path / "jobs.db"
    with sqlite3.connect(path) as old:
        old.executescript(OLD_SQLITE_SCHEMA)
        old.execute("INSERT INTO jobs (id, spec, state, total_chunks, failed_attempts, created_at, updated_at) "
                    "VALUES ('job-1', ?, 'paused', 4, 1, 1.0, 2.0)", (make_spec(4, job_id="job-1").model_dump_json(),))
        old.execute("INSERT INTO chunks (job_id, chunk_id, state, attempts, error) "
                    "VALUES ('job-1', 0, 'failed', 1, 'exit code 1')")
        old.executemany("INSERT INTO chunks (job_id, chunk_id, state) VALUES ('job-1', ?, 'pending')",
                        [(chunk_id,) for chunk_id in (1, 2, 3)])
    old.close()
    # WHEN the store opens it (twice, as a second process would) and records a timed-out attempt
    SqliteJobRepository(path).close()
    repo = SqliteJobRepository(path)
    assert repo.record_attempt("job-1", done(1, 1, state=ChunkState.FAILED, kind=FailureKind.TIMEOUT)) is True
    # THEN the old chunk reads with no kind, the new one with its kind, and nothing old was lost
    job = repo.require("job-1")
    assert (job.chunk(0).state, job.chunk(0).error, job.chunk(0).kind) == (ChunkState.FAILED, "exit code 1", None)
    assert job.chunk(1).kind is FailureKind.TIMEOUT
    assert job.metrics.failed_attempts == 2 and job.lease_owner is None
    repo.close()


def test_chunk_states_and_get_without_chunks(repo):
    new_job(repo, 3)
    repo.record_attempt("job-1", done(1, 2))
    repo.record_attempt("job-1", done(2, 1, state=ChunkState.FAILED))
    states = repo.chunk_states("job-1")
    # A store may leave never-touched chunks out; absent means pending with no attempts.
    assert states.get(0, (ChunkState.PENDING, 0)) == (ChunkState.PENDING, 0)
    assert (states[1], states[2]) == ((ChunkState.COMPLETED, 2), (ChunkState.FAILED, 1))
    summary = repo.get("job-1", chunks=False)
    assert summary.chunks == [] and summary.completed_chunks == 1
    assert summary.spec == make_spec(3, job_id="job-1")
    assert repo.chunk_states("nobody") == {}


def test_reopening_chunks_moves_completed_ones_back_and_the_counter_down_by_as_many(repo):
    # GIVEN a completed job: chunks 0-2 completed (chunk 1 on its second attempt), chunk 3 failed
    new_job(repo)
    repo.record_attempt("job-1", done(0))
    repo.record_attempt("job-1", done(1, 1, state=ChunkState.FAILED))
    repo.record_attempt("job-1", done(1, 2))
    repo.record_attempt("job-1", done(2))
    repo.record_attempt("job-1", done(3, state=ChunkState.FAILED))
    repo.set_state("job-1", JobState.FAILED, now=300.0, error="Chunk 3 failed", expected={JobState.PENDING})
    before = repo.require("job-1")
    # WHEN chunks 1 and 3 (and an id twice) are reopened
    reopened = repo.reopen_chunks("job-1", [1, 3, 1], state=JobState.PAUSED, now=400.0,
                                  expected={JobState.FAILED, JobState.COMPLETED})
    # THEN only chunk 1, which had completed, went back to pending, keeping its attempts and what it cost
    assert reopened == [1]
    job = repo.require("job-1")
    assert (job.state, job.error, job.updated_at, job.completed_chunks) == (JobState.PAUSED, None, 400.0, 2)
    assert job.metrics == before.metrics
    record = job.chunk(1)
    assert (record.state, record.attempts, record.duration_ms, record.billed_duration_ms, record.output) == (
        ChunkState.PENDING, 2, 200.0, 400, None)
    assert record.cost_usd == pytest.approx(1.0)
    assert (job.chunk(0).state, job.chunk(3).state) == (ChunkState.COMPLETED, ChunkState.FAILED)
    assert repo.chunk_states("job-1")[1] == (ChunkState.PENDING, 2)
    # AND its next attempt is recorded and counted again, on top of what was paid before
    assert repo.record_attempt("job-1", done(1, 3)) is True
    job = repo.require("job-1")
    assert (job.completed_chunks, job.chunk(1).state, job.chunk(1).billed_duration_ms) == (
        3, ChunkState.COMPLETED, 600)
    assert job.metrics.total_billed_duration_ms == sum(r.billed_duration_ms for r in job.chunks)


def test_reopening_chunks_is_conditional_on_the_job_state(repo):
    # GIVEN a running job with a completed chunk
    new_job(repo)
    repo.record_attempt("job-1", done(0))
    repo.set_state("job-1", JobState.RUNNING, now=150.0)
    # WHEN its chunk is reopened from states it is not in, THEN nothing changes
    assert repo.reopen_chunks("job-1", [0], state=JobState.PAUSED, now=160.0,
                              expected={JobState.COMPLETED, JobState.FAILED}) is None
    job = repo.require("job-1")
    assert (job.state, job.completed_chunks, job.chunk(0).state) == (JobState.RUNNING, 1, ChunkState.COMPLETED)
    assert repo.reopen_chunks("nobody", [0], state=JobState.PAUSED, now=1.0, expected={JobState.COMPLETED}) is None


def test_only_one_of_many_racing_reopens_counts(repo):
    # GIVEN a completed job
    new_job(repo, 2)
    repo.record_attempt("job-1", done(0))
    repo.record_attempt("job-1", done(1))
    repo.set_state("job-1", JobState.COMPLETED, now=300.0)
    barrier = threading.Barrier(8)

    def race(_):
        barrier.wait()
        return repo.reopen_chunks("job-1", [0], state=JobState.PAUSED, now=400.0, expected={JobState.COMPLETED})

    # WHEN 8 threads reopen its chunk 0 at once
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(race, range(8)))
    # THEN one did, and the counter went down once
    assert (outcomes.count([0]), outcomes.count(None)) == (1, 7)
    assert repo.require("job-1").completed_chunks == 1


def test_reopening_needs_the_job_free_or_its_runner_known_gone(repo):
    # GIVEN a failed run whose (dead) runner still holds the lease by its expiry time
    new_job(repo, 2)
    repo.record_attempt("job-1", done(0))
    repo.take_lease("job-1", Lease("dead-runner", 500.0), now=100.0, expected={JobState.PENDING})
    # WHEN chunks are reopened while the lease runs, THEN it is refused, unless that runner is known gone
    assert repo.reopen_chunks("job-1", [0], state=JobState.PAUSED, now=200.0, expected={JobState.RUNNING}) is None
    assert repo.reopen_chunks("job-1", [0], state=JobState.PAUSED, now=200.0, expected={JobState.RUNNING},
                              gone_owner="someone-else") is None
    assert repo.reopen_chunks("job-1", [0], state=JobState.PAUSED, now=200.0, expected={JobState.RUNNING},
                              gone_owner="dead-runner") == [0]
    job = repo.require("job-1")
    assert (job.state, job.lease_owner, job.completed_chunks) == (JobState.PAUSED, None, 0)


def delivery(attempts: int = 0, state: str = "pending", *, outcomes: tuple[str, ...] = ()) -> DeliveryRecord:
    return DeliveryRecord(delivery_id="d-1", event="job.completed", url="http://127.0.0.1:9/hook",
                          body='{"job_id": "job-1"}', state=DeliveryState(state), attempts=attempts,
                          outcomes=list(outcomes), created_at=300.0, updated_at=300.0 + attempts)


def test_a_delivery_moves_only_forward(repo):
    # GIVEN a job with a pending delivery tried twice
    new_job(repo)
    assert repo.record_delivery("job-1", delivery())
    assert repo.record_delivery("job-1", delivery(2, outcomes=("500", "500")))
    # WHEN a late write of its first attempt arrives, then the delivery succeeds, then a stale retry writes
    assert not repo.record_delivery("job-1", delivery(1, outcomes=("500",)))
    assert repo.record_delivery("job-1", delivery(3, "delivered", outcomes=("500", "500", "200")))
    assert not repo.record_delivery("job-1", delivery(4, "pending", outcomes=("500",) * 4))
    # THEN the store keeps the delivered record, which reads back whole, beside the job's own records
    assert repo.deliveries("job-1") == [delivery(3, "delivered", outcomes=("500", "500", "200"))]
    assert len(repo.get("job-1").chunks) == 4


def test_deliveries_go_with_their_job(repo):
    # GIVEN a job with a delivery
    new_job(repo)
    repo.record_delivery("job-1", delivery(1))
    # WHEN the job is deleted
    repo.delete("job-1")
    # THEN its deliveries are gone, and none can be recorded for it any more
    assert repo.deliveries("job-1") == []
    assert not repo.record_delivery("job-1", delivery(2))
    assert repo.deliveries("job-1") == []
