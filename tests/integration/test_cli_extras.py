"""A command whose optional extra is not installed says in one line what to install, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def without(tmp_path: Path, module: str) -> dict[str, str]:
    """An environment where importing ``module`` fails as it does when it is not installed: a package
    of that name ahead of site-packages raises ModuleNotFoundError."""
    blocker = tmp_path / "blocked" / module
    blocker.mkdir(parents=True)
    message = f"No module named {module!r}"
    (blocker / "__init__.py").write_text(f"raise ModuleNotFoundError({message!r}, name={module!r})\n")
    path = os.pathsep.join(filter(None, [str(blocker.parent), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


@pytest.mark.parametrize(("module", "argv", "extra"), [
    ("boto3", ["status", "some-job", "--table", "jobs"], "aws"),
    ("boto3", ["logs", "some-job", "--bucket", "artifacts"], "aws"),
    ("moto", ["devcloud"], "devcloud"),
    ("starlette", ["monitor"], "monitor"),
    ("uvicorn", ["monitor"], "monitor"),
    ("google", ["render", "job.yaml", "--backend", "cloudrun", "--service", "http://127.0.0.1:9",
                "--gcs-bucket", "artifacts"], "gcp"),
])
def test_a_missing_extra_is_one_line_naming_what_to_install(tmp_path, module, argv, extra):
    # GIVEN a framefarm where `module` is not installed (and a job file, for render)
    (tmp_path / "job.yaml").write_text("width: 64\nheight: 48\nfps: 10\ntotal_frames: 2\nframes_per_chunk: 1\n"
                                       "command: [echo, '{output}']\noutput: out.mp4\n")
    # WHEN a command that needs it runs
    result = subprocess.run([sys.executable, "-m", "framefarm", *argv], capture_output=True, text=True,
                            env=without(tmp_path, module), cwd=tmp_path, timeout=120)
    # THEN it exits 2 with one line naming the module and the extra to install
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f'error: {argv[0]} needs {module}, which is not installed: pip install "framefarm[{extra}]"']
