"""Every hint the CLI prints is a command that works as printed, with the flags the user typed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.integration.test_cli import video_job, write_job


def framefarm_here(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command with no FRAMEFARM_HOME in its environment: where things are comes from its flags alone."""
    env = {name: value for name, value in os.environ.items() if name != "FRAMEFARM_HOME"}
    return subprocess.run([sys.executable, "-m", "framefarm", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def run_hint(output: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the last `framefarm ...` command quoted in ``output``, as printed."""
    hints = re.findall(r"`(framefarm [^`]+)`", " ".join(output.split()))
    assert hints, f"no hint in: {output}"
    return framefarm_here(*shlex.split(hints[-1])[1:], cwd=cwd)


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
    pause = (f"import subprocess, sys; subprocess.run([sys.executable, '-m', 'framefarm', 'pause', 'paused', "
             f"'--home', {str(home)!r}], check=True); open(sys.argv[2], 'w').write('x')")
    job = write_job(tmp_path, width=64, height=48, fps=10, total_frames=3, frames_per_chunk=1,
                    command=[sys.executable, "-c", pause, "{chunk_id}", "{output}"], output=str(tmp_path / "o.mp4"))
    rendered = framefarm_here("render", str(job), "--job-id", "paused", "--concurrency", "1", "--no-stitch",
                              "--home", str(home), cwd=tmp_path)
    assert rendered.returncode == 3, rendered.stderr
    # WHEN the resume command it printed is run as printed
    resumed = run_hint(rendered.stderr, tmp_path)
    # THEN the job finishes its chunks
    assert resumed.returncode == 0, resumed.stderr
    assert "rendered 3 chunks" in resumed.stderr
