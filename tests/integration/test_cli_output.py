"""What the read commands and `render` show: `--json` documents, tables at 80 columns, piped progress."""

from __future__ import annotations

import json
import re

from tests.integration.test_cli import framefarm, python_job, shortened_example

JOB_FIELDS = {"id", "state", "total_chunks", "completed_chunks", "progress", "created_at", "updated_at", "output",
              "error", "frames", "fps", "width", "height", "duration_ms", "billed_ms", "cost_usd", "failed_attempts"}


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
    assert [job["id"] for job in jobs["jobs"]] == ["scripted"] and set(jobs["jobs"][0]) == JOB_FIELDS
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
