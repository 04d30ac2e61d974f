"""The task root laid out as the image lays it out (the wheel installed with pip --target, plus
lambda_handlers/), serving the three handler strings the CDK stack gives its functions."""

from __future__ import annotations

import json
import sys

import boto3
import pytest

from framefarm.aws.functions import HANDLERS
from framefarm.devcloud import LocalAwsStack, build_task_root
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.status import JobState
from framefarm.storage.s3 import S3Storage

QUICK_CHUNK = [sys.executable, "-c", "import sys; open(sys.argv[1], 'wb').write(b'chunk')", "{output}"]


@pytest.mark.slow
def test_the_image_layout_built_from_the_wheel_serves_all_three_handlers_of_the_stack(aws_credentials, tmp_path):
    # GIVEN a task root built from this checkout's wheel (cached by content hash)
    task_root = build_task_root(cache_dir=tmp_path / "cache")  # built afresh: a stale cache hides nothing
    assert (task_root.directory / "framefarm" / "__init__.py").is_file()
    assert (task_root.directory / "lambda_handlers" / "render_chunk.py").is_file()
    assert not (task_root.directory / "src").exists() and task_root.isolated  # python -S: nothing from here
    with LocalAwsStack(worker_timeout=60, orchestrator_timeout=120, task_root=task_root) as stack:
        assert sorted(function.handler for function in stack.cloud.functions.values()) == sorted(HANDLERS.values())
        # WHEN a job is submitted to the submit function
        answer = boto3.client("lambda").invoke(FunctionName="framefarm-submit", Payload=json.dumps(
            {"job": {"id": "packaged", "width": 64, "height": 48, "fps": 10, "total_frames": 2,
                     "frames_per_chunk": 1, "command": QUICK_CHUNK}, "options": {"concurrency": 2}}).encode())
        assert json.loads(answer["Payload"].read())["statusCode"] == 202
        assert stack.cloud.wait_idle(timeout=240)
        # THEN submit, orchestrate and render-chunk all ran from the built task root and rendered it
        status = DynamoDBJobRepository(stack.table, storage=S3Storage(stack.bucket)).require("packaged")
        assert status.state is JobState.RENDERED and status.completed_chunks == 2, status.error
        for name in ("framefarm-submit", "framefarm-orchestrate", "framefarm-render-chunk"):
            calls = stack.cloud.calls(name)
            assert calls and all(call.function_error is None for call in calls), name
