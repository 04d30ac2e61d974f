"""`framefarm devcloud` as a user runs it: from the built wheel installed with its `aws` and `devcloud`
extras into a fresh virtualenv, in a directory outside the checkout, with its state kept across a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml

from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.status import JobState
from framefarm.storage.s3 import S3Storage
from tests.helpers import eventually, read_devcloud_exports


@pytest.fixture(scope="module")
def installed(framefarm_wheel: Path, fresh_venv) -> Path:
    """A fresh venv holding framefarm[aws,devcloud] from the wheel built from this checkout: its bin/."""
    return fresh_venv(f"{framefarm_wheel}[aws,devcloud]")


def user_environment(home: Path) -> dict[str, str]:
    """This environment without what points into the checkout or at any cloud."""
    env = {name: value for name, value in os.environ.items()
           if name != "PYTHONPATH" and not name.startswith(("AWS_", "FRAMEFARM_"))}
    return {**env, "FRAMEFARM_HOME": str(home)}


def repository(env: dict[str, str]) -> DynamoDBJobRepository:
    session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                    region_name=env["AWS_DEFAULT_REGION"])
    storage = S3Storage(env["FRAMEFARM_BUCKET"], client=session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"]))
    dynamodb = session.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"])
    return DynamoDBJobRepository(env["FRAMEFARM_TABLE"], client=dynamodb, storage=storage)


class Devcloud:
    """`framefarm devcloud --state DIR` from the installed venv, started in ``cwd``."""

    def __init__(self, bin_dir: Path, state: Path, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([str(bin_dir / "framefarm"), "devcloud", "--state", str(state)], cwd=cwd,
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.exports, self.banner = read_devcloud_exports(self.process.stdout)

    def stop(self, how: signal.Signals) -> str:
        """Stop it as a user does (Ctrl-C or `kill`); what it said on stderr."""
        self.process.send_signal(how)
        rest, stderr = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, stderr
        assert all(line.startswith("export ") for line in rest.splitlines()), f"after the exports: {rest}"
        return stderr


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_devcloud_from_an_installed_wheel_keeps_its_state_across_a_restart(installed, tmp_path):
    # GIVEN framefarm[aws,devcloud] installed from the wheel, and a directory outside the checkout
    work, state = tmp_path / "elsewhere", tmp_path / "state"
    work.mkdir()
    env = user_environment(tmp_path / "home")
    (work / "job.yaml").write_text(yaml.safe_dump({
        "width": 64, "height": 48, "fps": 10, "total_frames": 2, "frames_per_chunk": 1,
        "command": [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write('frames')", "{output}"]}))
    # WHEN devcloud runs there with --state, and a job is submitted with the exports it printed
    first = Devcloud(installed, state, work, env)
    submitted = subprocess.run([str(installed / "framefarm"), "submit", "job.yaml", "--function", "framefarm-submit",
                                "--job-id", "kept"], cwd=work, env={**env, **first.exports}, capture_output=True,
                               text=True, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    jobs = repository(first.exports)
    eventually(lambda: jobs.require("kept").state is JobState.RENDERED, timeout=120, interval=0.2,
               what="every chunk rendered")
    saved = first.stop(signal.SIGINT)
    # THEN it saved the table and the bucket, and moto's access log is in its file, not on the terminal
    assert saved.startswith("saved ") and saved.strip().endswith(f"objects to {state}"), saved
    counts = saved.removeprefix("saved ").split(" to ")[0]  # "<n> items and <m> objects"
    assert "HTTP/1.1" not in saved and "POST / HTTP/1.1" in (state / "devcloud.log").read_text()
    # WHEN it starts again with the same --state
    second = Devcloud(installed, state, work, env)
    try:
        # THEN it prints the same names, and the job and its chunks are still there
        names = ("FRAMEFARM_TABLE", "FRAMEFARM_BUCKET")
        assert [second.exports[name] for name in names] == [first.exports[name] for name in names]
        assert first.banner[1].endswith(f"(kept in {state}: 0 items and 0 objects loaded)\n")
        assert second.banner[1].endswith(f"(kept in {state}: {counts} loaded)\n")
        assert [line.split(" (kept")[0] for line in second.banner] == [line.split(" (kept")[0] for line in first.banner]
        listed = subprocess.run([str(installed / "framefarm"), "jobs", "--table", second.exports["FRAMEFARM_TABLE"]],
                                cwd=work, env={**env, **second.exports}, capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0 and "kept" in listed.stdout, listed.stderr
        status = repository(second.exports).require("kept")
        assert status.state is JobState.RENDERED and status.completed_chunks == 2
        storage = repository(second.exports).storage
        assert [stored.key for stored in storage.list("jobs/kept/chunks/")] == ["jobs/kept/chunks/00000.mp4",
                                                                              "jobs/kept/chunks/00001.mp4"]
    finally:
        second.stop(signal.SIGTERM)
