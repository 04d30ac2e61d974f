"""Giving up on silent attempts, so a hung call never leaves a job running.

``Watchdog`` decides when an attempt has been silent too long; ``AttemptThreads`` is the executor's
pool of worker threads, which replaces a thread stuck in a call the watchdog gave up on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from framefarm.adapters.base import WorkerAdapter, WorkerResult
from framefarm.cancel import CancelToken
from framefarm.failures import FailureKind
from framefarm.spec import Chunk

if TYPE_CHECKING:
    from framefarm.options import ExecutionOptions


@dataclass(eq=False)
class LiveAttempt:
    """An attempt handed to the pool: its own cancel token, and when its call last went out."""

    chunk: Chunk
    attempt: int
    token: CancelToken
    started_at: float = 0.0
    silent_since: float | None = None  # time.monotonic() of the last call; None until the attempt starts

    def sent(self) -> None:
        self.silent_since = time.monotonic()


@dataclass(frozen=True)
class Watchdog:
    """Gives up on an attempt whose call has been silent for its time limit plus a margin.

    The limit is ``ExecutionOptions.timeout``, else the adapter's ``call_timeout`` (a Lambda
    function's or a Cloud Run service's own timeout); with neither, there is no watchdog. Silence
    is measured from the last time the call went out (``WorkerJob.on_sent``), so throttle waits
    inside an adapter do not count. The attempt given up on is a ``timeout`` (a transient failure),
    retried or failed like any other, and whatever it answers later is ignored.
    """

    limit: float | None
    margin: float

    @classmethod
    def for_run(cls, options: ExecutionOptions, adapter: WorkerAdapter) -> Watchdog:
        limit = options.timeout if options.timeout is not None else getattr(adapter, "call_timeout", None)
        return cls(limit, options.watchdog_margin)

    def next_deadline(self, live: Collection[LiveAttempt]) -> float | None:
        """When to look again (time.monotonic()); None when nothing can go stuck.

        O(attempts), so the executor works it out only after it looked: until then the answer can
        only move later (an attempt ends, or its call goes out again; a new one starts a full
        allowance from now), which makes the old one a safe, early time to look.
        """
        if self.limit is None or not live:
            return None
        patience = self.limit + self.margin
        # an attempt not started yet cannot expire before a full limit from now
        return min((item.silent_since + patience if item.silent_since is not None else time.monotonic() + patience)
                   for item in live)

    def verdict(self, live: LiveAttempt) -> WorkerResult | None:
        """A timed-out result when ``live`` has been silent too long, else None."""
        if self.limit is None or live.silent_since is None:
            return None
        silence = time.monotonic() - live.silent_since
        if silence < self.limit + self.margin:
            return None
        return WorkerResult(kind=FailureKind.TIMEOUT, duration_ms=silence * 1000.0,
                            error=f"timed out: no result {silence:.1f} s after the call (time limit {self.limit:g} s + "
                                  f"watchdog margin {self.margin:g} s); the watchdog gave up on this attempt")


class AttemptThreads:
    """Up to ``size`` live worker threads, started as work arrives (as ThreadPoolExecutor does, so the
    first chunks go out while later threads start). A thread stuck in a call the watchdog gave up on
    is replaced at once, and exits when (if ever) that call returns, so stuck calls never starve the job.

    The pool knows which attempt each thread runs (from before its task starts until after it ends),
    so ``retire`` gives up on an attempt, never on a thread that has since answered and moved on to
    other work or to waiting for it: such a thread would take a stop meant for another at shutdown.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._tasks: queue.SimpleQueue[tuple[Hashable | None, Callable[[], None]] | None] = queue.SimpleQueue()
        self._running: dict[Hashable, threading.Thread] = {}  # attempt -> the thread running it
        self._retired: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._live = 0  # threads started and not retired
        self._idle = 0  # live threads waiting for a task and not yet promised one

    def submit(self, task: Callable[[], None], attempt: Hashable | None = None) -> None:
        """Run ``task`` on a pool thread; ``attempt`` names it for ``retire``."""
        self._tasks.put((attempt, task))
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # a waiting thread takes it
                return
            if self._live >= self._size:
                return  # the next thread to finish takes it
            self._live += 1
        self._spawn()

    def retire(self, attempt: Hashable) -> bool:
        """Give up on ``attempt``: the thread running it leaves when (if ever) its task returns, and a
        new thread takes its place. False, changing nothing, when no thread runs it any more (its
        task has returned, so whatever it reports is already out)."""
        with self._lock:
            thread = self._running.pop(attempt, None)
            if thread is None:
                return False
            self._retired.add(thread)
        self._spawn()  # takes the retired thread's place in ``_live``
        return True

    def shutdown(self) -> None:
        with self._lock:
            live = [thread for thread in self._threads if thread not in self._retired]
        for _ in live:
            self._tasks.put(None)
        for thread in live:
            thread.join()

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work, name="framefarm-chunk", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            item = self._tasks.get()
            if item is None:
                return
            attempt, task = item
            if attempt is not None:
                with self._lock:
                    self._running[attempt] = me
            task()
            with self._lock:
                if attempt is not None:
                    self._running.pop(attempt, None)  # unless retire() took it already
                if me in self._retired:
                    return
                self._idle += 1
