"""StoreWriter: ordered batched writes, flush, and a failing store."""

from __future__ import annotations

import threading

from framefarm import InMemoryJobRepository, JobStatus
from framefarm.status import ChunkAttempt, ChunkStarted, ChunkState
from framefarm.store_writer import StoreWriter, _coalesce
from tests.helpers import make_spec


def attempt(chunk_id: int, number: int = 1, state: ChunkState = ChunkState.COMPLETED) -> ChunkAttempt:
    return ChunkAttempt(chunk_id=chunk_id, attempt=number, state=state, duration_ms=5.0, started_at=1.0)


def test_flush_makes_every_earlier_event_visible_in_order():
    repo = InMemoryJobRepository()
    repo.save(JobStatus.new(make_spec(100, job_id="j"), now=0.0))
    writer = StoreWriter(repo, "j")
    for chunk_id in range(100):
        writer.put(ChunkStarted(chunk_id, 1, 1.0))
        writer.put(attempt(chunk_id, 1, ChunkState.FAILED))
        writer.put(attempt(chunk_id, 2))
    assert writer.flush(timeout=30)
    job = repo.require("j")
    assert job.completed_chunks == 100 and job.metrics.failed_attempts == 100
    assert all(record.attempts == 2 for record in job.chunks)
    writer.close()
    writer.close()  # twice is fine


def test_a_store_that_keeps_failing_is_retried_then_reported_and_nothing_hangs():
    # GIVEN a store whose writes always fail
    class BrokenStore(InMemoryJobRepository):
        tries = 0

        def record_batch(self, job_id, events):
            BrokenStore.tries += 1
            raise ConnectionError("database is locked")

    errors, sleeps = [], []
    reported = threading.Event()
    writer = StoreWriter(BrokenStore(), "j", tries=3, backoff=0.5, sleep=sleeps.append,
                         on_error=lambda exc: (errors.append(exc), reported.set()))
    # WHEN events are put
    writer.put(attempt(0))
    # THEN it tried 3 times with growing backoff, reported once, and flush/close still return
    assert reported.wait(30)
    assert BrokenStore.tries == 3 and sleeps == [0.5, 1.0]
    assert [str(e) for e in errors] == ["database is locked"] and str(writer.error) == "database is locked"
    writer.put(attempt(1))
    assert writer.flush(timeout=30)
    writer.close()
    assert BrokenStore.tries == 3


def test_a_store_that_recovers_loses_nothing():
    class FlakyStore(InMemoryJobRepository):
        failures = 2

        def record_batch(self, job_id, events):
            if FlakyStore.failures:
                FlakyStore.failures -= 1
                raise ConnectionError("throttled")
            return super().record_batch(job_id, events)

    repo = FlakyStore()
    repo.save(JobStatus.new(make_spec(3, job_id="j"), now=0.0))
    writer = StoreWriter(repo, "j", sleep=lambda s: None)
    for chunk_id in range(3):
        writer.put(attempt(chunk_id))
    writer.close()
    assert writer.error is None and repo.require("j").completed_chunks == 3


def test_coalesce_drops_only_starts_whose_result_is_in_the_batch():
    start0, start1, done0 = ChunkStarted(0, 1, 1.0), ChunkStarted(1, 1, 1.0), attempt(0)
    assert _coalesce([start0, start1, done0]) == [start1, done0]
    assert _coalesce([start0, start1]) == [start0, start1]
