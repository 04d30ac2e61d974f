"""Every JobExecutor rule (the executor module's docstring lists them), one test (or more) each."""

from __future__ import annotations

import json
import shlex
import sys
import threading
from pathlib import Path

import pytest

from framefarm import (
    CallableWorkerAdapter,
    CancelToken,
    ChunkFailedError,
    ExecutionOptions,
    FramefarmError,
    JobAbortedError,
    JobExecutor,
    JobSpec,
    JobSpecError,
    LocalWorkerAdapter,
    RetryPolicy,
    StitchError,
    WorkerResult,
)
from framefarm.failures import FailureKind
from framefarm.options import ResumeState
from tests.helpers import FAULTY_CHUNK, RecordingStitcher, ScriptedWorker, hooks, make_spec, retry_at_once


def in_background(executor: JobExecutor, spec: JobSpec, options: ExecutionOptions):
    """Start ``execute`` on a thread; returns the thread and a dict that will hold its error."""
    outcome: dict[str, Exception] = {}

    def execute():
        try:
            executor.execute(spec, options)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=execute)
    thread.start()
    return thread, outcome


def run(worker: ScriptedWorker, spec: JobSpec, tmp_path: Path, *, retry: RetryPolicy | None = None, **options):
    return JobExecutor(worker.adapter()).execute(spec, ExecutionOptions(job_dir=tmp_path, retry=retry or retry_at_once(),
                                                                        **options))


def test_default_concurrency_is_one(tmp_path):
    # GIVEN a worker that counts how many calls overlap
    worker = ScriptedWorker()
    # WHEN a job runs with default options
    run(worker, make_spec(6), tmp_path)
    # THEN calls never overlapped and ran in chunk order
    assert worker.max_in_flight == 1
    assert worker.order == [0, 1, 2, 3, 4, 5]


def test_concurrency_limit_is_reached_and_never_exceeded(tmp_path):
    # GIVEN chunks that hold their worker until three are in flight
    release = threading.Event()
    worker = ScriptedWorker()
    worker.hooks = {i: (lambda job: release.wait(30)) for i in range(20)}
    holder = threading.Thread(target=lambda: (worker.wait_for(lambda w: w.in_flight >= 3), release.set()))
    holder.start()
    # WHEN 20 chunks run with concurrency 3
    run(worker, make_spec(20), tmp_path, concurrency=3)
    holder.join()
    # THEN exactly three ran at once at the peak, and every chunk ran once
    assert worker.max_in_flight == 3
    assert sorted(worker.calls.items()) == [(i, 1) for i in range(20)]


@pytest.mark.slow
def test_holds_a_thousand_chunks_in_flight(tmp_path):
    # GIVEN 1,000 chunks that each wait until all 1,000 are running at once
    barrier = threading.Barrier(1000, timeout=120)
    worker = ScriptedWorker()
    worker.hooks = {i: (lambda job: barrier.wait()) for i in range(1000)}
    # WHEN they run with concurrency 1,000
    report = run(worker, make_spec(1000, frames_per_chunk=1), tmp_path, concurrency=1000)
    # THEN the barrier was passed (so all were in flight together) and every chunk completed
    assert worker.max_in_flight == 1000
    assert len(report.ran) == 1000


def test_retry_count_is_exact_and_failure_message_names_chunk_and_attempts(tmp_path):
    # GIVEN chunk 2 always fails
    worker = ScriptedWorker(fail={2: 99})
    # WHEN the job runs with 2 retries
    with pytest.raises(ChunkFailedError) as raised:
        run(worker, make_spec(4), tmp_path, retry=retry_at_once(2))
    # THEN chunk 2 was tried exactly 3 times and the error keeps its stderr
    assert worker.calls[2] == 3
    assert str(raised.value) == "Chunk 2 failed after 3 attempts: boom in chunk 2 attempt 3"
    assert raised.value.chunk_id == 2 and raised.value.attempts == 3


def test_adapter_exception_counts_as_a_failed_attempt(tmp_path):
    # GIVEN an adapter that raises for chunk 1 on every call
    def explode(job):
        raise RuntimeError("connection reset")

    worker = ScriptedWorker(hooks={1: explode})
    # WHEN it runs with one retry
    with pytest.raises(ChunkFailedError, match=r"Chunk 1 failed after 2 attempts: RuntimeError: connection reset"):
        run(worker, make_spec(3), tmp_path, retry=retry_at_once(1))
    # THEN the raise was retried like a non-zero exit
    assert worker.calls[1] == 2


