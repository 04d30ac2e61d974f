"""StoreWriter: writes one running job's chunk events to its store, in order, in batches.

Why a writer thread: a SQLite commit costs ~150 µs, while a batch costs ~4 µs per event, so chunks
that finish together share one transaction. Each attempt is still recorded atomically and
idempotently by the store (``JobRepository.record_batch``). ``flush()`` waits until every event put
so far is stored (the manager flushes before it reads a job it runs, before stitching, and at the
end). If the process dies, at most the unflushed events are lost, and those chunks re-run on resume.

Events and flush markers travel through one queue, so a flush is ordered after everything put
before it without any shared counters. A failing store is retried with backoff; after the last try
``on_error`` is told, ``error`` holds the reason, and later events are dropped.

Every flush ends: the writer sets ``_stopped`` before it leaves and then answers every marker still
queued, and a flush looks at ``_stopped`` only after its marker is in, so a marker is either seen by
that last sweep or its flush sees the writer gone. A flush also has a time limit, for a store that hangs.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable

from framefarm.backoff import Backoff, no_jitter
from framefarm.repositories.base import JobRepository
from framefarm.status import ChunkAttempt, ChunkEvent, ChunkStarted

logger = logging.getLogger(__name__)

MAX_BATCH = 1_000
FLUSH_TIMEOUT = 60.0  # seconds; beyond the writer's own retries (5 tries, 1.5 s of backoff) something hangs


class _Marker:
    """A point in the queue: set once the writer has handled everything before it."""

    def __init__(self, close: bool = False) -> None:
        self.reached = threading.Event()
        self.close = close


class StoreWriter:
    def __init__(self, repository: JobRepository, job_id: str, *,
                 on_error: Callable[[Exception], None] = lambda exc: None,
                 tries: int = 5, backoff: float = 0.1, sleep: Callable[[float], None] = time.sleep,
                 flush_timeout: float = FLUSH_TIMEOUT) -> None:
        self._repository = repository
        self._job_id = job_id
        self._on_error = on_error
        self._tries = tries
        self._backoff = Backoff(backoff, math.inf, no_jitter)
        self._sleep = sleep
        self._flush_timeout = flush_timeout
        self._queue: queue.SimpleQueue[ChunkEvent | _Marker] = queue.SimpleQueue()
        self.error: Exception | None = None
        self._stopped = threading.Event()  # set by the writer thread as it leaves
        self._thread = threading.Thread(target=self._loop, name=f"framefarm-writer-{job_id}", daemon=True)
        self._thread.start()

    def put(self, event: ChunkEvent) -> None:
        self._queue.put(event)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event put so far is stored (or dropped after a failure); False after
        ``timeout`` s (default: ``flush_timeout``). After close, or racing it, it returns as soon as
        the writer has left (see the module docstring)."""
        timeout = self._flush_timeout if timeout is None else timeout
        if self._stopped.is_set():
            return True
        marker = _Marker()
        self._queue.put(marker)
        if self._stopped.is_set() or marker.reached.wait(timeout):
            return True
        logger.warning("job %s: the job store writer is still behind after %g s", self._job_id, timeout)
        return False

    def close(self) -> None:
        """Write what is queued, then stop the thread. Safe to call twice."""
        if self._thread.is_alive():
            self._queue.put(_Marker(close=True))
            self._thread.join()

    def _loop(self) -> None:
        try:
            self._write_until_closed()
        finally:
            self._stopped.set()
            while True:  # answer the flushes queued behind the close marker
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    return
                if isinstance(item, _Marker):
                    item.reached.set()

    def _write_until_closed(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events = [item for item in batch if not isinstance(item, _Marker)]
            if events and self.error is None:
                self.error = self._write(_coalesce(events))
                if self.error is not None:
                    self._on_error(self.error)
            markers = [item for item in batch if isinstance(item, _Marker)]
            for marker in markers:  # all of them: a flush may have come in behind the close marker
                marker.reached.set()
            if any(marker.close for marker in markers):
                return

    def _write(self, events: list[ChunkEvent]) -> Exception | None:
        for attempt in range(1, self._tries + 1):
            try:
                self._repository.record_batch(self._job_id, events)
                return None
            except Exception as exc:
                if attempt == self._tries:
                    logger.error("job %s: giving up writing %d chunk events: %s", self._job_id, len(events), exc)
                    return exc
                logger.warning("job %s: job store write failed (try %d of %d): %s", self._job_id, attempt,
                               self._tries, exc)
                self._sleep(self._backoff.delay(attempt))
        return None


def _coalesce(batch: list[ChunkEvent]) -> list[ChunkEvent]:
    """Drop a start event whose attempt's result is in the same batch: the result carries its start
    time, so the stored record ends the same, with one write instead of two."""
    finished = {(event.chunk_id, event.attempt) for event in batch if isinstance(event, ChunkAttempt)}
    if not finished:
        return batch
    return [event for event in batch
            if not (isinstance(event, ChunkStarted) and (event.chunk_id, event.attempt) in finished)]
