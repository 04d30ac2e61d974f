"""LocalWorkerAdapter: no shell, live streaming equal to the buffered output, timeout, cancel."""

from __future__ import annotations

import os
import sys
import threading

from framefarm import CancelToken, LocalWorkerAdapter, WorkerAdapter, WorkerJob
from framefarm.adapters import local
from framefarm.failures import FailureKind
from tests.helpers import eventually, process_alive

PY = sys.executable


def python(code: str, **kwargs) -> WorkerJob:
    return WorkerJob(command=[PY, "-c", code], **kwargs)


def test_is_a_worker_adapter():
    assert isinstance(LocalWorkerAdapter(), WorkerAdapter)


def test_exit_code_and_separate_streams():
    result = LocalWorkerAdapter().execute(python("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"))
    assert (result.exit_code, result.stdout, result.stderr, result.error) == (3, "out\n", "err\n", None)
    assert not result.ok and result.duration_ms > 0


def test_streamed_text_joined_equals_buffered_output_for_large_interleaved_output():
    # GIVEN a command writing 2 MB to stdout and stderr in many writes, with multi-byte characters
    code = ("import sys\n"
            "for i in range(20000):\n"
            "    sys.stdout.write(f'{i:05d} é€😀 stdout line\\n'); sys.stderr.write(f'{i} err ✓\\n')\n"
            "    if i % 1000 == 0: sys.stdout.flush(); sys.stderr.flush()\n")
    out, err = [], []
    # WHEN it runs with streaming callbacks
    result = LocalWorkerAdapter().execute(python(code, on_stdout=out.append, on_stderr=err.append))
    # THEN the streamed pieces join to exactly the buffered text, intact
    assert result.exit_code == 0
    assert "".join(out) == result.stdout and "".join(err) == result.stderr
    assert result.stdout.count("\n") == 20000 and "19999 é€😀 stdout line\n" in result.stdout
    assert len(out) > 1  # it really streamed in pieces


def test_output_arrives_live_before_the_process_exits():
    # GIVEN a process that prints, then waits until the test has seen that line
    seen = threading.Event()

    def on_stdout(text):
        if "ready" in text:
            seen.set()

    code = "import time; print('ready', flush=True); time.sleep(60)"
    token = CancelToken()
    thread = threading.Thread(target=lambda: LocalWorkerAdapter().execute(
        python(code, on_stdout=on_stdout, cancel=token)))
    thread.start()
    # THEN the line arrived while it was still running
    assert seen.wait(30)
    assert thread.is_alive()
    token.cancel()
    thread.join(30)


def test_no_shell_metacharacters_are_literal(tmp_path):
    marker = tmp_path / "pwned"
    result = LocalWorkerAdapter().execute(WorkerJob(command=f"echo 'a; touch {marker}' $(id) `id` | cat"))
    assert result.stdout == f"a; touch {marker} $(id) `id` | cat\n"
    assert not marker.exists()


def test_args_cwd_and_env(tmp_path):
    job = WorkerJob(command=[PY, "-c", "import os, sys; print(os.getcwd(), os.environ['FF_X'], *sys.argv[1:])"],
                    args=["a b", "c"], cwd=tmp_path, env={"FF_X": "42"})
    assert LocalWorkerAdapter().execute(job).stdout == f"{tmp_path} 42 a b c\n"


def test_ffmpeg_placeholder_is_the_configured_tool():
    result = LocalWorkerAdapter(tools={"ffmpeg": "echo"}).execute(WorkerJob(command="{ffmpeg} -version"))
    assert result.stdout == "-version\n"


def test_bundled_ffmpeg_is_used_for_the_placeholder():
    result = LocalWorkerAdapter().execute(WorkerJob(command="{ffmpeg} -hide_banner -version"))
    assert result.exit_code == 0 and result.stdout.startswith("ffmpeg version")


def test_missing_command_is_a_failed_result_not_an_exception():
    result = LocalWorkerAdapter().execute(WorkerJob(command="definitely-not-a-program-xyz --flag"))
    assert (result.exit_code, result.error) == (127, "command not found: definitely-not-a-program-xyz")


def test_timeout_kills_the_process_group_and_keeps_output_so_far(tmp_path):
    # GIVEN a command that prints, starts a child, then sleeps past its timeout
    pid_file = tmp_path / "child.pid"
    code = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); print('started', flush=True); time.sleep(60)")
    # WHEN it runs with a 1 s timeout
    result = LocalWorkerAdapter().execute(python(code, timeout=1.0))
    # THEN it reports a timeout, keeps the output, and the child process is gone too
    assert (result.exit_code, result.error, result.stdout) == (124, "timed out after 1 s", "started\n")
    assert result.kind is FailureKind.TIMEOUT and result.transient
    child = int(pid_file.read_text())  # SIGKILL lands asynchronously, and init reaps the orphan
    eventually(lambda: not process_alive(child), timeout=10, what="the command's child gone")


def test_cancel_kills_a_running_command():
    token = CancelToken()
    started = threading.Event()
    results = []
    thread = threading.Thread(target=lambda: results.append(LocalWorkerAdapter().execute(python(
        "import time; print('go', flush=True); time.sleep(60)", cancel=token,
        on_stdout=lambda t: t.endswith("\n") and started.set()))))
    thread.start()
    assert started.wait(30)
    token.cancel()
    thread.join(30)
    # THEN it is a cancelled attempt whose exit code is SIGKILL's as a shell reports it, never negative
    assert (results[0].kind, results[0].error, results[0].exit_code) == (FailureKind.CANCELLED, "cancelled", 137)
    assert results[0].stdout == "go\n"


