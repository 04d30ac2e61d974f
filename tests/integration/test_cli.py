"""The `framefarm` command end to end: real renders, bad input, control from a second process."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from framefarm import JobState, SqliteJobRepository
from framefarm.lease import Lease
from framefarm.status import TAIL_CHARS, ChunkState
from framefarm.stitch.probe import decoded_audio_samples, packets, probe
from tests.helpers import FAULTY_CHUNK, eventually, process_alive

EXAMPLE = Path(__file__).parents[2] / "examples" / "testsrc.yaml"


def framefarm(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framefarm", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, **kwargs)


def store() -> SqliteJobRepository:
    return SqliteJobRepository(Path(os.environ["FRAMEFARM_HOME"]) / "jobs.db")


def write_job(tmp_path: Path, name: str = "job.yaml", **fields) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(fields))
    return path


def shortened_example(tmp_path: Path, **overrides) -> Path:
    job = yaml.safe_load(EXAMPLE.read_text())
    job.update({"width": 320, "height": 240, "total_frames": 90, "frames_per_chunk": 30,
                "output": str(tmp_path / "out" / "testsrc.mp4"), **overrides})
    return write_job(tmp_path, "testsrc.yaml", **job)


def python_job(tmp_path: Path, code: str, chunks: int = 2) -> Path:
    return write_job(tmp_path, width=64, height=48, fps=10, total_frames=chunks, frames_per_chunk=1,
                     command=[sys.executable, "-c", code, "{chunk_id}", "{output}"], output=str(tmp_path / "o.mp4"))


@pytest.mark.slow
def test_render_the_example_exactly(tmp_path):
    # GIVEN the example job, shortened to 3 s at 320x240 (90 frames in 3 chunks, with its sine track)
    job = shortened_example(tmp_path)
    # WHEN it is rendered through the CLI
    result = framefarm("render", str(job), "--job-id", "demo", "--concurrency", "2")
    # THEN it succeeds and says where the video is
    assert result.returncode == 0, result.stderr
    output = tmp_path / "out" / "testsrc.mp4"
    assert str(output) in result.stderr.replace("\n", "")
    # AND the video has exactly the planned frames and duration, monotonic timestamps and every audio sample
    video = packets(output)
    assert len(video) == 90
    assert all(b.dts > a.dts for a, b in itertools.pairwise(video))
    info = probe(output)
    assert info.duration == pytest.approx(3.0, abs=1 / 30)
    assert (info.width, info.height, info.fps, info.audio_codec) == (320, 240, 30.0, "aac")
    assert decoded_audio_samples(output) == 3 * 48000
    # AND the store has the completed job with one record per chunk
    status = store().require("demo")
    assert status.state is JobState.COMPLETED and status.completed_chunks == 3
    assert status.metrics.total_duration_ms == pytest.approx(sum(c.duration_ms for c in status.chunks))
    # AND status, jobs and logs read it back
    assert "completed" in framefarm("status", "demo").stdout
    assert "demo" in framefarm("jobs").stdout
    assert framefarm("logs", "demo", "--chunk", "1").returncode == 0


@pytest.mark.slow
def test_stitch_again_to_another_file(tmp_path):
    job = shortened_example(tmp_path, total_frames=20, frames_per_chunk=10)
    assert framefarm("render", str(job), "--job-id", "again").returncode == 0
    result = framefarm("stitch", "again", "-o", str(tmp_path / "copy.mp4"))
    assert result.returncode == 0, result.stderr
    assert len(packets(tmp_path / "copy.mp4")) == 20


@pytest.mark.parametrize(("text", "message"), [
    ("width: 64\n  height: [48\n", "invalid YAML at line 2, column 9"),
    ("width: 64\nheight: 48\nfps: 10\ntotal_frames: 20\nchunks: 2\ncommand: x\nspeed: 11\n", "speed: unknown field"),
    (json.dumps({"metadata": {"total_frames": 20, "fps": 10, "width": 64, "height": 48}, "chunks": [
        {"id": 0, "start_frame": 0, "frame_count": 12, "output_file": "a.mp4", "command": "x"},
        {"id": 1, "start_frame": 10, "frame_count": 10, "output_file": "b.mp4", "command": "x"}]}),
     "chunks[1].start_frame: 10 overlaps chunk 0 (frames 0-11)"),
    (json.dumps({"metadata": {"total_frames": 20, "fps": 10, "width": 64, "height": 48}, "chunks": [
        {"id": 0, "start_frame": 0, "frame_count": 20, "output_file": "../../x", "command": "x"}]}),
     "chunks[0].output_file: '../../x' escapes the job directory"),
])
def test_bad_job_files_give_one_clear_line_and_write_nothing(tmp_path, text, message):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    result = framefarm("render", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {path}: {message}")
    assert store().list() == []


def test_missing_ffmpeg_is_one_line_and_writes_nothing(tmp_path):
    result = framefarm("render", str(EXAMPLE), env={"FRAMEFARM_FFMPEG": str(tmp_path / "no-ffmpeg")})
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: ffmpeg not found at '{tmp_path / 'no-ffmpeg'}' (from FRAMEFARM_FFMPEG); "
                                      "point FRAMEFARM_FFMPEG at an ffmpeg binary")
    assert store().list() == []


def test_sqlite_too_old_for_the_store_is_one_line_exit_2(monkeypatch, capsys):
    # GIVEN a Python linked against SQLite 3.22 (Ubuntu 18.04's)
    import sqlite3

    from framefarm.cli import main

    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 22, 0))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.22.0")
    # WHEN any command opens the local job store
    code = main(["jobs"])
    # THEN it exits 2 with one line naming the version found and the one needed
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: SQLite 3.22.0 is too old for the local job store (it needs 3.31 or newer); ")


def test_chunk_that_exits_1_fails_the_job_and_the_store_stays_consistent(tmp_path):
    job = python_job(tmp_path, "import sys; print('bad frame', file=sys.stderr); "
                               "sys.exit(1) if sys.argv[1] == '1' else open(sys.argv[2], 'w').write('x')", chunks=3)
    result = framefarm("render", str(job), "--job-id", "broken", "--retries", "0", "--concurrency", "1")
    assert result.returncode == 1
    assert "error: job broken failed: Chunk 1 failed after 1 attempt: bad frame" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    status = store().require("broken")
    assert status.state is JobState.FAILED
    assert [c.state for c in status.chunks] == [ChunkState.COMPLETED, ChunkState.FAILED, ChunkState.PENDING]
    assert status.chunk(1).stderr_tail == "bad frame\n"
    assert status.completed_chunks == 1 and status.metrics.failed_attempts == 1
    assert "bad frame" in framefarm("logs", "broken", "--chunk", "1").stdout


def test_logs_show_a_long_log_whole_and_a_short_one_from_its_record(tmp_path):
    # GIVEN chunks whose output is longer than a record's tail (chunk 1) or short (chunk 0)
    job = python_job(tmp_path, "import sys; n = 3000 if sys.argv[1] == '1' else 1; "
                               "[print('line %05d' % i) for i in range(n)]; open(sys.argv[2], 'w').write('x')")
    assert framefarm("render", str(job), "--job-id", "chatty", "--no-stitch").returncode == 0
    assert len(store().require("chatty").chunk(1).stdout_tail) == TAIL_CHARS  # cut, the whole log in storage
    # WHEN their logs are shown, THEN the long one is whole and the short one is there too
    long_log = framefarm("logs", "chatty", "--chunk", "1").stdout
    assert "line 00000" in long_log and "line 02999" in long_log
    assert "line 00000" in framefarm("logs", "chatty", "--chunk", "0").stdout


def test_unknown_job_is_one_line(tmp_path):
    for command in ("status", "logs", "cancel", "pause", "resume", "stitch"):
        result = framefarm(command, "nope")
        assert result.returncode == 2, command
        assert re.fullmatch(r"error: No job 'nope' in the local job store \S+/jobs\.db", result.stderr.strip()), command


def wait_for_state(job_id: str, state: JobState, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = store().get(job_id)
        if status is not None and status.state is state and status.heartbeat_at:
            return
        time.sleep(0.1)
    raise AssertionError(f"{job_id} never reached {state}")


def test_cancel_from_another_terminal_stops_the_render(tmp_path):
    # GIVEN a render whose chunks take a minute, running in its own process
    job = python_job(tmp_path, "import time; time.sleep(60)")
    render = subprocess.Popen([sys.executable, "-m", "framefarm", "render", str(job), "--job-id", "slow"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_state("slow", JobState.RUNNING)
    # WHEN another process cancels it
    cancel = framefarm("cancel", "slow")
    # THEN the render exits 130 within a heartbeat or two, and the job is cancelled
    assert cancel.returncode == 0 and "asked the process running slow to cancel" in cancel.stderr
    assert render.wait(30) == 130
    assert store().require("slow").state is JobState.CANCELLED


@pytest.fixture
def chunk_pids(tmp_path):
    """Where the chunks of ``minute_long_render`` write their pids; those still running afterwards are killed."""
    directory = tmp_path / "pids"
    directory.mkdir()
    yield directory
    for path in directory.glob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(path.read_text()), signal.SIGKILL)


def minute_long_render(tmp_path: Path, chunk_pids: Path, job_id: str, **popen) -> tuple[subprocess.Popen, list[int]]:
    """A `framefarm render` of two chunks that run for a minute; returns it and its chunks' pids once they run."""
    job = python_job(tmp_path, f"import os, sys, time; path = {str(chunk_pids)!r} + '/' + sys.argv[1]; "
                               "open(path + '.tmp', 'w').write(str(os.getpid())); os.rename(path + '.tmp', path + '.pid'); "
                               "time.sleep(60)")
    render = subprocess.Popen([sys.executable, "-m", "framefarm", "render", str(job), "--job-id", job_id], **popen)
    wait_for_state(job_id, JobState.RUNNING)
    files = eventually(lambda: len(found := sorted(chunk_pids.glob("*.pid"))) == 2 and found,
                       timeout=30, what="both chunks running")
    return render, [int(path.read_text()) for path in files]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_render_sent_sigterm_or_sighup_cancels_its_job_and_kills_its_chunks(tmp_path, chunk_pids, signum):
    # GIVEN a render whose two chunks run for a minute
    render, chunks = minute_long_render(tmp_path, chunk_pids, "killed", stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
    # WHEN it is sent SIGTERM (`kill`, a CI timeout) or SIGHUP
    render.send_signal(signum)
    # THEN it exits 130 like a Ctrl-C, saying so, with the job cancelled and no chunk process left
    _, err = render.communicate(timeout=30)
    assert render.returncode == 130, err
    assert "killed cancelled: Job cancelled" in err
    assert store().require("killed").state is JobState.CANCELLED
    assert [pid for pid in chunks if process_alive(pid)] == []


def test_closing_the_terminal_of_a_render_cancels_its_job_and_kills_its_chunks(tmp_path, chunk_pids):
    # GIVEN a render on a terminal of its own (a pseudo-terminal, read all along like a terminal window)
    window, terminal = pty.openpty()
    render, chunks = minute_long_render(tmp_path, chunk_pids, "hung-up", stdin=terminal, stdout=terminal,
                                        stderr=terminal, preexec_fn=lambda: os.login_tty(terminal))
    os.close(terminal)
    closing = threading.Event()

    def read_the_terminal() -> None:
        while not closing.is_set():
            if select.select([window], [], [], 0.05)[0]:
                try:
                    os.read(window, 65536)
                except OSError:
                    return

    reader = threading.Thread(target=read_the_terminal, daemon=True)
    reader.start()
    # WHEN the terminal is closed (the kernel hangs it up and sends the render SIGHUP)
    closing.set()
    reader.join(10)
    os.close(window)
    # THEN it exits 130, not crashing on the dead terminal, with the job cancelled and no chunk process left
    assert render.wait(30) == 130
    assert store().require("hung-up").state is JobState.CANCELLED
    assert [pid for pid in chunks if process_alive(pid)] == []


def test_a_signal_landing_while_the_main_thread_holds_the_cancel_token_still_cancels():
    # GIVEN a process whose main thread holds its cancel token's lock when Ctrl-C lands
    code = ("import signal\n"
            "from framefarm.cancel import CancelToken\n"
            "from framefarm.cli.signals import cancel_on_interrupt\n"
            "token = CancelToken()\n"
            "with cancel_on_interrupt(lambda: token.cancel('cancelled')):\n"
            "    with token._lock:\n"
            "        signal.raise_signal(signal.SIGINT)\n"
            "    print('cancelled' if token.wait(10) else 'not cancelled')\n")
    # WHEN the handler runs there, THEN the token is cancelled (cancelling inside the handler deadlocked)
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the signal handler deadlocked on the token's lock")
    assert (result.returncode, result.stdout) == (0, "cancelled\n"), result.stderr


def test_the_chunks_of_a_render_killed_with_sigkill_die_with_it(tmp_path, chunk_pids):
    # GIVEN a render whose two chunks run for a minute
    render, chunks = minute_long_render(tmp_path, chunk_pids, "sigkilled", stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
    # WHEN it is killed with SIGKILL, which it cannot handle
    render.kill()
    render.wait(30)
    # THEN its chunk processes die with it
    eventually(lambda: not any(process_alive(pid) for pid in chunks), timeout=10, what="every chunk process gone")
    # AND a cancel takes effect at once: its runner's process is gone, so nothing waits for its lease to run out
    assert store().require("sigkilled").state is JobState.RUNNING
    cancelled = framefarm("cancel", "sigkilled")
    assert cancelled.returncode == 0, cancelled.stderr
    assert store().require("sigkilled").state is JobState.CANCELLED


def test_a_render_started_ignoring_hangups_renders_through_one(tmp_path):
    # GIVEN a render started under nohup (SIGHUP ignored), whose two chunks finish once a file appears
    go = tmp_path / "go"
    job = python_job(tmp_path, f"import os, sys, time; deadline = time.time() + 60\n"
                               f"while not os.path.exists({str(go)!r}) and time.time() < deadline: time.sleep(0.05)\n"
                               f"open(sys.argv[2], 'w').write('x')")
    render = subprocess.Popen([sys.executable, "-m", "framefarm", "render", str(job), "--job-id", "nohup",
                               "--no-stitch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    wait_for_state("nohup", JobState.RUNNING)
    # WHEN it gets a SIGHUP, and then its chunks finish
    render.send_signal(signal.SIGHUP)
    go.touch()
    # THEN it rendered every chunk as if nothing happened
    _, err = render.communicate(timeout=60)
    assert render.returncode == 0, err
    assert store().require("nohup").completed_chunks == 2


def test_pause_from_another_terminal_then_resume_finishes(tmp_path):
    # GIVEN a render of 4 chunks, one at a time, each held until the test opens a gate, then one second
    # long (a pause command that starts slowly on a loaded machine must not find the job done)
    gate = tmp_path / "gate"
    job = python_job(tmp_path, "import pathlib, sys, time\n"
                               "deadline = time.monotonic() + 120\n"
                               f"while not pathlib.Path({str(gate)!r}).exists() and time.monotonic() < deadline:\n"
                               "    time.sleep(0.05)\n"
                               "time.sleep(1); open(sys.argv[2], 'w').write('x')", chunks=4)
    render = subprocess.Popen([sys.executable, "-m", "framefarm", "render", str(job), "--job-id", "p",
                               "--concurrency", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "FRAMEFARM_HEARTBEAT_INTERVAL": "0.2"})
    wait_for_state("p", JobState.RUNNING)
    # WHEN it is paused (the runner sees it at its next heartbeat), THEN the render exits 3 after the chunk in flight
    assert framefarm("pause", "p").returncode == 0
    gate.touch()
    _, err = render.communicate(timeout=60)
    assert render.returncode == 3, err
    paused = store().require("p")
    assert paused.state is JobState.PAUSED and paused.completed_chunks < 4
    # WHEN it is resumed (chunks only: these chunks write no video)
    resumed = framefarm("resume", "p", "--no-stitch")
    # THEN it completes with every chunk run exactly once
    assert resumed.returncode == 0, resumed.stderr
    final = store().require("p")
    assert final.state is JobState.RENDERED and final.completed_chunks == 4  # ready to stitch
    assert all(c.attempts == 1 for c in final.chunks)


def video_job(tmp_path: Path, plan: dict[str, list[str]], chunks: int) -> Path:
    """Chunks of real video from tests/faulty_chunk.py, which never overwrites an output (like ffmpeg without -y)."""
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    (plan_dir / "plan.json").write_text(json.dumps(plan))
    return write_job(tmp_path, width=64, height=48, fps=10, total_frames=5 * chunks, frames_per_chunk=5,
                     command=[sys.executable, str(FAULTY_CHUNK), str(plan_dir), "{chunk_id}", "{output}", "{ffmpeg}",
                              "testsrc2=size={width}x{height}:rate={fps}", "{start_frame}", "{end_frame}"],
                     output=str(tmp_path / "video.mp4"))


def calls(tmp_path: Path) -> dict[int, int]:
    """How many times the worker ran each chunk's command."""
    return {int(path.name.removeprefix("calls-")): len(path.read_text().splitlines())
            for path in (tmp_path / "plan").glob("calls-*")}


def test_a_chunk_killed_mid_render_is_rendered_again_on_resume_and_the_job_stitches(tmp_path):
    # GIVEN a render whose chunk 0 writes a 48-byte stub and is still rendering, with a command that
    # never overwrites an output and exits 0 when one exists (ffmpeg without -y)
    job = video_job(tmp_path, {"0": ["stub-hang"]}, chunks=2)
    render = subprocess.Popen([sys.executable, "-m", "framefarm", "render", str(job), "--job-id", "stub"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    chunk_dir = Path(os.environ["FRAMEFARM_HOME"]) / "jobs" / "stub" / "chunks"
    wait_for_state("stub", JobState.RUNNING)
    eventually(lambda: any(path.stat().st_size == 48 for path in chunk_dir.glob("*00000*")), what="the stub")
    # WHEN it is cancelled from another terminal, then resumed
    assert framefarm("cancel", "stub").returncode == 0
    assert render.wait(30) == 130
    resumed = framefarm("resume", "stub")
    # THEN chunk 0 was rendered again, not taken from the stub, and the job stitched every frame
    assert resumed.returncode == 0, resumed.stderr
    assert calls(tmp_path) == {0: 2, 1: 1}
    assert store().require("stub").state is JobState.COMPLETED
    assert len(packets(tmp_path / "video.mp4")) == 10


def test_retry_renders_exactly_the_chosen_chunks_of_a_finished_job(tmp_path):
    # GIVEN a rendered, stitched job of 3 chunks
    job = video_job(tmp_path, {}, chunks=3)
    assert framefarm("render", str(job), "--job-id", "again").returncode == 0
    # WHEN chunks 0 and 2 are retried
    result = framefarm("retry", "again", "--chunk", "2", "--chunk", "0")
    # THEN the worker ran exactly those again, and the job is stitched anew from every frame
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path) == {0: 2, 1: 1, 2: 2}
    final = store().require("again")
    assert final.state is JobState.COMPLETED and [record.attempts for record in final.chunks] == [2, 1, 2]
    assert len(packets(tmp_path / "video.mp4")) == 15
    # AND chunks the job does not have are refused in one line, naming them
    refused = framefarm("retry", "again", "--chunk", "1", "--chunk", "7")
    assert (refused.returncode, refused.stderr.strip()) == (2, "error: job 'again' has no chunk 7 (its chunk ids run 0-2)")
    assert calls(tmp_path) == {0: 2, 1: 1, 2: 2}


def test_retry_without_stitching_says_the_video_must_be_stitched_again(tmp_path):
    # GIVEN a rendered, stitched job
    job = video_job(tmp_path, {}, chunks=2)
    assert framefarm("render", str(job), "--job-id", "stale-video").returncode == 0
    # WHEN a chunk is retried without stitching
    result = framefarm("retry", "stale-video", "--chunk", "1", "--no-stitch")
    # THEN the last line says the video predates it and how to stitch again
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path) == {0: 1, 1: 2}
    last = " ".join(result.stderr.strip().splitlines()[-2:])
    assert last.endswith(f"its video {tmp_path / 'video.mp4'} predates this retry: once the chunks are done, "
                         "stitch again with `framefarm stitch stale-video`"), result.stderr


@pytest.mark.slow
def test_render_with_an_asset_directory(tmp_path, encode_chunk):
    # GIVEN an input video in an asset directory, and a job whose chunks cut frames from it
    assets = tmp_path / "assets"
    encode_chunk(assets / "input.mp4", 0, 20, size="160x120", fps=10)
    job = write_job(tmp_path, width=160, height=120, fps=10, total_frames=20, frames_per_chunk=10,
                    command="{ffmpeg} -hide_banner -loglevel error -y -i input.mp4 "
                            "-vf trim=start_frame={start_frame}:end_frame={end_frame},setpts=PTS-STARTPTS "
                            "-an -c:v libx264 -pix_fmt yuv420p {output}",
                    output=str(tmp_path / "cut.mp4"))
    # WHEN it is rendered with --assets
    result = framefarm("render", str(job), "--assets", str(assets), "--job-id", "with-assets")
    # THEN the chunks found the input and the video has every frame
    assert result.returncode == 0, result.stderr
    assert len(packets(tmp_path / "cut.mp4")) == 20


def test_cloud_run_workers_get_the_assets_of_a_job_kept_in_the_local_store(tmp_path):
    from tests.helpers import WorkerServer

    # GIVEN an asset file, a job whose chunks copy it to their output, and the real worker server
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "greeting.txt").write_text("hello")
    job = python_job(tmp_path, "import shutil, sys; shutil.copy('greeting.txt', sys.argv[2])")
    server = WorkerServer(timeout=60)
    try:
        # WHEN it renders on Cloud Run with --assets (the spec workers read is stored apart from the job)
        result = framefarm("render", str(job), "--backend", "cloudrun", "--service", server.url,
                           "--assets", str(assets), "--job-id", "cloudrun-assets", "--no-stitch")
    finally:
        server.close()
    # THEN every chunk found the asset in its work dir
    assert result.returncode == 0, result.stderr
    chunks = sorted((Path(os.environ["FRAMEFARM_HOME"]) / "jobs" / "cloudrun-assets" / "chunks").iterdir())
    assert [chunk.read_text() for chunk in chunks] == ["hello", "hello"]


def test_an_existing_job_id_is_refused_before_its_assets_are_replaced(tmp_path):
    # GIVEN a job rendered with an asset
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "greeting.txt").write_text("first")
    job = python_job(tmp_path, "import shutil, sys; shutil.copy('greeting.txt', sys.argv[2])")
    assert framefarm("render", str(job), "--assets", str(assets), "--job-id", "taken", "--no-stitch").returncode == 0
    bundle = Path(os.environ["FRAMEFARM_HOME"]) / "jobs" / "taken" / "assets.zip"
    before = bundle.read_bytes()
    # WHEN another render reuses its id with other assets
    (assets / "greeting.txt").write_text("second, and longer")
    result = framefarm("render", str(job), "--assets", str(assets), "--job-id", "taken")
    # THEN it is refused in one line and the first job's bundle is untouched
    assert (result.returncode, result.stderr.strip()) == (
        2, "error: job 'taken' already exists; resume it or choose another id")
    assert bundle.read_bytes() == before


@pytest.mark.slow
def test_render_on_a_cloud_run_worker_server(tmp_path):
    from tests.helpers import WorkerServer

    # GIVEN the real worker server on 127.0.0.1 (it reads specs from the same local store)
    server = WorkerServer(timeout=60)
    try:
        job = shortened_example(tmp_path, total_frames=30, frames_per_chunk=10, audio=None)
        # WHEN a job renders through it
        result = framefarm("render", str(job), "--backend", "cloudrun", "--service", server.url,
                           "--job-id", "cloudrun", "--concurrency", "1")
        # THEN every frame is there, and each chunk was billed in 100 ms steps
        assert result.returncode == 0, result.stderr
        assert len(packets(tmp_path / "out" / "testsrc.mp4")) == 30
        status = store().require("cloudrun")
        assert status.state is JobState.COMPLETED
        assert all(c.billed_duration_ms % 100 == 0 and c.cost_usd > 0 for c in status.chunks)
    finally:
        server.close()


def test_stitch_refuses_a_job_a_runner_holds(tmp_path):
    # GIVEN a job whose chunks are rendered, then taken by a runner (a retry or resume started elsewhere)
    job = python_job(tmp_path, "import sys; open(sys.argv[2], 'w').write('x')")
    assert framefarm("render", str(job), "--job-id", "held", "--no-stitch").returncode == 0
    now = time.time()
    assert store().take_lease("held", Lease("elsewhere:1:runner", now + 3600), now=now, expected={JobState.RENDERED})
    # WHEN it is stitched, THEN it is refused in one line, and the job is left to its runner
    stitched = framefarm("stitch", "held")
    assert stitched.returncode == 2 and "a runner holds it" in stitched.stderr, stitched.stderr
    assert store().require("held").state is JobState.RUNNING
