"""Every attempt of a chunk is known after the fact: the record holds the latest, storage the rest."""

from __future__ import annotations

import dataclasses

from framefarm import ExecutionOptions
from framefarm.attempt_history import attempt_from_json, attempt_json, attempts_of, earlier_attempts
from framefarm.failures import FailureKind
from framefarm.status import ChunkAttempt, ChunkRecord, ChunkState
from framefarm.storage.keys import attempts_prefix
from tests.helpers import retry_at_once
from tests.monitor_jobs import Farm


def test_a_retried_chunk_keeps_its_failed_attempt_with_its_own_times_and_amounts(tmp_path):
    # GIVEN a job whose chunk 2 fails once, then renders
    farm = Farm(tmp_path)
    job_id = farm.finished_job_with_a_retry(chunks=4, retried=2)
    job = farm.manager.get_job(job_id)
    # WHEN its attempts are read back
    earlier = earlier_attempts(farm.storage, job_id)
    attempts = attempts_of(job.chunk(2), earlier.get(2, {}))
    # THEN only the replaced attempt was written (chunks that rendered once cost no object)
    assert [stored.key.rpartition("/")[2] for stored in farm.storage.list(attempts_prefix(job_id))] == [
        "00002.attempt1.json"]
    # AND chunk 2 shows both attempts in order, each with its own times and durations
    first, second = attempts
    assert (first.attempt, first.state, first.kind, first.duration_ms) == (1, ChunkState.FAILED, FailureKind.EXIT_CODE, 2.0)
    assert (second.attempt, second.state, second.duration_ms) == (2, ChunkState.COMPLETED, 12.0)
    assert first.started_at <= first.finished_at <= second.started_at <= second.finished_at
    assert job.chunk(2).duration_ms == first.duration_ms + second.duration_ms
    # AND a chunk that rendered once is one attempt, straight from its record
    assert [(a.attempt, a.state) for a in attempts_of(job.chunk(0), earlier.get(0, {}))] == [(1, ChunkState.COMPLETED)]


def test_a_completed_attempt_that_retry_reopens_is_kept_before_the_record_forgets_it(tmp_path):
    # GIVEN a rendered job
    farm = Farm(tmp_path)
    job_id = farm.finished_job_with_a_retry(chunks=3, retried=1)
    first_run = farm.manager.get_job(job_id).chunk(0)
    # WHEN chunk 0 is rendered again (`framefarm retry --chunk 0`)
    farm.manager.retry_chunks(job_id, [0], ExecutionOptions(retry=retry_at_once()), background=False)
    # THEN chunk 0 shows two completed attempts: the first with the times its record had
    record = farm.manager.get_job(job_id).chunk(0)
    attempts = attempts_of(record, earlier_attempts(farm.storage, job_id).get(0, {}))
    assert [(a.attempt, a.state) for a in attempts] == [(1, ChunkState.COMPLETED), (2, ChunkState.COMPLETED)]
    assert (attempts[0].started_at, attempts[0].finished_at) == (first_run.started_at, first_run.finished_at)


def test_a_running_attempt_follows_the_kept_ones_and_a_chunk_never_tried_has_none():
    # GIVEN a chunk whose first attempt failed (kept) and whose second runs now
    kept = {1: ChunkAttempt(chunk_id=5, attempt=1, state=ChunkState.FAILED, started_at=10.0, finished_at=12.0)}
    running = ChunkRecord(chunk_id=5, state=ChunkState.RUNNING, attempts=1, started_at=13.0, finished_at=12.0)
    # WHEN its attempts are laid out  THEN the kept one comes first, then the running one with no end
    shown = attempts_of(running, kept)
    assert [(a.attempt, a.state, a.started_at, a.finished_at) for a in shown] == [
        (1, ChunkState.FAILED, 10.0, 12.0), (2, ChunkState.RUNNING, 13.0, None)]
    # AND a chunk never tried has no attempt
    assert attempts_of(ChunkRecord(chunk_id=6), {}) == []


def test_a_kept_attempt_reads_back_the_same_but_for_its_logs():
    # GIVEN an attempt with its figures and log tails
    attempt = ChunkAttempt(chunk_id=3, attempt=2, state=ChunkState.FAILED, started_at=1.5, finished_at=2.5,
                           duration_ms=1000.0, billed_duration_ms=1000, memory_mb=2048, init_duration_ms=300.0,
                           request_id="r-1", cost_usd=0.0001, throttles=2, kind=FailureKind.TIMEOUT, error="timed out",
                           stdout_tail="frame 1\n", stderr_tail="killed\n")
    # WHEN written and read back  THEN every figure is the same; the logs are not in it (kept whole beside it)
    back = attempt_from_json(attempt_json(attempt))
    assert back == dataclasses.replace(attempt, stdout_tail="", stderr_tail="")
