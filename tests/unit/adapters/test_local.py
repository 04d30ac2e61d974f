"""LocalWorkerAdapter: no shell, live streaming equal to the buffered output, timeout, cancel."""

from __future__ import annotations

import os
import sys
import threading

from framefarm import CancelToken, LocalWorkerAdapter, WorkerAdapter, WorkerJob
from framefarm.adapters import local
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
    assert results[0].error == "cancelled" and results[0].exit_code < 0 and results[0].stdout == "go\n"


def test_already_cancelled_token_kills_at_once():
    token = CancelToken()
    token.cancel()
    result = LocalWorkerAdapter().execute(python("import time; time.sleep(60)", cancel=token))
    assert result.error == "cancelled"


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
