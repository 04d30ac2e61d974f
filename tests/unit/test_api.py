"""The library in one call: ff.render / ff.submit / ff.attach on the local backend."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import pytest

import framefarm as ff
from framefarm import api
from framefarm.api import RenderHandle
from framefarm.config import DEFAULT_CONCURRENCY, DEFAULT_RETRIES, DEFAULT_RETRY_DELAY, DEFAULT_TRANSIENT_RETRIES
from framefarm.lease import Lease
from tests.helpers import FAULTY_CHUNK, eventually

TINY_VIDEO = {"width": 64, "height": 48, "fps": 10, "total_frames": 20, "frames_per_chunk": 10,
              "audio": "{ffmpeg} -hide_banner -nostdin -loglevel error -y -f lavfi "
                       "-i sine=frequency=440:sample_rate=48000:duration={duration} -c:a aac {output}",
              "command": "{ffmpeg} -hide_banner -nostdin -loglevel error -y -f lavfi -i testsrc2=size={width}x{height}"
                         ":rate={fps} -vf trim=start_frame={start_frame}:end_frame={end_frame},setpts=PTS-STARTPTS "
                         "-an -c:v libx264 -pix_fmt yuv420p {output}"}


def faulty_job(tmp_path: Path, plan: dict[str, list[str]], chunks: int = 2) -> dict[str, object]:
    """A job whose chunks run tests/faulty_chunk.py, each attempt doing what ``plan`` says."""
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir(exist_ok=True)
    (plan_dir / "plan.json").write_text(json.dumps(plan))
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAULTY_CHUNK))} {shlex.quote(str(plan_dir))} " \
              "{chunk_id} {output}"
    return {"width": 64, "height": 48, "fps": 10, "total_frames": chunks * 5, "frames_per_chunk": 5,
            "command": command}


@pytest.fixture
def home(tmp_path: Path) -> ff.Local:
    return ff.Local(home=tmp_path / "home")


@pytest.mark.slow
def test_render_stitches_the_video_and_says_where_it_is(home, tmp_path):
    # WHEN a job (a mapping) is rendered with an output
    result = ff.render(TINY_VIDEO, output=tmp_path / "out" / "tiny.mp4", backend=home, job_id="tiny")
    # THEN it is completed, with the video where it says
    assert result.state is ff.JobState.COMPLETED and result.output == (tmp_path / "out" / "tiny.mp4").resolve()
    assert result.output.stat().st_size > 0
    assert (result.job_id, result.frames, result.chunks) == ("tiny", 20, 2)
    assert result.cost_usd == 0.0 and result.billed_ms == 0 and result.duration_s > 0
    assert home.repository().get("tiny").output == str(result.output)


@pytest.mark.slow
def test_without_an_output_a_render_ends_rendered_and_attach_stitches_it_later(home, tmp_path):
    # GIVEN a job file that names no output
    job_file = tmp_path / "tiny.yaml"
    job_file.write_text(json.dumps(TINY_VIDEO))
    # WHEN it is rendered without an output
    result = ff.render(job_file, backend=home, job_id="later")
    # THEN it is rendered, not completed: no video is claimed
    assert result.state is ff.JobState.RENDERED and result.output is None
    assert home.repository().get("later").output is None
    # AND a handle attached with an output stitches it
    stitched = ff.attach("later", backend=home, output=tmp_path / "later.mp4").wait()
    assert stitched.state is ff.JobState.COMPLETED and stitched.output == (tmp_path / "later.mp4").resolve()
    assert stitched.output.stat().st_size > 0


def test_a_job_may_be_a_path_a_mapping_or_a_spec(home, tmp_path):
    document = faulty_job(tmp_path, {})
    path = tmp_path / "job.json"
    path.write_text(json.dumps(document))
    spec = ff.plan_job(document, job_id="as-spec")
    for job, job_id in ((path, "as-path"), (document, "as-mapping"), (spec, None)):
        result = ff.render(job, backend=home, job_id=job_id)
        assert result.state is ff.JobState.RENDERED and result.chunks == 2
    assert {job.id for job in home.repository().list()} == {"as-path", "as-mapping", "as-spec"}


def test_a_chunk_that_fails_for_good_raises_render_failed_naming_it(home, tmp_path):
    # GIVEN a job whose chunk 1 fails every attempt
    job = faulty_job(tmp_path, {"1": ["exit1"] * 5})
    # WHEN it renders with one retry
    with pytest.raises(ff.RenderFailed) as caught:
        ff.render(job, backend=home, job_id="broken", retry=ff.RetryPolicy(retries=1, delay=0))
    # THEN the error names the job, the chunk, its attempts, the kind of failure and its stderr
    failure = caught.value
    assert (failure.job_id, failure.chunk_id, failure.attempts) == ("broken", 1, 2)
    assert failure.kind == "exit_code"
    assert "render error in chunk 1" in failure.stderr_tail
    assert str(failure).startswith("job broken failed: Chunk 1 failed after 2 attempts")
    assert isinstance(failure, ff.FramefarmError)


def test_progress_then_cancel(home, tmp_path):
    # GIVEN a submitted job whose chunks take a minute
    handle = ff.submit(faulty_job(tmp_path, {"0": ["slow"], "1": ["slow"]}), backend=home, job_id="slow",
                       concurrency=2)
    eventually(lambda: handle.progress().state is ff.JobState.RUNNING, what="the job running")
    progress = handle.progress()
    assert (progress.completed, progress.total, progress.failed_attempts) == (0, 2, 0)
    # WHEN it is cancelled
    handle.cancel()
    # THEN waiting for it says so, and the store agrees
    with pytest.raises(ff.JobAbortedError) as caught:
        handle.wait(timeout=60)
    assert caught.value.reason == "cancelled" and caught.value.job_id == "slow"
    assert handle.progress().state is ff.JobState.CANCELLED


def gated_job(tmp_path: Path, chunks: int) -> tuple[dict[str, object], Path]:
    """A job whose chunks each wait (at most 30 s) for a gate file before writing their output."""
    gate = tmp_path / "gate"
    script = tmp_path / "gated.py"
    script.write_text("import os, sys, time\n"
                      "open(sys.argv[3] + '/started-' + sys.argv[2], 'w').close()\n"
                      "deadline = time.monotonic() + 30\n"
                      f"while not os.path.exists({str(gate)!r}) and time.monotonic() < deadline:\n"
                      "    time.sleep(0.02)\n"
                      "open(sys.argv[1], 'w').write('chunk')\n")
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {{output}} {{chunk_id}} " \
              f"{shlex.quote(str(tmp_path))}"
    return {"width": 64, "height": 48, "fps": 10, "total_frames": chunks * 5, "frames_per_chunk": 5,
            "command": command}, gate


def test_pause_lets_the_work_in_flight_finish(home, tmp_path):
    # GIVEN a job of 4 chunks, one at a time, whose chunk 0 is running
    job, gate = gated_job(tmp_path, chunks=4)
    handle = ff.submit(job, backend=home, job_id="pausing", concurrency=1)
    eventually(lambda: (tmp_path / "started-0").exists(), what="chunk 0 started")
    # WHEN it is paused, then chunk 0 finishes
    handle.pause()
    gate.touch()
    with pytest.raises(ff.JobAbortedError) as caught:
        handle.wait(timeout=60)
    # THEN it is paused with chunk 0 done and no other chunk started
    assert caught.value.reason == "paused"
    assert handle.progress().completed == 1 and not (tmp_path / "started-1").exists()


def test_wait_is_bounded_and_leaves_the_job_running(home, tmp_path):
    handle = ff.submit(faulty_job(tmp_path, {"0": ["slow"]}, chunks=1), backend=home, job_id="bounded")
    with pytest.raises(TimeoutError, match=r"bounded.? still running"):
        handle.wait(timeout=0.2)
    assert handle.progress().state is ff.JobState.RUNNING
    handle.cancel()
    with pytest.raises(ff.JobAbortedError):
        handle.wait(timeout=60)


@pytest.mark.parametrize("where, message", [
    ("a-directory", "is a directory"),
    ("no-extension", "has no extension"),
    ("a-file/video.mp4", "cannot write to"),
])
def test_an_output_that_cannot_be_written_is_refused_before_anything_is_stored(home, tmp_path, where, message):
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(ff.JobSpecError, match=message):
        ff.submit(faulty_job(tmp_path, {}), backend=home, output=tmp_path / where, job_id="refused")
    assert home.repository().get("refused") is None


def test_attach_to_a_job_that_is_not_there_names_the_store(home):
    with pytest.raises(ff.JobNotFoundError, match=r"No job 'ghost' in the local job store .*jobs\.db"):
        ff.attach("ghost", backend=home)


def test_run_defaults_are_the_cli_and_handlers_defaults():
    policy = ff.RetryPolicy()
    assert (policy.retries, policy.transient_retries, policy.delay) == (
        DEFAULT_RETRIES, DEFAULT_TRANSIENT_RETRIES, DEFAULT_RETRY_DELAY)
    assert ff.Local().concurrency() == DEFAULT_CONCURRENCY and ff.Local().concurrency(7) == 7


def test_hooks_hear_the_run(home, tmp_path):
    heard: list[tuple[str, object]] = []

    class Listener(ff.RunHooks):
        def progress(self, completed: int, total: int) -> None:
            heard.append(("progress", (completed, total)))

        def chunk_stdout(self, chunk_id: int, text: str) -> None:
            heard.append(("stdout", chunk_id))

    ff.render(faulty_job(tmp_path, {}), backend=home, job_id="heard", hooks=Listener(), concurrency=1)
    assert [value for kind, value in heard if kind == "progress"] == [(1, 2), (2, 2)]
    assert {value for kind, value in heard if kind == "stdout"} == {0, 1}  # live output, streamed as asked


def test_a_wait_on_a_job_whose_runner_died_ends_saying_so(home, tmp_path):
    # GIVEN a running job held by a runner elsewhere that stops renewing its lease (it died)
    store = home.repository()
    store.create(ff.JobRecord.new(ff.plan_job(faulty_job(tmp_path, {}), job_id="orphan"), now=time.time()))
    now = time.time()
    assert store.take_lease("orphan", Lease("elsewhere:1:1.1:dead", now + 0.3), now=now,
                            expected={ff.JobState.PENDING})
    # WHEN a handle waits for it without a time limit (bounded here only so a regression fails, not hangs)
    # THEN once the lease runs out it says the runner is gone and how to go on, instead of waiting forever
    with pytest.raises(ff.JobStateError, match=r"orphan is running but its runner is gone .*framefarm resume orphan"):
        ff.attach("orphan", backend=home).wait(timeout=30)


def test_a_wait_on_a_job_nothing_starts_ends_saying_so(home, tmp_path, monkeypatch):
    # GIVEN a stored job that nothing starts (its start event was lost)
    home.repository().create(ff.JobRecord.new(ff.plan_job(faulty_job(tmp_path, {}), job_id="idle"), now=time.time()))
    monkeypatch.setattr(api, "PENDING_PATIENCE", 0.2)
    # WHEN a handle waits for it, THEN it gives up after the patience, saying how to go on
    with pytest.raises(ff.JobStateError, match=r"idle has been pending for \d+ s: nothing started it; resume it"):
        ff.attach("idle", backend=home).wait(timeout=30)


@pytest.mark.parametrize("arguments, message", [
    ({"chunk_timeout": -1}, "timeout"),
    ({"concurrency": 0}, "concurrency"),
])
def test_a_bad_option_is_refused_before_the_job_is_stored(home, tmp_path, arguments, message):
    with pytest.raises(ff.JobSpecError, match=message):
        ff.submit(faulty_job(tmp_path, {}), backend=home, job_id="refused", **arguments)
    assert home.repository().get("refused") is None


def test_a_stitch_holds_the_job_and_a_failed_one_gives_it_back(home, tmp_path):
    # GIVEN a rendered job (no output asked)
    ff.render(faulty_job(tmp_path, {}), backend=home, job_id="held")
    manager = home.manager()
    seen = {}

    class Watching:
        def stitch(self, inputs, output, audio=None):
            seen["state"] = manager.summary("held").state
            with pytest.raises(ff.JobStateError, match="runner is alive"):
                manager.reopen_chunks("held", [0])  # nobody may reopen its chunks mid-stitch
            output.write_bytes(b"video")
            return output

    class Failing:
        def stitch(self, inputs, output, audio=None):
            raise ff.StitchError("chunk 1 differs")

    # WHEN a stitch fails, THEN the job is back to rendered, free, and says nothing new
    with pytest.raises(ff.StitchError):
        RenderHandle("held", home, output=tmp_path / "held.mp4", stitcher=Failing()).wait(timeout=30)
    after_failure = manager.summary("held")
    assert after_failure.state is ff.JobState.RENDERED and after_failure.lease_owner is None
    # WHEN a stitch succeeds, THEN the job showed stitching while it ran, and ends completed with its video
    result = RenderHandle("held", home, output=tmp_path / "held.mp4", stitcher=Watching()).wait(timeout=30)
    assert seen["state"] is ff.JobState.STITCHING
    assert result.state is ff.JobState.COMPLETED and result.output == (tmp_path / "held.mp4").resolve()
