"""What the read commands and `render` show: `--json` documents, tables at 80 columns, piped progress."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading

from framefarm.status import ChunkState
from tests.helpers import eventually
from tests.integration.test_cli import chunk_pids, framefarm, python_job, shortened_example, store

__all__ = ["chunk_pids"]  # a fixture of the CLI tests, used here too

JOB_FIELDS = {"id", "state", "total_chunks", "completed_chunks", "progress", "created_at", "updated_at", "output",
              "error", "frames", "fps", "width", "height", "duration_ms", "billed_ms", "cost_usd", "failed_attempts",
              "pause_reason", "max_cost"}


def read_json(*args: str) -> dict:
    result = framefarm(*args, "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout  # one document on one line, nothing else on stdout
    return json.loads(lines[0])


def test_every_read_command_writes_one_versioned_json_document(tmp_path):
    # GIVEN a job whose chunk 1 failed once (its stderr says why) and was retried
    job = python_job(tmp_path, f"import sys, pathlib; mark = pathlib.Path({str(tmp_path)!r}, sys.argv[1]); "
                               "first = sys.argv[1] == '1' and not mark.exists(); mark.touch(); "
                               "print('frame out', file=sys.stderr); "
                               "sys.exit(1) if first else open(sys.argv[2], 'w').write('x')")
    assert framefarm("render", str(job), "--job-id", "scripted", "--no-stitch", "--retries", "1",
                     "--retry-delay", "0").returncode == 0
    # WHEN jobs, status, cost and logs are asked for JSON
    jobs, status = read_json("jobs"), read_json("status", "scripted")
    cost, logs = read_json("cost", "scripted"), read_json("logs", "scripted", "--chunk", "1")
    # THEN each is a version 1 document naming its command, with the job's and chunks' fields
    assert [doc["version"] for doc in (jobs, status, cost, logs)] == [1, 1, 1, 1]
    assert [doc["command"] for doc in (jobs, status, cost, logs)] == ["jobs", "status", "cost", "logs"]
    assert [job["id"] for job in jobs["jobs"]] == ["scripted"] and set(jobs["jobs"][0]) == JOB_FIELDS | {"queue_place"}
    assert jobs["jobs"][0]["queue_place"] is None  # not waiting for a slot of a shared budget
    assert status["job"]["state"] == "rendered" and status["job"]["completed_chunks"] == 2
    assert status["job"]["failed_attempts"] == 1 and status["job"]["frames"] == 2
    assert [(c["id"], c["state"], c["attempts"], c["start_frame"], c["end_frame"]) for c in status["chunks"]] == [
        (0, "completed", 1, 0, 1), (1, "completed", 2, 1, 2)]
    assert all(isinstance(c["duration_ms"], float) and c["kind"] is None for c in status["chunks"])
    assert {c["id"] for c in cost["chunks"]} == {0, 1} and cost["job"] == status["job"]
    assert [(c["id"], c["attempt"], c["stderr"], c["error"]) for c in logs["chunks"]] == [(1, 2, "frame out\n", None)]


def test_a_render_into_a_pipe_prints_a_progress_line_every_tenth_of_the_chunks(tmp_path):
    # GIVEN a job of 20 chunks
    job = python_job(tmp_path, "import sys; open(sys.argv[2], 'w').write('x')", chunks=20)
    # WHEN it renders with stderr into a pipe (no terminal)
    result = framefarm("render", str(job), "--job-id", "piped", "--no-stitch")
    # THEN stderr has plain lines, one per 10 % of the chunks, in order, without escape codes
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("piped: ")]
    assert [line.split(" ")[1] for line in lines] == [f"{done}/20" for done in range(2, 21, 2)]
    assert lines[-1].startswith("piped: 20/20 chunks (100%), ") and lines[-1].endswith(" elapsed")
    assert "\x1b[" not in result.stderr


def test_the_last_line_of_a_render_says_what_it_cost_and_where_the_video_is(tmp_path):
    # GIVEN a short real video job, and a job rendered without stitching
    video = shortened_example(tmp_path, total_frames=20, frames_per_chunk=10, width=64, height=48)
    chunks = python_job(tmp_path, "import sys; open(sys.argv[2], 'w').write('x')")
    # WHEN they render, their output piped
    stitched = framefarm("render", str(video), "--job-id", "costed")
    unstitched = framefarm("render", str(chunks), "--job-id", "loose", "--no-stitch")
    # THEN the last line says the cost and the video's path, or how to stitch it, whole on one line
    assert stitched.returncode == 0 and unstitched.returncode == 0, stitched.stderr + unstitched.stderr
    output = tmp_path / "out" / "testsrc.mp4"
    assert re.fullmatch(rf"rendered 20 frames in \d+\.\d s for \$0\.000000 → {re.escape(str(output))}",
                        stitched.stderr.splitlines()[-1])
    assert re.fullmatch(r"rendered 2 chunks in \d+\.\d s for \$0\.000000; join them with `framefarm stitch loose`",
                        unstitched.stderr.splitlines()[-1])
    assert output.stat().st_size > 0



class Terminal:
    """A command on a pseudo-terminal ``columns`` wide, its output read all along like a terminal window."""

    def __init__(self, command: list[str], columns: int) -> None:
        self.window, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        self.process = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal,
                                        preexec_fn=lambda: os.login_tty(terminal))
        os.close(terminal)
        self.drawn: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.window, 65536)
            except OSError:  # EIO: the command and everything it started closed the terminal
                return
            if not data:
                return
            self.drawn.append(data)

    def type(self, keys: bytes) -> None:
        os.write(self.window, keys)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        os.close(self.window)
        return code

    def lines(self) -> list[str]:
        """What was drawn, line by line as redrawn: escape sequences out, a carriage return starts a line."""
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(self.drawn).decode(errors="replace"))
        return [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]


def test_a_render_on_an_80_column_terminal_draws_whole_numbers_and_a_cancel_is_not_a_failure(tmp_path, chunk_pids):
    # GIVEN a job with a long id: four chunks finish at once, two run for a minute
    job_id = "render-2026-12-01-nightly-trailer-final-v3-4k"
    job = python_job(tmp_path, f"import os, sys, time; path = {str(chunk_pids)!r} + '/' + sys.argv[1]; "
                               "sys.argv[1] in '0123' and (open(sys.argv[2], 'w').write('x'), sys.exit(0)); "
                               "open(path + '.tmp', 'w').write(str(os.getpid())); "
                               "os.rename(path + '.tmp', path + '.pid'); time.sleep(60)", chunks=6)
    # WHEN it renders on an 80-column terminal, and Ctrl-C is pressed once the four are done and the two run
    terminal = Terminal([sys.executable, "-m", "framefarm", "render", str(job), "--job-id", job_id,
                         "--concurrency", "6"], columns=80)
    eventually(lambda: len(list(chunk_pids.glob("*.pid"))) == 2, timeout=60, what="the two long chunks running")
    eventually(lambda: any("4/6 chunks" in line for line in terminal.lines()), timeout=30, what="4/6 drawn")
    terminal.type(b"\x03")  # the render leads the terminal's foreground group: ^C reaches it, not its chunks
    # THEN it stops (exit 130); every bar line fits 80 columns with whole numbers, and nothing says "failed"
    assert terminal.wait(30) == 130
    lines = terminal.lines()
    bars = [line for line in lines if " chunks" in line and "stopped:" not in line]
    assert bars and all(len(line) <= 80 for line in bars), bars
    assert "render-20…inal-v3-4k" in bars[-1] and "4/6 chunks" in bars[-1]
    shown = [line.replace("render-20…inal-v3-4k", "") for line in lines]  # the id, shortened in its middle
    assert not [line for line in shown if re.search(r"\d…|…\d|failed|error", line)], lines
    assert lines[-1].startswith(f"stopped: job {job_id} cancelled: Job cancelled (4/6 chunks done, $0.000000 spent)")
    # and the store agrees: the two killed attempts are cancelled, not failed
    record = store().require(job_id)
    assert [chunk.state for chunk in record.chunks][4:] == [ChunkState.CANCELLED] * 2
    assert record.metrics.failed_attempts == 0


def test_status_groups_chunks_by_state_failed_first_and_filters_by_state(tmp_path):
    # GIVEN a job whose chunk 1 failed for good, one at a time: chunk 0 completed, chunks 2 and 3 never ran
    job = python_job(tmp_path, "import sys; sys.exit(1) if sys.argv[1] == '1' else open(sys.argv[2], 'w').write('x')",
                     chunks=4)
    assert framefarm("render", str(job), "--job-id", "grouped", "--retries", "0", "--concurrency", "1").returncode == 1
    # WHEN its status is shown whole, then only its failed chunks, then only its running ones
    whole, failed = framefarm("status", "grouped"), framefarm("status", "grouped", "--state", "failed")
    running, as_json = framefarm("status", "grouped", "--state", "running"), read_json("status", "grouped",
                                                                                      "--state", "failed")
    # THEN the whole table counts each state and lists the failed chunk first, pending, then completed ones;
    # the filtered ones show only what was asked for
    assert "chunks: 1 failed, 2 pending, 1 completed" in whole.stdout
    rows = [line.split("│")[1].strip() for line in whole.stdout.splitlines() if line.startswith("│")]
    assert rows == ["1", "2", "3", "0"]
    assert [line.split("│")[1].strip() for line in failed.stdout.splitlines() if line.startswith("│")] == ["1"]
    assert running.returncode == 0 and "no running chunks" in running.stdout
    assert [chunk["id"] for chunk in as_json["chunks"]] == [1]
    refused = framefarm("status", "grouped", "--state", "broken")
    assert refused.returncode == 2 and "invalid choice: 'broken'" in refused.stderr
