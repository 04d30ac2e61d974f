"""Every example in the README's "As a library" section runs, as printed.

Each runs in a fresh directory holding `examples/testsrc.yaml` shortened to 3 s at 320x240 (90 frames
in 3 chunks, with its tone), so the code is the README's and the render is quick.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml

from framefarm.devcloud import LocalAwsStack
from framefarm.devcloud.server import ORCHESTRATOR_FUNCTION, SUBMIT_FUNCTION, WORKER_FUNCTION
from framefarm.stitch.probe import decoded_audio_samples, packets

ROOT = Path(__file__).parents[2]


def library_examples() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## As a library\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def short_example(directory: Path) -> None:
    job = yaml.safe_load((ROOT / "examples" / "testsrc.yaml").read_text())
    job.update({"width": 320, "height": 240, "total_frames": 90, "frames_per_chunk": 30})
    (directory / "examples").mkdir()
    (directory / "examples" / "testsrc.yaml").write_text(yaml.safe_dump(job))


def run_example(code: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_section_has_the_three_examples():
    examples = library_examples()
    assert len(examples) == 3
    assert examples[0].count("\n") <= 5 and "ff.render(" in examples[0]  # the short one stays short


@pytest.mark.slow
def test_render_locally(tmp_path):
    short_example(tmp_path)
    printed = run_example(library_examples()[0], tmp_path, {"FRAMEFARM_HOME": str(tmp_path / ".framefarm")})
    video = tmp_path / "out" / "testsrc.mp4"
    assert printed.split()[:3] == ["completed", str(video), "90"]
    assert len(packets(video)) == 90 and decoded_audio_samples(video) == 3 * 48000


@pytest.mark.slow
def test_submit_to_a_deployed_stack_and_wait(aws_credentials, tmp_path):
    short_example(tmp_path)
    with LocalAwsStack(worker_timeout=60, orchestrator_timeout=300) as stack:
        # GIVEN a stack named Framefarm whose outputs name devcloud's functions, table and bucket
        moto = stack.env["AWS_ENDPOINT_URL_DYNAMODB"]
        outputs = {"TableName": stack.table, "BucketName": stack.bucket, "SubmitFunctionName": SUBMIT_FUNCTION,
                   "OrchestratorFunctionName": ORCHESTRATOR_FUNCTION, "WorkerFunctionName": WORKER_FUNCTION}
        template = {"Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {name: {"Value": value} for name, value in outputs.items()}}
        boto3.client("cloudformation", endpoint_url=moto).create_stack(StackName="Framefarm",
                                                                       TemplateBody=json.dumps(template))
        names_only_from_the_stack = {name: "" for name in ("FRAMEFARM_TABLE", "FRAMEFARM_BUCKET",
                                                           "FRAMEFARM_SUBMIT_FUNCTION")}
        # WHEN the README's code submits the example and waits for it
        printed = run_example(library_examples()[1], tmp_path, {
            **stack.env, **names_only_from_the_stack, "AWS_ENDPOINT_URL_CLOUDFORMATION": moto})
    # THEN the cloud rendered it, and the video was stitched on this machine from S3
    job_id = printed.split()[0]
    assert "Progress(completed=" in printed
    video = tmp_path / "out" / "testsrc.mp4"
    assert printed.splitlines()[1].split()[:2] == ["completed", str(video)], printed
    assert re.search(r"\$0\.\d{4} \d+ ms billed", printed) and not printed.splitlines()[1].endswith(" 0 ms billed")
    assert job_id.startswith("testsrc-")
    assert len(packets(video)) == 90 and decoded_audio_samples(video) == 3 * 48000


def test_a_failure_names_its_chunk_attempts_and_kind(tmp_path):
    printed = run_example(library_examples()[2], tmp_path, {"FRAMEFARM_HOME": str(tmp_path / ".framefarm")})
    # every chunk fails, so no progress is printed: only the chunk that ran out of attempts first
    chunk, attempts, kind, *message = printed.split()
    assert chunk in ("0", "1") and (attempts, kind) == ("2", "exit_code"), printed
    assert " ".join(message) == f"no frames at {int(chunk) * 10}"