def test_fail_fast_stops_dispatch(tmp_path):
    # GIVEN chunk 0 fails, concurrency 1, no retries
    worker = ScriptedWorker(fail={0: 99})
    # WHEN the job runs
    with pytest.raises(ChunkFailedError):
        run(worker, make_spec(10), tmp_path)
    # THEN nothing after chunk 0 was dispatched
    assert worker.order == [0]


def test_progress_never_above_total_and_never_after_failure(tmp_path):
    # GIVEN chunk 3 fails while chunks 0-2 are still running; they finish only after the failure is seen
    failure_seen = threading.Event()
    worker = ScriptedWorker(fail={3: 99})
    worker.hooks = {i: (lambda job: failure_seen.wait(30)) for i in range(3)}
    progress, completed_callbacks = [], []

    def on_attempt(chunk_id, attempt, result, started, finished):
        if chunk_id == 3:
            failure_seen.set()

    # WHEN the job runs with four in flight
    with pytest.raises(ChunkFailedError):
        run(worker, make_spec(8), tmp_path, concurrency=4, hooks=hooks(
            progress=lambda done, total: progress.append(done),
            chunk_completed=lambda chunk_id, result: completed_callbacks.append(chunk_id),
            attempt_finished=on_attempt))
    # THEN no progress was reported after the failure, but the finished chunks were still reported complete
    assert progress == []
    assert sorted(completed_callbacks) == [0, 1, 2]
    assert set(worker.calls) == {0, 1, 2, 3}


def test_progress_counts_up_to_total_once_per_chunk(tmp_path):
    progress = []
    run(ScriptedWorker(), make_spec(5), tmp_path, concurrency=2,
        hooks=hooks(progress=lambda d, t: progress.append((d, t))))
    assert progress == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_chunk_retried_then_succeeding_reports_progress_and_completion_once(tmp_path):
    # GIVEN chunk 1 fails twice then succeeds
    worker = ScriptedWorker(fail={1: 2})
    progress, completed, retries = [], [], []
    # WHEN the job runs with 2 retries
    run(worker, make_spec(3), tmp_path, retry=retry_at_once(2), hooks=hooks(
        progress=lambda d, t: progress.append(d),
        chunk_completed=lambda chunk_id, result: completed.append((chunk_id, result.exit_code)),
        chunk_retrying=lambda chunk_id, attempt, delay, result: retries.append((chunk_id, attempt))))
    # THEN chunk 1 completed once, progress went 1, 2, 3, and two retries were announced
    assert worker.calls[1] == 3
    assert completed == [(0, 0), (1, 0), (2, 0)]
    assert progress == [1, 2, 3]
    assert retries == [(1, 1), (1, 2)]


def test_chunk_completed_gets_the_full_result(tmp_path):
    results = {}
    run(ScriptedWorker(), make_spec(2), tmp_path,
        hooks=hooks(chunk_completed=lambda cid, result: results.update({cid: result})))
    assert results[1] == WorkerResult(exit_code=0, stdout="rendered chunk 1\n", duration_ms=11.0)


