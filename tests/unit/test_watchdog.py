"""Retry classes (transient vs deterministic) and the stuck-attempt watchdog of JobExecutor."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest

import framefarm.executor
from framefarm import CallableWorkerAdapter, ChunkFailedError, ExecutionOptions, JobExecutor, RetryPolicy, WorkerResult
from framefarm.cancel import CancelToken
from framefarm.failures import FailureKind
from framefarm.watchdog import AttemptThreads, Watchdog
from tests.helpers import eventually, hooks, make_spec, retry_at_once


class Attempts:
    """Records every attempt the executor reports: chunk id -> [(attempt, result)]."""

    def __init__(self) -> None:
        self.by_chunk: dict[int, list[tuple[int, WorkerResult]]] = defaultdict(list)
        self.completed: list[int] = []

    def options(self, tmp_path, retry: RetryPolicy | None = None, **extra) -> ExecutionOptions:
        return ExecutionOptions(job_dir=tmp_path, retry=retry or retry_at_once(), merge=False, hooks=hooks(
            attempt_finished=lambda chunk_id, attempt, result, *_: self.by_chunk[chunk_id].append((attempt, result)),
            chunk_completed=lambda chunk_id, result: self.completed.append(chunk_id)), **extra)


def failing(kind: str, times: int):
    """A worker whose chunk 0 fails ``times`` times, transiently or deterministically, then succeeds."""
    calls: dict[int, int] = defaultdict(int)

    def work(job):
        chunk_id = job.meta["chunk_id"]
        calls[chunk_id] += 1
        if chunk_id == 0 and calls[chunk_id] <= times:
            return WorkerResult(kind=FailureKind.CONNECTION_LOST, error="connection lost") if kind == "transient" \
                else WorkerResult(exit_code=1, stderr="render error\n")
        return 0

    return CallableWorkerAdapter(work), calls


def test_deterministic_failures_get_exactly_retries_more_attempts(tmp_path):
    # GIVEN chunk 0 exits 1 every time, with retries=2 and a large transient budget
    adapter, calls = failing("deterministic", 99)
    attempts = Attempts()
    # WHEN the job runs
    with pytest.raises(ChunkFailedError, match="Chunk 0 failed after 3 attempts: render error"):
        JobExecutor(adapter).execute(make_spec(2), attempts.options(tmp_path, retry_at_once(2, transient_retries=10)))
    # THEN the transient budget did not extend it: 3 attempts
    assert calls[0] == 3


def test_transient_failures_use_their_own_budget(tmp_path):
    # GIVEN chunk 0 loses its connection 3 times, with retries=0 and transient_retries=3
    adapter, calls = failing("transient", 3)
    attempts = Attempts()
    # WHEN the job runs
    JobExecutor(adapter).execute(make_spec(2), attempts.options(tmp_path, retry_at_once(0, transient_retries=3)))
    # THEN the 4th attempt succeeded and every attempt was reported once
    assert calls[0] == 4 and sorted(attempts.completed) == [0, 1]
    assert [(n, r.transient) for n, r in attempts.by_chunk[0]] == [(1, True), (2, True), (3, True), (4, False)]


def test_transient_failures_past_their_budget_fail_the_chunk(tmp_path):
    adapter, calls = failing("transient", 99)
    with pytest.raises(ChunkFailedError, match="Chunk 0 failed after 3 attempts: connection lost"):
        JobExecutor(adapter).execute(make_spec(1), Attempts().options(tmp_path, retry_at_once(5, transient_retries=2)))
    assert calls[0] == 3


def test_watchdog_gives_up_on_a_silent_attempt_retries_it_and_ignores_its_late_answer(tmp_path):
    # GIVEN chunk 0's first call never answers until its retry has run
    release = threading.Event()
    calls: dict[int, int] = defaultdict(int)

    def work(job):
        chunk_id = job.meta["chunk_id"]
        calls[chunk_id] += 1
        if chunk_id == 0 and calls[chunk_id] == 1:
            release.wait(30)
            return WorkerResult(exit_code=0, stdout="late\n")
        if chunk_id == 0:
            release.set()
        return 0

    attempts = Attempts()
    # WHEN the job runs one chunk at a time with a 0.2 s time limit and a 0.2 s margin
    JobExecutor(CallableWorkerAdapter(work)).execute(make_spec(3), attempts.options(
        tmp_path, concurrency=1, timeout=0.2, watchdog_margin=0.2))
    # THEN the stuck call was given up on (a transient failure), a fresh thread ran the rest,
    # and chunk 0 completed once, by its second attempt
    first, second = attempts.by_chunk[0]
    assert first[1].kind is FailureKind.TIMEOUT and first[1].exit_code is None and "watchdog gave up" in first[1].error
    assert second[0] == 2 and second[1].ok
    assert sorted(attempts.completed) == [0, 1, 2]


def test_watchdog_fails_a_chunk_that_never_answers(tmp_path):
    # GIVEN a worker that never answers chunk 0, and no transient retries
    never = threading.Event()

    def work(job):
        if job.meta["chunk_id"] == 0:
            never.wait()
        return 0

    attempts = Attempts()
    # WHEN the job runs, THEN it fails with the watchdog's reason instead of hanging
    with pytest.raises(ChunkFailedError, match=r"Chunk 0 failed after 1 attempt: timed out: no result .* watchdog gave up"):
        JobExecutor(CallableWorkerAdapter(work)).execute(make_spec(2), attempts.options(
            tmp_path, retry_at_once(transient_retries=0), concurrency=2, timeout=0.1, watchdog_margin=0.1))
    assert attempts.completed == [1]
    never.set()


def test_silence_is_measured_from_the_last_call(tmp_path):
    # GIVEN a worker that is throttled for 0.6 s (calling again every 0.1 s) before a quick answer
    def work(job):
        for _ in range(6):
            job.on_sent()
            time.sleep(0.1)
        job.on_sent()
        return 0

    attempts = Attempts()
    # WHEN the watchdog allows 0.3 s of silence
    JobExecutor(CallableWorkerAdapter(work)).execute(make_spec(1), attempts.options(
        tmp_path, retry_at_once(transient_retries=0), timeout=0.15, watchdog_margin=0.15))
    # THEN the attempt was never given up on
    assert [(n, r.ok) for n, r in attempts.by_chunk[0]] == [(1, True)]


def test_without_a_time_limit_there_is_no_watchdog(tmp_path):
    attempts = Attempts()
    JobExecutor(CallableWorkerAdapter(lambda job: time.sleep(0.3))).execute(
        make_spec(1), attempts.options(tmp_path, watchdog_margin=0))
    assert attempts.completed == [0]


def test_attempt_threads_start_as_work_arrives_and_reuse_idle_ones():
    # GIVEN a pool that may grow to 50 threads
    pool = AttemptThreads(50)
    try:
        # WHEN tasks arrive one after another, each done before the next
        for _ in range(5):
            done = threading.Event()
            pool.submit(done.set)
            assert done.wait(10)
            eventually(lambda: pool._idle == 1, interval=0.001, what="the thread waiting again")
        started_for_sequential = len(pool._threads)
        # AND then 3 tasks run at once
        release, running = threading.Event(), threading.Semaphore(0)
        for _ in range(3):
            pool.submit(lambda: (running.release(), release.wait(10)))
        for _ in range(3):
            assert running.acquire(timeout=10)
        release.set()
    finally:
        pool.shutdown()
    # THEN one thread served the sequential tasks, and only as many more started as ran at once
    assert started_for_sequential == 1
    assert len(pool._threads) == 3


def test_an_answer_racing_the_watchdog_wins_and_every_pool_thread_ends(tmp_path, monkeypatch):
    # GIVEN a call that answers just as the watchdog gives up on it, its thread already waiting for
    # more work by the time the verdict is acted on
    pools: list[AttemptThreads] = []

    class SeenPool(AttemptThreads):
        def __init__(self, size: int) -> None:
            super().__init__(size)
            pools.append(self)

    answer = threading.Event()

    def verdict_as_it_answers(watchdog, live):
        if live.silent_since is None or answer.is_set():
            return None
        answer.set()
        eventually(lambda: pools[0]._idle == 1, interval=0.001, what="the attempt's thread waiting for work")
        return WorkerResult(kind=FailureKind.TIMEOUT, error="timed out (injected)")

    monkeypatch.setattr(framefarm.executor, "AttemptThreads", SeenPool)
    monkeypatch.setattr(Watchdog, "verdict", verdict_as_it_answers)
    attempts = Attempts()
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(JobExecutor(CallableWorkerAdapter(lambda job: (answer.wait(30), 0)[1])).execute(
                make_spec(1), attempts.options(tmp_path, retry_at_once(transient_retries=0), timeout=0.05,
                                                watchdog_margin=0)))
        except Exception as exc:
            outcome.append(exc)

    # WHEN the job runs
    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(30)
    # THEN execute returned and no pool thread is left waiting for work (the answered thread used to be
    # retired while idle; shutdown sent one stop for the replacement, and whichever of the two took it,
    # the other waited for ever: in shutdown's join, or as a leaked thread)
    assert not runner.is_alive(), "execute() hung in the pool's shutdown"
    eventually(lambda: not any(thread.is_alive() for thread in pools[0]._threads), timeout=10,
               what="every pool thread gone")
    # AND the answer counted: the attempt was not given up on
    assert not isinstance(outcome[0], Exception), outcome[0]
    assert [(n, r.ok) for n, r in attempts.by_chunk[0]] == [(1, True)]


def test_retiring_an_attempt_replaces_only_the_thread_still_running_it():
    # GIVEN a one-thread pool whose first task blocks until released
    pool = AttemptThreads(1)
    release, started = threading.Event(), threading.Event()
    stuck, done = object(), object()
    pool.submit(lambda: (started.set(), release.wait(30)), stuck)
    assert started.wait(10)
    # WHEN the running attempt is retired, THEN a new thread runs the next task while it is stuck
    assert pool.retire(stuck) is True
    ran = threading.Event()
    pool.submit(ran.set, done)
    assert ran.wait(10)
    eventually(lambda: pool._idle == 1, interval=0.001, what="the new thread waiting again")
    # AND retiring an attempt that has already answered changes nothing
    assert pool.retire(done) is False and len(pool._threads) == 2
    # AND shutdown stops the live thread without waiting for the stuck one, which leaves once released
    shut = threading.Thread(target=pool.shutdown, daemon=True)
    shut.start()
    shut.join(10)
    assert not shut.is_alive(), "shutdown() waited for the retired thread"
    release.set()
    eventually(lambda: not any(thread.is_alive() for thread in pool._threads), timeout=10, what="every thread gone")


def test_a_run_keeps_no_attempt_tokens_once_their_attempts_end(tmp_path):
    # GIVEN a run with a watchdog (each attempt gets a child of the run's token)
    parent = CancelToken()
    JobExecutor(CallableWorkerAdapter(lambda job: WorkerResult(exit_code=0))).execute(
        make_spec(50), ExecutionOptions(job_dir=tmp_path, concurrency=8, timeout=60, merge=False, cancel=parent))
    # THEN the run's token no longer holds the 50 attempts' tokens
    (run_token,) = parent._children
    assert run_token._children == set()
