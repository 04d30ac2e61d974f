"""StoreWriter: ordered batched writes, flush, and a failing store."""

from __future__ import annotations

import threading

from framefarm import InMemoryJobRepository, JobRecord
from framefarm.status import ChunkAttempt, ChunkStarted, ChunkState
from framefarm.store_writer import StoreWriter, _coalesce, _Marker
from tests.helpers import eventually, make_spec


def attempt(chunk_id: int, number: int = 1, state: ChunkState = ChunkState.COMPLETED) -> ChunkAttempt:
    return ChunkAttempt(chunk_id=chunk_id, attempt=number, state=state, duration_ms=5.0, started_at=1.0)


def test_flush_makes_every_earlier_event_visible_in_order():
    repo = InMemoryJobRepository()
    repo.save(JobRecord.new(make_spec(100, job_id="j"), now=0.0))
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
    repo.save(JobRecord.new(make_spec(3, job_id="j"), now=0.0))
    writer = StoreWriter(repo, "j", sleep=lambda s: None)
    for chunk_id in range(3):
        writer.put(attempt(chunk_id))
    writer.close()
    assert writer.error is None and repo.require("j").completed_chunks == 3


class FlushAfterTheWriterLeft:
    """The writer's queue, holding a flush's marker back until the writer took its close marker and
    left: the interleaving that hung ``JobManager.get_job`` on a finishing job."""

    def __init__(self, writer: StoreWriter) -> None:
        self.inner, self.writer = writer._queue, writer
        self.closing = threading.Event()

    def put(self, item) -> None:
        if isinstance(item, _Marker) and not item.close:
            assert self.closing.wait(10), "close() never came"
            self.writer._thread.join(10)
        self.inner.put(item)
        if isinstance(item, _Marker) and item.close:
            self.closing.set()

    def get(self):
        return self.inner.get()

    def get_nowait(self):
        return self.inner.get_nowait()


def test_a_flush_racing_close_returns_once_the_writer_is_gone():
    # GIVEN a writer with one event queued, whose next flush marker goes in only after the writer left
    repo = InMemoryJobRepository()
    repo.save(JobRecord.new(make_spec(1, job_id="j"), now=0.0))
    writer = StoreWriter(repo, "j")
    writer.put(attempt(0))
    writer._queue = FlushAfterTheWriterLeft(writer)
    flushed: list[bool] = []
    returned = threading.Event()
    threading.Thread(target=lambda: (flushed.append(writer.flush()), returned.set()), daemon=True).start()
    # WHEN the writer is closed while that flush is on its way
    writer.close()
    # THEN the flush returns (bounded here: it hung forever before) and the event was stored
    assert returned.wait(10), "flush() still waiting for a writer that has gone"
    assert flushed == [True] and repo.require("j").completed_chunks == 1
    # AND a flush after close returns at once
    assert writer.flush(timeout=0)


def test_a_flush_queued_right_behind_the_close_marker_returns():
    # GIVEN a writer held inside a store write
    inside, release = threading.Event(), threading.Event()

    class SlowStore(InMemoryJobRepository):
        def record_batch(self, job_id, events):
            inside.set()
            release.wait(30)
            return super().record_batch(job_id, events)

    repo = SlowStore()
    repo.save(JobRecord.new(make_spec(1, job_id="j"), now=0.0))
    writer = StoreWriter(repo, "j")
    writer.put(attempt(0))
    assert inside.wait(10)
    # WHEN close() and then a flush queue their markers behind that write
    closer = threading.Thread(target=writer.close, daemon=True)
    closer.start()
    eventually(lambda: writer._queue.qsize() == 1, interval=0.001, what="the close marker queued")
    returned = threading.Event()
    threading.Thread(target=lambda: (writer.flush(), returned.set()), daemon=True).start()
    eventually(lambda: writer._queue.qsize() == 2, interval=0.001, what="the flush marker queued")
    release.set()
    # THEN the writer, taking both markers in one batch, answers the flush too (it used to stop at the close)
    assert returned.wait(10), "flush() still waiting after the writer closed"
    closer.join(10)
    assert repo.require("j").completed_chunks == 1


def test_a_flush_gives_up_after_its_time_limit_when_the_store_hangs():
    # GIVEN a store whose write hangs until the test ends
    release = threading.Event()

    class HangingStore(InMemoryJobRepository):
        def record_batch(self, job_id, events):
            release.wait(30)

    writer = StoreWriter(HangingStore(), "j", flush_timeout=0.05)
    writer.put(attempt(0))
    # WHEN a flush waits for it, THEN it returns False after its limit instead of waiting for ever
    assert writer.flush() is False
    release.set()
    writer.close()


def test_coalesce_drops_only_starts_whose_result_is_in_the_batch():
    start0, start1, done0 = ChunkStarted(0, 1, 1.0), ChunkStarted(1, 1, 1.0), attempt(0)
    assert _coalesce([start0, start1, done0]) == [start1, done0]
    assert _coalesce([start0, start1]) == [start0, start1]
