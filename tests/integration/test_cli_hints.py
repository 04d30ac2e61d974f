"""Every hint the CLI prints is a command that works as printed, with the flags the user typed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from framefarm.config import ENV_BUCKET, ENV_HOME, ENV_TABLE
from tests.integration.test_cli import video_job, write_job

SETTINGS_NAMES = (ENV_HOME, ENV_TABLE, ENV_BUCKET)


def framefarm_here(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The command with no FRAMEFARM_HOME, _TABLE or _BUCKET in its environment (unless ``env`` gives
    them): where things are comes from its flags alone."""
    environ = {name: value for name, value in os.environ.items() if name not in SETTINGS_NAMES}
    return subprocess.run([sys.executable, "-m", "framefarm", *args], capture_output=True, text=True,
                          env={**environ, **(env or {})}, cwd=cwd, timeout=300)


def run_hint(output: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the last `framefarm ...` command quoted in ``output``, as printed."""
    hints = re.findall(r"`(framefarm [^`]+)`", " ".join(output.split()))
    assert hints, f"no hint in: {output}"
    return framefarm_here(*shlex.split(hints[-1])[1:], cwd=cwd, env=env)


def test_the_stitch_hints_of_render_and_retry_carry_the_home_they_were_given(tmp_path):
    # GIVEN a job rendered without stitching into a home given only by --home (after the command's name)
    home = tmp_path / "my home"
    job = video_job(tmp_path, {}, chunks=2)
    rendered = framefarm_here("render", str(job), "--job-id", "hinted", "--no-stitch", "--home", str(home), cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    # WHEN the stitch command it printed is run as printed
    stitched = run_hint(rendered.stderr, tmp_path)
    # THEN it finds the job and stitches its video
    assert stitched.returncode == 0, stitched.stderr
    assert (tmp_path / "video.mp4").is_file()
    # AND a retry without stitching (--home before the command's name) prints a stitch hint that works too
    retried = framefarm_here("--home", str(home), "retry", "hinted", "--chunk", "1", "--no-stitch", cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    again = run_hint(retried.stderr, tmp_path)
    assert again.returncode == 0, again.stderr


def test_the_resume_hint_of_a_paused_render_carries_its_home(tmp_path):
    # GIVEN a render, given --home, whose first chunk pauses its own job from another process
    home = tmp_path / "home-by-flag"
    # chunk 0 asks for the pause, then runs on for five heartbeats: the runner sees the pause while it runs
    pause = (f"import subprocess, sys, time; sys.argv[1] == '0' and (subprocess.run([sys.executable, '-m', "
             f"'framefarm', 'pause', 'paused', '--home', {str(home)!r}], check=True), time.sleep(1.0)); "
             f"open(sys.argv[2], 'w').write('x')")
    job = write_job(tmp_path, width=64, height=48, fps=10, total_frames=3, frames_per_chunk=1,
                    command=[sys.executable, "-c", pause, "{chunk_id}", "{output}"], output=str(tmp_path / "o.mp4"))
    rendered = framefarm_here("render", str(job), "--job-id", "paused", "--concurrency", "1", "--no-stitch",
                              "--home", str(home), cwd=tmp_path, env={"FRAMEFARM_HEARTBEAT_INTERVAL": "0.2"})
    assert rendered.returncode == 3, rendered.stderr
    # WHEN the resume command it printed is run as printed
    resumed = run_hint(rendered.stderr, tmp_path)
    # THEN the job finishes its chunks
    assert resumed.returncode == 0, resumed.stderr
    assert "rendered 3 chunks" in resumed.stderr


@pytest.fixture
def stack(aws_credentials):
    from framefarm.devcloud import LocalAwsStack

    with LocalAwsStack(worker_timeout=60, orchestrator_timeout=120) as running:
        yield running


def test_the_status_hints_of_submit_and_of_resume_on_aws_find_the_job(stack, tmp_path):
    # GIVEN devcloud's endpoints and credentials, but no table or bucket in the environment
    endpoints = {name: value for name, value in stack.env.items() if name not in SETTINGS_NAMES}
    jobfile = tmp_path / "job.yaml"
    jobfile.write_text(yaml.safe_dump({"id": "on-aws", "width": 64, "height": 48, "fps": 10, "total_frames": 1,
                                       "frames_per_chunk": 1, "command": [sys.executable, "-c", "raise SystemExit(1)"]}))
    # WHEN a job is submitted with --table, and the hint it printed is run as printed
    submitted = framefarm_here("submit", str(jobfile), "--function", "framefarm-submit", "--retries", "0",
                               "--table", stack.table, cwd=tmp_path, env=endpoints)
    assert submitted.returncode == 0, submitted.stderr
    watched = run_hint(submitted.stderr, tmp_path, env=endpoints)
    # THEN it shows the job
    assert watched.returncode == 0 and "on-aws" in watched.stdout, watched.stderr
    # AND once the job has failed, `resume --table` prints a hint that shows it too
    assert stack.cloud.wait_idle(timeout=120)
    resumed = framefarm_here("resume", "on-aws", "--function", "framefarm-orchestrate", "--table", stack.table,
                             cwd=tmp_path, env=endpoints)
    assert resumed.returncode == 0, resumed.stderr
    followed = run_hint(resumed.stdout, tmp_path, env=endpoints)
    assert followed.returncode == 0 and "on-aws" in followed.stdout, followed.stderr
    assert stack.cloud.wait_idle(timeout=120)
    # AND with the table exported (as devcloud says to), submit's hint needs no flag and works
    jobfile.write_text(jobfile.read_text().replace("on-aws", "exported"))
    exported = framefarm_here("submit", str(jobfile), "--function", "framefarm-submit", cwd=tmp_path, env=stack.env)
    assert exported.returncode == 0, exported.stderr
    assert "`framefarm status exported`" in exported.stderr
    assert run_hint(exported.stderr, tmp_path, env=stack.env).returncode == 0
    assert stack.cloud.wait_idle(timeout=120)
