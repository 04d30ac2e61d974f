"""`framefarm logs` tells a chunk's whole story: every attempt, the failed ones' evidence included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import FAULTY_CHUNK


def framefarm(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framefarm", *args, "--home", str(home)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "FRAMEFARM_HOME": str(home)})


def test_logs_show_every_attempt_and_the_failed_ones_evidence(tmp_path):
    # GIVEN a job whose chunk 0 fails once (its stderr says why), then renders on its retry
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "plan.json").write_text(json.dumps({"0": ["exit1"]}))
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"width": 64, "height": 48, "fps": 10, "total_frames": 2, "frames_per_chunk": 1,
                                   "command": [sys.executable, str(FAULTY_CHUNK), str(plan), "{chunk_id}",
                                               "{output}"]}))
    home = tmp_path / "home"
    rendered = framefarm("render", str(job), "--job-id", "told", "--no-stitch", "--retries", "1",
                         "--retry-delay", "0", home=home)
    assert rendered.returncode == 0, rendered.stderr
    # WHEN its logs are read
    shown = framefarm("logs", "told", "--chunk", "0", home=home)
    # THEN both attempts are there, oldest first: the first one's error as well as the second one's output
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "attempt 1 of 2" in text and "attempt 2 of 2" in text
    assert text.index("render error in chunk 0") < text.index("rendered chunk 0 (attempt 2)")
    # AND one attempt alone, and as JSON
    first = framefarm("logs", "told", "--chunk", "0", "--attempt", "1", home=home)
    assert "render error in chunk 0" in first.stdout and "rendered chunk 0" not in first.stdout
    document = json.loads(framefarm("logs", "told", "--chunk", "0", "--json", home=home).stdout)
    attempts = document["chunks"][0]["attempts"]
    assert [entry["attempt"] for entry in attempts] == [1, 2]
    assert "render error in chunk 0" in attempts[0]["stderr"] and "attempt 2" in attempts[1]["stdout"]
    # AND an attempt the chunk never had is one line, exit 2
    missing = framefarm("logs", "told", "--chunk", "0", "--attempt", "5", home=home)
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0 and "--attempt" in missing.stderr