def test_backoff_grows_exponentially_with_bounded_jitter():
    policy = RetryPolicy(delay=1.0, max_delay=5.0, jitter=lambda: 1.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    low = RetryPolicy(delay=1.0, jitter=lambda: 0.0)
    assert [low.backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_cancel_during_retry_delay_aborts_without_another_attempt(tmp_path):
    # GIVEN chunk 0 fails and would be retried after a 60 s delay
    worker = ScriptedWorker(fail={0: 99})
    token = CancelToken()
    retry_scheduled = threading.Event()
    thread, outcome = in_background(JobExecutor(worker.adapter()), make_spec(2), ExecutionOptions(
        job_dir=tmp_path, retry=RetryPolicy(retries=3, delay=60, jitter=lambda: 1.0), cancel=token,
        hooks=hooks(chunk_retrying=lambda *args: retry_scheduled.set())))
    # WHEN the job is cancelled while the retry waits
    assert retry_scheduled.wait(30)
    token.cancel()
    thread.join(30)
    # THEN it stopped at once: no second attempt, JobAbortedError
    assert not thread.is_alive()
    assert isinstance(outcome["error"], JobAbortedError)
    assert worker.calls[0] == 1


def test_cancel_kills_in_flight_local_subprocesses(tmp_path):
    # GIVEN local chunks that would sleep for a minute
    token = CancelToken()
    started = threading.Event()
    spec = make_spec(2, command=f"{sys.executable} -c 'import time; time.sleep(60)'")
    thread, outcome = in_background(JobExecutor(LocalWorkerAdapter()), spec, ExecutionOptions(
        job_dir=tmp_path, concurrency=2, cancel=token, hooks=hooks(chunk_started=lambda *a: started.set())))
    # WHEN the job is cancelled while they run
    assert started.wait(30)
    token.cancel()
    thread.join(30)
    # THEN execute returned promptly with JobAbortedError (the subprocesses were killed)
    assert not thread.is_alive()
    assert isinstance(outcome["error"], JobAbortedError)


def test_cancel_before_start_runs_nothing(tmp_path):
    token = CancelToken()
    token.cancel()
    worker = ScriptedWorker()
    with pytest.raises(JobAbortedError):
        run(worker, make_spec(3), tmp_path, cancel=token)
    assert worker.order == []


def test_drain_lets_in_flight_chunks_finish_then_aborts(tmp_path):
    # GIVEN chunk 1 pauses the job while chunks 0-1 run
    token = CancelToken()
    worker = ScriptedWorker(hooks={1: lambda job: token.drain("paused")})
    completed = []
    # WHEN the job runs with concurrency 2
    with pytest.raises(JobAbortedError) as raised:
        run(worker, make_spec(6), tmp_path, concurrency=2, cancel=token,
            hooks=hooks(chunk_completed=lambda cid, result: completed.append(cid)))
    # THEN the chunks in flight completed and nothing new started
    assert raised.value.reason == "paused"
    assert sorted(completed) == sorted(worker.calls) and len(completed) <= 3


def test_resume_skips_completed_chunks(tmp_path):
    worker = ScriptedWorker()
    progress = []
    report = JobExecutor(worker.adapter()).execute(
        make_spec(5), ExecutionOptions(job_dir=tmp_path, hooks=hooks(progress=lambda d, t: progress.append((d, t)))),
        resume=ResumeState(completed=frozenset({0, 1, 3})))
    assert worker.order == [2, 4]
    assert progress == [(4, 5), (5, 5)]
    assert report.skipped == [0, 1, 3] and report.ran == [2, 4]


def test_stitcher_gets_outputs_sorted_by_chunk_id_as_absolute_paths(tmp_path):
    # GIVEN an explicit spec whose chunks are listed out of id order
    spec = JobSpec(metadata={"total_frames": 30, "fps": 10, "width": 64, "height": 48}, chunks=[
        {"id": 2, "start_frame": 0, "frame_count": 10, "output_file": "c/two.mp4", "command": "x"},
        {"id": 0, "start_frame": 10, "frame_count": 10, "output_file": "c/zero.mp4", "command": "x"},
        {"id": 1, "start_frame": 20, "frame_count": 10, "output_file": "c/one.mp4", "command": "x"},
    ])
    stitcher = RecordingStitcher()
    # WHEN it runs with a stitcher and a relative job dir
    report = JobExecutor(ScriptedWorker().adapter()).execute(spec, ExecutionOptions(
        job_dir=tmp_path, stitcher=stitcher, output_file=tmp_path / "final.mp4"))
    # THEN the stitcher got absolute paths in chunk-id order
    inputs, output, audio = stitcher.calls[0]
    assert inputs == [tmp_path / "c/zero.mp4", tmp_path / "c/one.mp4", tmp_path / "c/two.mp4"]
    assert all(path.is_absolute() for path in inputs)
    assert output == tmp_path / "final.mp4" and audio is None and report.output == output


def test_stitcher_without_output_file_is_rejected_before_any_chunk_runs(tmp_path):
    worker = ScriptedWorker()
    with pytest.raises(JobSpecError, match="output_file"):
        run(worker, make_spec(3), tmp_path, stitcher=RecordingStitcher())
    assert worker.order == []


def test_failed_stitch_raises_merge_failed(tmp_path):
    class BrokenStitcher:
        def stitch(self, inputs, output, audio=None):
            raise StitchError("chunk output missing: x")

    with pytest.raises(StitchError, match=r"^Merge failed: chunk output missing: x$"):
        run(ScriptedWorker(), make_spec(2), tmp_path, stitcher=BrokenStitcher(), output_file=tmp_path / "o.mp4")


def test_merge_command_runs_on_the_merge_adapter(tmp_path):
    # GIVEN a spec with a merge command, and a separate merge adapter
    spec = make_spec(3).model_copy(update={"merge_command": ["merge", "all"]})
    merged = []
    merge_adapter = CallableWorkerAdapter(lambda job: merged.append((list(job.command), job.meta["job_id"])))
    chunk_worker = ScriptedWorker()
    # WHEN the job runs
    run(chunk_worker, spec, tmp_path, merge_adapter=merge_adapter)
    # THEN chunks ran on the main adapter and the merge once on the merge adapter
    assert sorted(chunk_worker.calls) == [0, 1, 2]
    assert merged == [(["merge", "all"], spec.id)]


def test_failing_merge_command_raises_merge_failed(tmp_path):
    spec = make_spec(2).model_copy(update={"merge_command": ["merge"]})
    failing = CallableWorkerAdapter(lambda job: WorkerResult(exit_code=3, stderr="disk full\n"))
    with pytest.raises(FramefarmError, match=r"^Merge failed: merge step exited 3: disk full"):
        run(ScriptedWorker(), spec, tmp_path, merge_adapter=failing)


def test_without_merge_only_the_chunks_run(tmp_path):
    stitcher = RecordingStitcher()
    report = run(ScriptedWorker(), make_spec(2), tmp_path, stitcher=stitcher, output_file=tmp_path / "o.mp4",
                 merge=False)
    assert stitcher.calls == [] and report.output is None


def test_meta_carries_job_chunk_and_attempt(tmp_path):
    seen = []
    worker = ScriptedWorker(fail={0: 1}, hooks={0: lambda job: seen.append(dict(job.meta))})
    run(worker, make_spec(1, job_id="meta-job"), tmp_path, retry=retry_at_once(1), meta={"tenant": "t1"})
    assert [(m["job_id"], m["chunk_id"], m["attempt"], m["tenant"]) for m in seen] == [
        ("meta-job", 0, 1, "t1"), ("meta-job", 0, 2, "t1")]
    assert seen[0]["start_frame"] == 0 and seen[0]["frame_count"] == 10


def test_live_output_callbacks_get_the_chunk_id(tmp_path):
    spec = make_spec(2, command=f"{sys.executable} -c \"import sys; print('out{{chunk_id}}'); "
                                f"print('err{{chunk_id}}', file=sys.stderr); open('{{output}}', 'w').write('x')\"")
    out, err = [], []
    JobExecutor(LocalWorkerAdapter()).execute(spec, ExecutionOptions(
        job_dir=tmp_path, hooks=hooks(chunk_stdout=lambda cid, text: out.append((cid, text)),
                                      chunk_stderr=lambda cid, text: err.append((cid, text)))))
    # pieces arrive as the pipe yields them (an unbuffered print is two writes); joined per chunk they are whole
    assert joined_by_chunk(out) == {0: "out0\n", 1: "out1\n"}
    assert joined_by_chunk(err) == {0: "err0\n", 1: "err1\n"}


def joined_by_chunk(pieces):
    joined = {}
    for chunk_id, text in pieces:
        joined[chunk_id] = joined.get(chunk_id, "") + text
    return joined


def test_a_local_chunk_that_exits_0_without_its_output_fails(tmp_path):
    spec = make_spec(1, command=f"{sys.executable} -c pass")
    with pytest.raises(ChunkFailedError, match="Chunk 0 failed after 1 attempt: exit code 0 but no output at "):
        JobExecutor(LocalWorkerAdapter()).execute(spec, ExecutionOptions(job_dir=tmp_path))


def faulty_spec(plan_dir: Path, plan: dict[str, list[str]], chunks: int = 1) -> JobSpec:
    """Chunks run by tests/faulty_chunk.py, which never overwrites an existing output (like ffmpeg without -y)."""
    plan_dir.mkdir(parents=True, exist_ok=True)
    (plan_dir / "plan.json").write_text(json.dumps(plan))
    return make_spec(chunks, command=shlex.join([sys.executable, str(FAULTY_CHUNK), str(plan_dir)])
                     + " {chunk_id} {output}")


def test_a_stub_from_a_failed_attempt_never_passes_for_a_later_attempts_output(tmp_path):
    # GIVEN a chunk whose first attempt writes a 48-byte stub and exits 1, and whose second exits 0 writing nothing
    spec = faulty_spec(tmp_path / "plan", {"0": ["stub-exit1", "no-output"]})
    # WHEN it runs with one retry
    with pytest.raises(ChunkFailedError) as failed:
        JobExecutor(LocalWorkerAdapter()).execute(spec, ExecutionOptions(job_dir=tmp_path / "job",
                                                                         retry=retry_at_once(1)))
    # THEN the chunk fails for want of output, and nothing is left under its name
    assert str(failed.value) == "Chunk 0 failed after 2 attempts: exit code 0 but no output at chunks/00000.mp4"
    assert (tmp_path / "plan" / "calls-0").read_text().count("call") == 2
    assert not (tmp_path / "job" / "chunks" / "00000.mp4").exists()
    assert list((tmp_path / "job" / "chunks").iterdir()) == []  # the stub went with its attempt


def test_a_chunk_whose_output_is_empty_fails(tmp_path):
    # GIVEN a command that exits 0 after writing an empty file at its output
    spec = make_spec(1, command=f"{sys.executable} -c \"open('{{output}}', 'w')\"")
    # WHEN it runs, THEN the chunk fails and nothing counts as its output
    with pytest.raises(ChunkFailedError) as failed:
        JobExecutor(LocalWorkerAdapter()).execute(spec, ExecutionOptions(job_dir=tmp_path))
    assert str(failed.value) == "Chunk 0 failed after 1 attempt: exit code 0 but an empty output at chunks/00000.mp4"
    assert not (tmp_path / "chunks" / "00000.mp4").exists()


def test_a_rerun_renders_over_a_stub_an_earlier_run_left(tmp_path):
    # GIVEN a stub at the chunk's output from a run that was killed, and a command that never overwrites
    (tmp_path / "job" / "chunks").mkdir(parents=True)
    (tmp_path / "job" / "chunks" / "00000.mp4").write_bytes(b"stub" * 12)
    spec = faulty_spec(tmp_path / "plan", {})
    # WHEN the chunk runs again
    JobExecutor(LocalWorkerAdapter()).execute(spec, ExecutionOptions(job_dir=tmp_path / "job"))
    # THEN it rendered for real, in place of the stub
    assert (tmp_path / "job" / "chunks" / "00000.mp4").read_text() == "chunk 0\n"


@pytest.mark.parametrize(("options", "retry"), [({"concurrency": 0}, {}), ({}, {"retries": -1}), ({}, {"delay": -1}),
                                               ({}, {"transient_retries": -1}), ({"watchdog_margin": -1}, {})])
def test_invalid_options_are_rejected(options, retry):
    with pytest.raises(JobSpecError):
        ExecutionOptions(**options, retry=RetryPolicy(**retry))


def test_a_worker_that_saw_the_jobs_cancel_stops_the_run_instead_of_being_retried(tmp_path):
    # GIVEN a remote worker that answers "cancelled" (it found the job's cancel marker before this runner
    # heard of the cancel), with retries to spare
    def adapter(job):
        if job.meta["chunk_id"] == 0:
            return WorkerResult(kind=FailureKind.CANCELLED, error="cancelled")
        return WorkerResult(exit_code=0)

    # WHEN the job runs
    with pytest.raises(JobAbortedError) as stopped:
        JobExecutor(CallableWorkerAdapter(adapter)).execute(make_spec(4), ExecutionOptions(
            job_dir=tmp_path, retry=retry_at_once(3)))
    # THEN the run stops as cancelled, not failed after retrying the chunk
    assert stopped.value.reason == "cancelled"


def test_the_options_of_framefarm_0_1_still_mean_what_they_meant(tmp_path):
    # GIVEN options written for framefarm 0.1: separate callbacks, flat retry fields, skip_merge
    progress = []
    with pytest.warns(DeprecationWarning, match="use retry=RetryPolicy"):
        options = ExecutionOptions(job_dir=tmp_path, retries=2, retry_delay=0, max_retry_delay=3.0,
                                   on_progress=lambda done, total: progress.append(done), skip_merge=True)
    # THEN they map onto the new shape
    assert (options.retry.retries, options.retry.delay, options.retry.max_delay, options.merge) == (2, 0, 3.0, False)
    # AND a run with them retries and reports as before
    worker = ScriptedWorker(fail={1: 2})
    report = JobExecutor(worker.adapter()).execute(make_spec(3), options)
    assert worker.calls[1] == 3 and progress == [1, 2, 3] and report.merged is False
    with pytest.raises(TypeError, match="completed_chunk_ids"), pytest.warns(DeprecationWarning):
        ExecutionOptions(completed_chunk_ids=[0])
    # AND positional arguments keep 0.1's order
    assert ExecutionOptions(4).concurrency == 4
    with pytest.warns(DeprecationWarning):
        assert ExecutionOptions(3, tmp_path, True, True).merge is False