def test_already_cancelled_token_kills_at_once():
    token = CancelToken()
    token.cancel()
    result = LocalWorkerAdapter().execute(python("import time; time.sleep(60)", cancel=token))
    assert result.kind is FailureKind.CANCELLED and result.error == "cancelled"


def test_where_there_is_no_prctl_commands_run_without_a_parent_death_signal(monkeypatch):
    # GIVEN a platform without prctl
    monkeypatch.setattr(local.sys, "platform", "darwin")
    local._prctl.cache_clear()
    try:
        # WHEN a command runs, THEN it runs as before, with nothing to run before exec
        assert local._die_with(os.getpid()) is None
        result = LocalWorkerAdapter().execute(python("print('ok')"))
        assert (result.exit_code, result.stdout) == (0, "ok\n")
    finally:
        local._prctl.cache_clear()


def chunk_job(tmp_path, code: str, output_file: str = "chunks/00007.mp4", **kwargs) -> WorkerJob:
    (tmp_path / output_file).parent.mkdir(parents=True, exist_ok=True)
    return WorkerJob(command=[PY, "-c", code, output_file], cwd=tmp_path,
                     meta={"chunk_id": 7, "output_file": output_file}, **kwargs)


def test_a_chunk_writes_a_name_of_its_own_put_in_place_on_success(tmp_path):
    # GIVEN a chunk command that reports the name it was given and writes there
    job = chunk_job(tmp_path, "import sys; print(sys.argv[1]); open(sys.argv[1], 'w').write('frames')")
    # WHEN it runs
    result = LocalWorkerAdapter().execute(job)
    # THEN it wrote beside the output, under its own name with the same suffix, and that file is now the output
    written = result.stdout.strip()
    assert result.ok and written.startswith("chunks/.00007.") and written.endswith(".mp4")
    assert (tmp_path / "chunks" / "00007.mp4").read_text() == "frames"
    assert sorted(path.name for path in (tmp_path / "chunks").iterdir()) == ["00007.mp4"]


def test_a_cancelled_chunk_leaves_nothing_under_its_output_name(tmp_path):
    # GIVEN a chunk that wrote part of its output and is still rendering
    token = CancelToken()
    wrote = threading.Event()
    job = chunk_job(tmp_path, "import sys, time; f = open(sys.argv[1], 'wb'); f.write(bytes(48)); f.flush(); "
                              "print('partial', flush=True); time.sleep(60)",
                    cancel=token, on_stdout=lambda text: wrote.set())
    results = []
    thread = threading.Thread(target=lambda: results.append(LocalWorkerAdapter().execute(job)))
    thread.start()
    assert wrote.wait(30)
    # WHEN it is cancelled
    token.cancel()
    thread.join(30)
    # THEN neither the partial file nor anything else is left where the output goes
    assert results[0].error == "cancelled"
    assert list((tmp_path / "chunks").iterdir()) == []


def test_a_command_that_does_not_name_its_output_cannot_pass_off_an_old_file(tmp_path):
    # GIVEN an output left by an earlier attempt, and a command that writes a fixed path it does not pass on
    (tmp_path / "chunks").mkdir()
    (tmp_path / "chunks" / "00007.mp4").write_text("left by an earlier attempt")
    job = WorkerJob(command=[PY, "-c", "pass"], cwd=tmp_path, meta={"chunk_id": 7, "output_file": "chunks/00007.mp4"})
    # WHEN it exits 0 without writing
    result = LocalWorkerAdapter().execute(job)
    # THEN the old file was removed before it ran, and the chunk fails
    assert (result.exit_code, result.kind) == (0, FailureKind.NO_OUTPUT)
    assert result.error == "exit code 0 but no output at chunks/00007.mp4"
    assert not (tmp_path / "chunks" / "00007.mp4").exists()


def test_only_the_output_path_itself_is_redirected(tmp_path):
    # GIVEN a command naming its output, a sidecar derived from it, and another file that ends in the same name
    code = "import sys; print(*sys.argv[1:])"
    job = WorkerJob(command=[PY, "-c", code, "--out=a.mp4", "a.mp4.log", "data.mp4", "old/a.mp4"], cwd=tmp_path,
                    meta={"chunk_id": 0, "output_file": "a.mp4"})
    # WHEN it runs
    result = LocalWorkerAdapter().execute(job)
    # THEN only the output argument points elsewhere
    out, sidecar, data, old = result.stdout.split()
    assert out.startswith("--out=.a.") and out.endswith(".mp4")
    assert (sidecar, data, old) == ("a.mp4.log", "data.mp4", "old/a.mp4")


def test_an_attempt_clears_the_files_earlier_attempts_left_behind(tmp_path):
    # GIVEN files of earlier attempts at chunk 7 that a killed runner left, and another chunk's
    chunks = tmp_path / "chunks"
    chunks.mkdir()
    for name in (".00007.0123456789ab.mp4", ".00007.ba9876543210.mp4", ".00008.0123456789ab.mp4"):
        (chunks / name).write_bytes(bytes(48))
    # WHEN chunk 7 renders again
    result = LocalWorkerAdapter().execute(chunk_job(tmp_path, "import sys; open(sys.argv[1], 'w').write('frames')"))
    # THEN only its output and the other chunk's file are there
    assert result.ok
    assert sorted(path.name for path in chunks.iterdir()) == [".00008.0123456789ab.mp4", "00007.mp4"]
