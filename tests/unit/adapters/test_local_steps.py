"""LocalWorkerAdapter with several commands (``Steps``): in order, in one directory, one deadline,
the first failure ends the attempt and names its step, every step's output kept."""

from __future__ import annotations

import re
import sys

from framefarm import CancelToken, LocalWorkerAdapter, WorkerJob
from framefarm.failures import FailureKind
from framefarm.spec import Steps

PY = sys.executable


def step(code: str) -> list[str]:
    return [PY, "-c", code]


def test_steps_run_in_order_in_the_chunk_directory_and_every_output_is_kept(tmp_path):
    # GIVEN a render step writing frames and an encode step reading them into the chunk's output
    render = step("import os, sys; os.makedirs('frames'); [open(f'frames/{i}', 'w').write(str(i)) for i in range(3)];"
                  " print('rendered'); print('render log', file=sys.stderr)")
    encode = step("import os, sys; open(sys.argv[1], 'w').write(''.join(open('frames/' + f).read()"
                  " for f in sorted(os.listdir('frames')))); print('encoded'); print('encode log', file=sys.stderr)")
    out: list[str] = []
    job = WorkerJob(command=Steps(steps=[render, [*encode, "chunks/0.mp4"]]), cwd=tmp_path,
                    meta={"output_file": "chunks/0.mp4"}, on_stdout=out.append)
    (tmp_path / "chunks").mkdir()
    # WHEN the adapter runs the chunk
    result = LocalWorkerAdapter().execute(job)
    # THEN both ran, in order, in the chunk's directory; the output is in place; both logs are kept
    assert result.ok, result
    assert (tmp_path / "chunks" / "0.mp4").read_text() == "012"
    assert result.stdout == "rendered\nencoded\n" and "".join(out) == result.stdout
    assert result.stderr == "render log\nencode log\n"


def test_the_first_failing_step_ends_the_attempt_with_its_exit_code_and_name(tmp_path):
    # GIVEN three steps whose second exits 3
    marker = tmp_path / "third-ran"
    steps = Steps(steps=[step("print('one')"), step("import sys; print('two fails', file=sys.stderr); sys.exit(3)"),
                         step(f"open({str(marker)!r}, 'w')")])
    # WHEN they run
    result = LocalWorkerAdapter().execute(WorkerJob(command=steps, cwd=tmp_path))
    # THEN the attempt failed with step 2's exit code, the error names step 2, and step 3 never ran
    assert (result.kind, result.exit_code) == (FailureKind.EXIT_CODE, 3)
    assert result.error == f"step 2 of 3 ({PY.rsplit('/', 1)[-1]}) exited 3"
    assert result.stdout == "one\n" and result.stderr == "two fails\n"
    assert not marker.exists()


def test_a_step_that_cannot_start_is_named(tmp_path):
    # GIVEN a second step whose program does not exist
    steps = Steps(steps=[step("print('one')"), ["framefarm-no-such-program", "-b"]])
    # WHEN they run
    result = LocalWorkerAdapter().execute(WorkerJob(command=steps, cwd=tmp_path))
    # THEN the error says which step and why, with the shell's "not found" status
    assert (result.kind, result.exit_code) == (FailureKind.EXIT_CODE, 127)
    assert result.error == "step 2 of 2 (framefarm-no-such-program): command not found: framefarm-no-such-program"


def test_one_timeout_covers_all_steps(tmp_path):
    # GIVEN three steps that each wait under the timeout, but together well past it
    wait = step("import time; time.sleep(2.5)")
    job = WorkerJob(command=Steps(steps=[wait, wait, wait]), cwd=tmp_path, timeout=4.0)
    # WHEN they run
    result = LocalWorkerAdapter().execute(job)
    # THEN the attempt timed out (a timeout per step would have let all three finish), naming the step
    assert (result.kind, result.exit_code) == (FailureKind.TIMEOUT, 124)
    assert re.fullmatch(rf"timed out after 4 s in step [12] of 3 \({re.escape(PY.rsplit('/', 1)[-1])}\)",
                        result.error or ""), result.error


def test_a_cancel_kills_the_running_step_and_starts_no_other(tmp_path):
    # GIVEN a first step that says it started and then waits, and a second that would leave a marker
    marker = tmp_path / "second-ran"
    token = CancelToken()
    steps = Steps(steps=[step("import time; print('waiting', flush=True); time.sleep(60)"),
                         step(f"open({str(marker)!r}, 'w')")])
    # WHEN the attempt is cancelled as soon as step 1 has said it is waiting
    job = WorkerJob(command=steps, cwd=tmp_path, cancel=token, on_stdout=lambda text: token.cancel())
    result = LocalWorkerAdapter().execute(job)
    # THEN step 1 was killed (not waited out), the attempt ends cancelled, and step 2 never started
    assert (result.kind, result.exit_code) == (FailureKind.CANCELLED, 137) and result.stdout.startswith("waiting")
    assert not marker.exists()


def test_a_single_command_reports_as_before(tmp_path):
    # GIVEN one failing command (not Steps)
    result = LocalWorkerAdapter().execute(WorkerJob(command=step("import sys; sys.exit(5)"), cwd=tmp_path))
    # THEN no step is named: the error stays the exit code alone
    assert (result.kind, result.exit_code, result.error) == (FailureKind.EXIT_CODE, 5, None)


def test_pwd_is_the_directory_the_command_runs_in(tmp_path, monkeypatch):
    # GIVEN a runner whose own PWD is elsewhere (Blender resolves `--python make_scene.py` from $PWD)
    monkeypatch.setenv("PWD", "/")
    # WHEN a command runs in the chunk's directory
    result = LocalWorkerAdapter().execute(WorkerJob(command=step("import os; print(os.environ['PWD'])"),
                                                    cwd=tmp_path))
    # THEN it sees that directory as $PWD too, as a shell would set it
    assert result.stdout == f"{tmp_path}\n"
