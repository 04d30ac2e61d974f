"""JobManager: states, what the store shows during and after a run, control from anywhere."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from framefarm import (
    ExecutionOptions,
    InMemoryJobRepository,
    JobExecutor,
    JobManager,
    JobRecord,
    JobState,
    LocalStorage,
    SqliteJobRepository,
)
from framefarm.cancel import CancelToken
from framefarm.config import HANDOVER
from framefarm.errors import JobNotFoundError, JobStateError
from framefarm.lease import Lease, _pid_namespace
from framefarm.status import TAIL_CHARS, ChunkState
from framefarm.storage.keys import chunk_key, log_key
from tests.helpers import RecordingStitcher, ScriptedWorker, eventually, make_spec, retry_at_once


@pytest.fixture
def store(tmp_path):
    repository = SqliteJobRepository(tmp_path / "jobs.db")
    yield repository
    repository.close()


def manager_for(worker: ScriptedWorker, store, tmp_path, **kwargs) -> JobManager:
    return JobManager(store, JobExecutor(worker.adapter()), LocalStorage(tmp_path / "artifacts"), **kwargs)


def test_states_progress_and_metrics_through_a_run(store, tmp_path):
    # GIVEN a manager whose chunks and stitcher look at the store while they run
    seen = {}
    worker = ScriptedWorker()
    manager = manager_for(worker, store, tmp_path)
    worker.hooks[3] = lambda job: seen.update(during=manager.get_job("job"))

    class PeekingStitcher(RecordingStitcher):
        def stitch(self, inputs, output, audio=None):
            seen["stitching"] = manager.get_job("job").state
            return super().stitch(inputs, output, audio)

    created = manager.create_job(make_spec(5, job_id="job"))
    assert created.state is JobState.PENDING and created.progress == 0
    # WHEN the job runs one chunk at a time
    summary = manager.run_job("job", ExecutionOptions(stitcher=PeekingStitcher(), output_file=tmp_path / "o.mp4"))
    final = manager.get_job("job")
    assert summary.chunks == [] and summary.state is final.state
    # THEN the store showed it running with 3 of 5 chunks done while chunk 3 ran, then stitching, then completed
    during = seen["during"]
    assert during.state is JobState.RUNNING and during.completed_chunks == 3 and during.progress == 60.0
    assert during.chunk(3).state is ChunkState.RUNNING
    assert seen["stitching"] is JobState.STITCHING
    assert final.state is JobState.COMPLETED and final.progress == 100.0
    assert final.output == str(tmp_path / "o.mp4")
    # AND the job's totals are the sums of its chunk records
    assert final.metrics.total_duration_ms == sum(c.duration_ms for c in final.chunks) == 10 + 11 + 12 + 13 + 14
    assert [c.stdout_tail for c in final.chunks] == [f"rendered chunk {i}\n" for i in range(5)]
    assert all(c.attempts == 1 and c.state is ChunkState.COMPLETED for c in final.chunks)


def test_failed_chunk_fails_the_job_and_keeps_its_stderr(store, tmp_path):
    worker = ScriptedWorker(fail={2: 99})
    manager = manager_for(worker, store, tmp_path)
    manager.create_job(make_spec(4, job_id="job"))
    manager.run_job("job", ExecutionOptions(retry=retry_at_once(1)))
    final = manager.get_job("job")
    assert final.state is JobState.FAILED
    assert final.error == "Chunk 2 failed after 2 attempts: boom in chunk 2 attempt 2"
    failed = final.chunk(2)
    assert (failed.state, failed.attempts, failed.stderr_tail) == (ChunkState.FAILED, 2, "boom in chunk 2 attempt 2\n")
    assert failed.error == "exit code 1"
    assert final.metrics.failed_attempts == 2
    assert final.completed_chunks == sum(c.state is ChunkState.COMPLETED for c in final.chunks) == 2


def test_resume_after_failure_continues_attempt_numbers_and_skips_completed(store, tmp_path):
    # GIVEN a job that failed at chunk 1 on its first try
    worker = ScriptedWorker(fail={1: 1})
    manager = manager_for(worker, store, tmp_path)
    manager.create_job(make_spec(3, job_id="job"))
    assert manager.run_job("job").state is JobState.FAILED
    # WHEN it is resumed
    assert manager.resume_job("job", ExecutionOptions(), background=False).state is JobState.RENDERED
    # THEN only chunks 1 and 2 ran again, chunk 1's record shows both attempts
    final = manager.get_job("job")
    assert worker.calls == {0: 1, 1: 2, 2: 1}
    assert final.chunk(1).attempts == 2 and final.metrics.failed_attempts == 1


def test_remote_workers_are_told_the_attempt_number_the_store_records_across_resumes(store, tmp_path):
    from framefarm.protocol import chunk_request

    # GIVEN a job whose chunk 1 fails on its first try, and what a remote worker would be sent for it
    storage = LocalStorage(tmp_path / "artifacts")
    sent = []
    worker = ScriptedWorker(fail={1: 1}, hooks={1: lambda job: sent.append(chunk_request(job, storage)["attempt"])})
    manager = JobManager(store, JobExecutor(worker.adapter()), storage)
    manager.create_job(make_spec(3, job_id="job"))
    assert manager.run_job("job").state is JobState.FAILED
    # WHEN it is resumed (a new run, whose executor counts attempts from 1 again)
    assert manager.resume_job("job", ExecutionOptions(), background=False).state is JobState.RENDERED
    # THEN the second call carried attempt 2, the number its record holds (and its full logs' key uses)
    assert sent == [1, 2] and manager.get_job("job").chunk(1).attempts == 2


def test_pause_then_resume_runs_every_chunk_exactly_once(store, tmp_path):
    # GIVEN chunk 3 pauses the job while it runs (two in flight), and later chunks wait for that
    worker = ScriptedWorker()
    manager = manager_for(worker, store, tmp_path)
    paused_requested = threading.Event()
    worker.hooks[3] = lambda job: (manager.pause_job("job"), paused_requested.set())
    worker.hooks.update({i: (lambda job: paused_requested.wait(30)) for i in range(4, 10)})
    manager.submit_job(make_spec(10, job_id="job"), ExecutionOptions(concurrency=2))
    paused = manager.wait("job", timeout=30)
    assert paused.state is JobState.PAUSED and paused.completed_chunks <= 5
    # WHEN it is resumed
    worker.hooks.clear()
    manager.resume_job("job")
    final = manager.wait("job", timeout=30)
    # THEN it completed and every chunk ran exactly once
    assert final.state is JobState.RENDERED
    assert worker.calls == {i: 1 for i in range(10)}


def test_cancel_kills_and_marks_cancelled(store, tmp_path):
    worker = ScriptedWorker()
    manager = manager_for(worker, store, tmp_path)
    worker.hooks[1] = lambda job: (manager.cancel_job("job"), job.cancel.wait(30))
    manager.submit_job(make_spec(5, job_id="job"))
    final = manager.wait("job", timeout=30)
    assert final.state is JobState.CANCELLED and final.error == "Job cancelled"
    assert worker.order == [0, 1]


def test_cancel_from_another_process_reaches_the_runner_through_the_store(tmp_path):
    # GIVEN a job running in "process A", with a chunk that runs until it is cancelled
    worker = ScriptedWorker()
    runner = manager_for(worker, SqliteJobRepository(tmp_path / "jobs.db"), tmp_path, heartbeat_interval=0.05)
    started = threading.Event()
    worker.hooks[0] = lambda job: (started.set(), job.cancel.wait(30))
    runner.submit_job(make_spec(3, job_id="job"))
    assert started.wait(30)
    # WHEN "process B" (its own manager and connection) cancels it
    other = manager_for(ScriptedWorker(), SqliteJobRepository(tmp_path / "jobs.db"), tmp_path)
    assert other.cancel_job("job").pending_action == "cancel"
    # THEN the runner stops within a heartbeat and the request is cleared
    final = runner.wait("job", timeout=30)
    assert final.state is JobState.CANCELLED and final.pending_action is None
    assert worker.order == [0]


def test_a_job_whose_runner_died_can_be_resumed(store, tmp_path):
    # GIVEN a job left "running" by a runner on another host that died (its lease runs out at 1015)
    now = [1000.0]
    worker = ScriptedWorker()
    manager = manager_for(worker, store, tmp_path, clock=lambda: now[0], stale_after=15.0)
    manager.create_job(make_spec(3, job_id="job"))
    store.take_lease("job", Lease("elsewhere:1:dead", 1015.0), now=1000.0, expected={JobState.PENDING})
    with pytest.raises(JobStateError, match="runner is alive"):
        manager.resume_job("job")
    # WHEN enough time passes and it is resumed
    now[0] = 1100.0
    final = manager.resume_job("job", background=False)
    # THEN it completes
    assert final.state is JobState.RENDERED and worker.calls == {0: 1, 1: 1, 2: 1}


def test_cancel_of_a_job_whose_runner_died_marks_it_cancelled_directly(store, tmp_path):
    now = [1000.0]
    manager = manager_for(ScriptedWorker(), store, tmp_path, clock=lambda: now[0])
    manager.create_job(make_spec(2, job_id="job"))
    store.set_state("job", JobState.RUNNING, now=1000.0)
    now[0] = 2000.0
    assert manager.cancel_job("job").state is JobState.CANCELLED


def test_retry_renders_exactly_the_chosen_chunks_of_a_completed_job_and_stitches_again(store, tmp_path):
    # GIVEN a completed, stitched job of 4 chunks
    worker = ScriptedWorker()
    manager = manager_for(worker, store, tmp_path)
    stitcher = RecordingStitcher()
    options = ExecutionOptions(stitcher=stitcher, output_file=tmp_path / "o.mp4")
    manager.create_job(make_spec(4, job_id="job"))
    assert manager.run_job("job", options).state is JobState.COMPLETED
    paid = manager.get_job("job").metrics.total_duration_ms
    # WHEN chunks 1 and 3 are retried
    final = manager.retry_chunks("job", [3, 1], options, background=False)
    # THEN only they ran again, as second attempts, and the job was stitched again
    assert final.state is JobState.COMPLETED and final.completed_chunks == 4
    assert worker.calls == {0: 1, 1: 2, 2: 1, 3: 2}
    job = manager.get_job("job")
    assert [record.attempts for record in job.chunks] == [1, 2, 1, 2]
    assert len(stitcher.calls) == 2
    # AND what the first run cost stays on the job, with the retried attempts added
    assert job.metrics.total_duration_ms == paid + 11 + 13 == sum(record.duration_ms for record in job.chunks)


def test_retrying_a_chunk_of_a_failed_job_also_runs_its_unfinished_ones(store, tmp_path):
    # GIVEN a job whose chunk 2 failed
    worker = ScriptedWorker(fail={2: 1})
    manager = manager_for(worker, store, tmp_path)
    manager.create_job(make_spec(3, job_id="job"))
    assert manager.run_job("job").state is JobState.FAILED
    # WHEN its completed chunk 0 is retried
    final = manager.retry_chunks("job", [0], background=False)
    # THEN chunk 0 ran again and chunk 2, never completed, ran too, as a resume would
    assert final.state is JobState.RENDERED and final.error is None
    assert worker.calls == {0: 2, 1: 1, 2: 2}


def test_retry_refuses_a_running_job_a_pending_one_and_unknown_chunks(store, tmp_path):
    # GIVEN a job running here, its chunk 0 holding it, and a pending job
    worker = ScriptedWorker()
    manager = manager_for(worker, store, tmp_path)
    release = threading.Event()
    worker.hooks[0] = lambda job: release.wait(30)
    manager.submit_job(make_spec(2, job_id="busy"))
    worker.wait_for(lambda w: w.calls[0] == 1)
    manager.create_job(make_spec(4, job_id="idle"))
    # WHEN chunks are retried THEN each is refused, in one line, and nothing was reopened
    with pytest.raises(JobStateError, match=r"^job 'busy' is running and its runner is alive; cancel or pause it"):
        manager.retry_chunks("busy", [0])
    with pytest.raises(JobStateError, match=r"^job 'idle' is pending: no chunk has run yet; resume it instead$"):
        manager.retry_chunks("idle", [0])
    with pytest.raises(JobStateError, match=r"^job 'idle' has no chunks 4, 9 \(its chunk ids run 0-3\)$"):
        manager.retry_chunks("idle", [9, 1, 4])
    release.set()
    assert manager.wait("busy", timeout=30).state is JobState.RENDERED
    assert worker.calls == {0: 1, 1: 1}


def test_pending_and_finished_jobs(store, tmp_path):
    manager = manager_for(ScriptedWorker(), store, tmp_path)
    manager.create_job(make_spec(2, job_id="job"))
    assert manager.pause_job("job").state is JobState.PAUSED
    with pytest.raises(JobStateError, match="already exists"):
        manager.create_job(make_spec(2, job_id="job"))
    # a run without a merge ends rendered: its chunks are done, no video claimed
    assert manager.resume_job("job", background=False).state is JobState.RENDERED
    with pytest.raises(JobStateError, match="already rendered"):
        manager.cancel_job("job")
    store.set_state("job", JobState.COMPLETED, now=time.time(), expected={JobState.RENDERED})  # as `stitch` does
    with pytest.raises(JobStateError, match="completed; nothing to resume"):
        manager.resume_job("job")
    with pytest.raises(JobStateError, match="already completed"):
        manager.cancel_job("job")
    with pytest.raises(JobNotFoundError, match="No job 'nope'"):
        manager.cancel_job("nope")


def test_long_output_goes_to_storage_in_full_and_delete_removes_everything(store, tmp_path):
    # GIVEN a chunk whose output is longer than a record's tail
    long_text = "x" * (TAIL_CHARS * 2) + "END\n"
    worker = ScriptedWorker(stdout=lambda chunk_id: long_text if chunk_id == 1 else "short\n")
    storage = LocalStorage(tmp_path / "artifacts")
    manager = JobManager(store, JobExecutor(worker.adapter()), storage)
    manager.create_job(make_spec(2, job_id="job"))
    manager.run_job("job")
    final = manager.get_job("job")
    # THEN the record keeps a bounded tail and storage keeps it all
    assert len(final.chunk(1).stdout_tail) == TAIL_CHARS and final.chunk(1).stdout_tail.endswith("END\n")
    assert storage.get_text(log_key("job", 1, 1, "stdout")) == long_text
    assert not storage.exists(log_key("job", 0, 1, "stdout"))
    # WHEN the job is deleted THEN its records and artifacts are gone
    assert manager.delete_job("job") is True
    assert manager.get_job("job") is None and storage.list("jobs/job/") == []


def test_list_jobs_newest_first(store, tmp_path):
    now = [1.0]
    manager = manager_for(ScriptedWorker(), store, tmp_path, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        manager.create_job(make_spec(1, job_id=name))
        now[0] += 1
    assert [job.id for job in manager.list_jobs()] == ["c", "b", "a"]


def test_job_store_failure_stops_the_job_with_a_clear_error(tmp_path):
    # GIVEN a store that accepts jobs but cannot record chunk results
    class FullDisk(SqliteJobRepository):
        def record_batch(self, job_id, events):
            raise OSError("disk full")

    store = FullDisk(tmp_path / "jobs.db")
    worker = ScriptedWorker()
    manager = JobManager(store, JobExecutor(worker.adapter()), LocalStorage(tmp_path / "a"), sleep=lambda s: None)
    manager.create_job(make_spec(50, job_id="job"))
    # WHEN a job runs
    final = manager.run_job("job", ExecutionOptions(concurrency=4))
    # THEN the job failed, saying why, and stopped dispatching early
    assert final.state is JobState.FAILED
    assert final.error == "job store write failed: disk full"
    assert len(worker.order) < 50


# -- one owner per run ---------------------------------------------------------------------------


def test_a_runner_whose_lease_is_taken_stops_within_a_heartbeat(store, tmp_path):
    # GIVEN a job running one chunk at a time, its runner renewing every 0.05 s
    worker = ScriptedWorker()
    runner = manager_for(worker, store, tmp_path, heartbeat_interval=0.05, stale_after=60.0)
    stolen = threading.Event()
    worker.hooks[1] = lambda job: stolen.wait(30)
    token = CancelToken()
    runner.submit_job(make_spec(6, job_id="job"), ExecutionOptions(cancel=token))
    worker.wait_for(lambda w: w.calls[1] == 1)
    # WHEN another runner takes the lease (as if this one had gone silent past it)
    later = time.time() + 3600  # past the runner's lease
    thief = Lease("elsewhere:1:thief", later + 60)
    assert store.take_lease("job", thief, now=later, expected={JobState.RUNNING})
    # THEN the runner stops dispatching at its next beat; its chunk in flight finishes and is recorded
    eventually(lambda: token.stopping, timeout=5, what="the runner to stop dispatching")
    assert token.reason == "lease lost"
    stolen.set()
    final = runner.wait("job", timeout=30)
    assert worker.order == [0, 1]
    # AND it writes no final state over the new owner's run
    assert final.state is JobState.RUNNING and final.lease_owner == thief.owner
    assert store.get("job").chunk(1).state is ChunkState.COMPLETED


def test_two_starts_of_one_job_run_it_once(store, tmp_path):
    # GIVEN a pending job and two managers (two processes' worth) on one store
    worker = ScriptedWorker()
    first, second = manager_for(worker, store, tmp_path), manager_for(worker, store, tmp_path)
    first.create_job(make_spec(3, job_id="job"))
    entered = threading.Event()
    release = threading.Event()
    worker.hooks[0] = lambda job: (entered.set(), release.wait(30))
    first.resume_job("job")  # starts it in the background
    assert entered.wait(30)
    # WHEN the second tries to run it too, THEN it is refused, naming the holder
    with pytest.raises(JobStateError, match="running; it cannot be started"):
        second.run_job("job")
    with pytest.raises(JobStateError, match="runner is alive"):
        second.resume_job("job")
    release.set()
    assert first.wait("job", timeout=30).state is JobState.RENDERED
    assert worker.calls == {0: 1, 1: 1, 2: 1}


def handed_over(store, tmp_path, chunks: int) -> tuple[ScriptedWorker, JobManager, JobRecord]:
    """A job whose run handed over after its first chunk (the orchestrator's deadline): its worker,
    manager and the run's summary."""
    worker = ScriptedWorker()
    manager = manager_for(worker, store, tmp_path)
    manager.create_job(make_spec(chunks, job_id="job"))
    token = CancelToken()
    worker.hooks[0] = lambda job: token.drain(HANDOVER)
    return worker, manager, manager.run_job("job", ExecutionOptions(cancel=token))


def test_a_handed_over_job_continues_once_per_token(store, tmp_path):
    # GIVEN a run that hands over after its first chunk (the orchestrator's deadline)
    worker, manager, summary = handed_over(store, tmp_path, 4)
    successor = manager.handover_token("job")
    assert summary.state is JobState.RUNNING and successor is not None and successor.startswith("handover:")
    # WHEN its continuation arrives twice
    final = manager.continue_job("job", handed_by=successor)
    with pytest.raises(JobStateError):
        manager_for(worker, store, tmp_path).continue_job("job", handed_by=successor)
    # THEN the job ran each chunk once and finished
    assert final.state is JobState.RENDERED and final.lease_owner is None
    assert worker.calls == {0: 1, 1: 1, 2: 1, 3: 1}


def test_a_request_made_during_a_hand_over_is_honoured_by_the_continuation(store, tmp_path):
    worker, manager, _ = handed_over(store, tmp_path, 3)
    assert store.ask_runner("job", "cancel", now=time.time())
    final = manager.continue_job("job", handed_by=manager.handover_token("job"))
    assert final.state is JobState.CANCELLED and worker.calls == {0: 1}


def test_a_failure_after_the_run_started_ends_the_job_failed(store, tmp_path):
    # GIVEN storage that fails as the run starts (clearing an old cancel marker)
    class BrokenStorage(LocalStorage):
        def delete_prefix(self, prefix):
            raise OSError("storage unreachable")

    manager = JobManager(store, JobExecutor(ScriptedWorker().adapter()), BrokenStorage(tmp_path / "a"))
    # WHEN a job is submitted in the background
    manager.submit_job(make_spec(2, job_id="job"))
    # THEN waiting for it ends with the job failed and the reason, its lease released
    final = manager.wait("job", timeout=30)
    assert final.state is JobState.FAILED and final.error == "OSError: storage unreachable"
    assert final.lease_owner is None


def test_a_log_that_cannot_be_kept_does_not_fail_the_job(store, tmp_path):
    class NoRoomForLogs(LocalStorage):
        def put_text(self, key, text):
            raise OSError("No space left on device")

    worker = ScriptedWorker(stdout=lambda chunk_id: "x" * (TAIL_CHARS + 10))
    manager = JobManager(store, JobExecutor(worker.adapter()), NoRoomForLogs(tmp_path / "a"))
    manager.create_job(make_spec(2, job_id="job"))
    final = manager.run_job("job")
    assert final.state is JobState.RENDERED
    assert manager.get_job("job").chunk(1).stdout_tail.endswith("x")


def test_cancel_of_a_job_whose_runner_process_is_gone_takes_effect_at_once(store, tmp_path):
    # GIVEN a job whose lease (valid for an hour) belongs to a process on this host that has exited
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    manager = manager_for(ScriptedWorker(), store, tmp_path, clock=lambda: 1000.0)
    manager.create_job(make_spec(2, job_id="job"))
    owner = f"{socket.gethostname()}:{dead.pid}:{_pid_namespace()}.0:x"
    store.take_lease("job", Lease(owner, 4600.0), now=1000.0, expected={JobState.PENDING})
    # WHEN it is cancelled, THEN it is cancelled now, not after the lease runs out
    assert manager.cancel_job("job").state is JobState.CANCELLED


def test_a_retried_create_with_the_same_client_token_returns_the_first_job(store, tmp_path):
    manager = manager_for(ScriptedWorker(), store, tmp_path)
    spec = make_spec(2, job_id="job")
    first, created = manager.create_job_once(spec, client_token="token-1")
    again, created_again = manager.create_job_once(spec, client_token="token-1")
    assert (created, created_again) == (True, False) and again.created_at == first.created_at
    with pytest.raises(JobStateError, match="already exists"):
        manager.create_job(spec, client_token="token-2")
    with pytest.raises(JobStateError, match="already exists"):
        manager.create_job(spec)


def test_a_run_that_leaves_its_chunks_for_stitching_releases_the_job(store, tmp_path):
    # GIVEN a run that renders the chunks only (the AWS flow, `--no-stitch`)
    manager = manager_for(ScriptedWorker(), store, tmp_path)
    manager.create_job(make_spec(2, job_id="job"))
    final = manager.run_job("job", ExecutionOptions(merge=False))
    # THEN nothing holds the job: another process may resume or stitch it at once
    assert final.state is JobState.RENDERED and final.lease_owner is None
    assert manager_for(ScriptedWorker(), store, tmp_path).is_stale(final)


def test_polling_get_job_while_jobs_finish_never_hangs(store, tmp_path):
    # GIVEN a manager that runs 60 small jobs, one after another, in the background
    manager = manager_for(ScriptedWorker(), store, tmp_path)
    finished: list[JobState] = []

    def submit_and_poll() -> None:
        for n in range(60):
            job_id = manager.submit_job(make_spec(2, job_id=f"job-{n}"), ExecutionOptions(
                stitcher=RecordingStitcher(), output_file=tmp_path / f"{n}.mp4"))
            # WHEN a caller polls each one as fast as it can while it finishes
            while (job := manager.get_job(job_id)).state is not JobState.COMPLETED:
                assert job.state in (JobState.PENDING, JobState.RUNNING, JobState.STITCHING), job.error
            finished.append(job.state)

    poller = threading.Thread(target=submit_and_poll, daemon=True)
    poller.start()
    poller.join(120)
    # THEN every poll returned (get_job used to hang on a writer closing under it) and every job completed
    assert not poller.is_alive(), f"get_job hung after {len(finished)} jobs had finished"
    assert finished == [JobState.COMPLETED] * 60


def test_a_runner_whose_renewal_hangs_past_its_lease_stops_dispatching():
    # GIVEN a store whose lease renewal hangs (a busy database file, a call waiting out its timeout)
    hung, release = threading.Event(), threading.Event()

    class HangingRenewal(InMemoryJobRepository):
        def renew_lease(self, job_id, lease, *, now):
            hung.set()
            release.wait(30)
            return super().renew_lease(job_id, lease, now=now)

    store, now, worker, gate = HangingRenewal(), [1000.0], ScriptedWorker(), threading.Semaphore(0)
    for chunk_id in range(1, 20):
        worker.hooks[chunk_id] = lambda job: gate.acquire(timeout=30)
    runner = JobManager(store, JobExecutor(worker.adapter()), clock=lambda: now[0], heartbeat_interval=0.05,
                        stale_after=10.0)
    token = CancelToken()
    runner.submit_job(make_spec(20, job_id="job"), ExecutionOptions(cancel=token))
    assert hung.wait(10)
    # WHEN its lease runs out by its own clock and another runner takes the job
    now[0] = 2000.0
    assert store.take_lease("job", Lease("elsewhere:1:next", 2015.0), now=2000.0, expected={JobState.RUNNING})
    # THEN it stops dispatching though its renewal never answered, and writes nothing over the new owner
    eventually(lambda: token.stopping, timeout=10, what="the runner to stop dispatching")
    gate.release(20)
    final = runner.wait("job", timeout=30)
    release.set()
    assert sum(worker.calls.values()) <= 2, worker.order
    assert final.lease_owner == "elsewhere:1:next" and final.state is JobState.RUNNING


def test_a_cancel_that_lands_after_the_job_failed_does_not_cancel_its_next_resume(tmp_path):
    # GIVEN a job that failed, and a `framefarm cancel` that looked while it was still running
    store = SqliteJobRepository(tmp_path / "jobs.db")
    worker, seen = ScriptedWorker(fail={2: 1}), {}
    runner = JobManager(store, JobExecutor(worker.adapter()))
    worker.hooks[1] = lambda job: seen.update(running=store.get("job", chunks=False))
    runner.create_job(make_spec(3, job_id="job"))
    assert runner.run_job("job").state is JobState.FAILED
    canceller = JobManager(store, JobExecutor(worker.adapter()))
    looks = iter([seen["running"]])
    canceller.summary = lambda job_id: next(looks, None) or store.get(job_id, chunks=False)
    # WHEN its cancel lands after the run ended, THEN it is refused, naming the state
    with pytest.raises(JobStateError, match="already failed"):
        canceller.cancel_job("job")
    # AND the next resume runs the job
    final = runner.resume_job("job", background=False)
    assert final.state is JobState.RENDERED, (final.state, final.error)


def test_reopening_a_chunk_removes_its_earlier_upload(store, tmp_path):
    # GIVEN a job rendered on remote workers, its chunk outputs uploaded to storage
    storage = LocalStorage(tmp_path / "artifacts")
    manager = JobManager(store, JobExecutor(ScriptedWorker().adapter()), storage)
    spec = make_spec(3, job_id="job")
    manager.create_job(spec)
    manager.run_job("job", ExecutionOptions(merge=False))
    keys = [chunk_key("job", chunk.id, chunk.output_file) for chunk in spec.chunks]
    for key in keys:
        storage.put_text(key, "frames of the first run")
    # WHEN chunk 1 is reopened to render again
    assert manager.reopen_chunks("job", [1]) == [1]
    # THEN its old upload is gone, so nothing can stitch it in the new render's place; the others stay
    assert [storage.exists(key) for key in keys] == [True, False, True]


def test_a_job_a_runner_elsewhere_holds_is_not_deleted(store, tmp_path):
    manager = manager_for(ScriptedWorker(), store, tmp_path)
    manager.create_job(make_spec(2, job_id="job"))
    store.take_lease("job", Lease("elsewhere:1:runner", time.time() + 3600), now=time.time(),
                     expected={JobState.PENDING})
    with pytest.raises(JobStateError, match="a runner holds it; cancel it first"):
        manager.delete_job("job")
    assert store.get("job") is not None


def test_a_job_cancelled_before_its_runner_came_stays_cancelled(store, tmp_path):
    # GIVEN a submitted job cancelled while its start was on its way (the orchestrator's first event)
    manager = manager_for(ScriptedWorker(), store, tmp_path)
    manager.create_job(make_spec(2, job_id="job"))
    assert manager.cancel_job("job").state is JobState.CANCELLED
    # WHEN that first event arrives, THEN it runs nothing
    with pytest.raises(JobStateError, match="cancelled; it cannot be started"):
        manager.run_job("job", only_new=True)
    assert manager.summary("job").state is JobState.CANCELLED
    # AND a resume still restarts it
    assert manager.run_job("job").state is JobState.RENDERED
