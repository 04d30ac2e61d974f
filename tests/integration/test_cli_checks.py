"""Check before working: bad option values and output paths exit 2 in one line and store nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from framefarm import JobState, SqliteJobRepository
from framefarm.cli import main
from tests.integration.test_cli import python_job

BAD_VALUES = [("--timeout", "0"), ("--timeout", "-1"), ("--timeout", "nan"), ("--retry-delay", "nan"),
              ("--retry-delay", "-5"), ("--retry-delay", "inf")]


def stored_jobs() -> list:
    path = Path(os.environ["FRAMEFARM_HOME"]) / "jobs.db"
    return SqliteJobRepository(path).list() if path.exists() else []


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize(("flag", "value"), BAD_VALUES)
def test_render_refuses_a_bad_option_value_before_storing_the_job(tmp_path, capsys, flag, value):
    # GIVEN a job file WHEN it is rendered with a bad value
    code = main(["render", str(python_job(tmp_path, "pass")), flag, value])
    # THEN it exits 2 in one line naming the option, and no job is stored
    assert code == 2
    assert ("timeout" if flag == "--timeout" else "retry delay") in one_line_error(capsys)
    assert stored_jobs() == []


@pytest.mark.parametrize(("flag", "value"), BAD_VALUES)
def test_retry_refuses_a_bad_option_value_before_reopening_a_chunk(tmp_path, capsys, flag, value):
    # GIVEN a job whose chunks are rendered
    job = python_job(tmp_path, "import sys; open(sys.argv[2], 'w').write('x')")
    assert main(["render", str(job), "--job-id", "done", "--no-stitch"]) == 0
    before = SqliteJobRepository(Path(os.environ["FRAMEFARM_HOME"]) / "jobs.db").require("done")
    capsys.readouterr()
    # WHEN a chunk is retried with a bad value
    code = main(["retry", "done", "--chunk", "1", "--no-stitch", flag, value])
    # THEN it exits 2 in one line, and the job is as it was: no chunk reopened, no state changed
    assert code == 2
    one_line_error(capsys)
    after = SqliteJobRepository(Path(os.environ["FRAMEFARM_HOME"]) / "jobs.db").require("done")
    assert before.state is after.state is JobState.RENDERED
    assert [(c.state, c.attempts) for c in after.chunks] == [(c.state, c.attempts) for c in before.chunks] != []


def test_resume_refuses_a_bad_option_value_before_running_anything(tmp_path, capsys):
    # GIVEN no job at all WHEN resume is given a bad value THEN the value is what it names, not the job
    assert main(["resume", "nothing", "--retry-delay", "-5"]) == 2
    assert "retry delay" in one_line_error(capsys)


@pytest.mark.parametrize(("output", "message"), [
    ("existing-dir", "is a directory"),
    ("no-extension", "has no extension"),
    ("a-file/inside.mp4", "cannot write to"),
])
def test_render_refuses_an_output_it_cannot_write_before_storing_the_job(tmp_path, capsys, output, message):
    # GIVEN an existing directory, and a file where a directory would have to be
    (tmp_path / "existing-dir").mkdir()
    (tmp_path / "a-file").write_text("not a directory")
    # WHEN a job is rendered to such a place
    code = main(["render", str(python_job(tmp_path, "pass")), "-o", str(tmp_path / output)])
    # THEN it exits 2 in one line saying why, and no job is stored
    assert code == 2
    assert message in one_line_error(capsys)
    assert stored_jobs() == []
