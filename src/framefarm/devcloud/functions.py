"""The functions devcloud serves: what each one is (handler string, limits, environment), the calls it
answered, the three the CDK stack deploys, and the environment Lambda gives a sandbox."""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from framefarm.aws.functions import FIXED_LIMITS, HANDLERS, ORCHESTRATE, RENDER_CHUNK, SUBMIT
from framefarm.devcloud.task_root import TaskRoot

ACCOUNT = "000000000000"
# The names standard_functions serves the three handlers under.
SUBMIT_FUNCTION = "framefarm-submit"
ORCHESTRATOR_FUNCTION = "framefarm-orchestrate"
WORKER_FUNCTION = "framefarm-render-chunk"


@dataclass
class DevFunction:
    """A function devcloud serves: its handler string (``module.attribute``, as the image's CMD), limits and
    environment variables."""

    name: str
    handler: str
    memory_mb: int = 1024
    timeout: float = 900.0
    reserved_concurrency: int | None = None
    environment: dict[str, str] = field(default_factory=dict)
    on_failure: str | None = None  # SQS queue URL: the record of an Event call that failed every attempt


@dataclass(frozen=True)
class Invocation:
    """One call devcloud answered (for tests to inspect)."""

    function: str
    request_id: str
    kind: str
    event: Any
    status: int
    function_error: str | None
    billed_duration_ms: int


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def function_arn(function: DevFunction) -> str:
    return f"arn:aws:lambda:{region()}:{ACCOUNT}:function:{function.name}"


def sandbox_environment(function: DevFunction, task_root: TaskRoot) -> dict[str, str]:
    """What Lambda sets in a sandbox, over devcloud's own environment (its endpoints and credentials)."""
    aws_region = region()
    env = {**os.environ, **function.environment}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.setdefault(name, "devcloud")
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": function.name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"devcloud/[$LATEST]{uuid.uuid4().hex}",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "LAMBDA_TASK_ROOT": str(task_root.directory), "_HANDLER": function.handler,
        "AWS_REGION": aws_region, "AWS_DEFAULT_REGION": aws_region, "TZ": ":UTC",
        "PYTHONPATH": os.pathsep.join(task_root.python_path),
    })
    return env


def standard_functions(*, worker_memory_mb: int = 2048, worker_timeout: float = 300.0,
                       orchestrator_timeout: float = 900.0) -> list[DevFunction]:
    """The three functions the CDK stack deploys, with the handler strings its image runs."""
    (submit_mb, submit_s), (orchestrator_mb, _) = FIXED_LIMITS[SUBMIT], FIXED_LIMITS[ORCHESTRATE]
    return [
        DevFunction(SUBMIT_FUNCTION, HANDLERS[SUBMIT], memory_mb=submit_mb, timeout=submit_s),
        DevFunction(ORCHESTRATOR_FUNCTION, HANDLERS[ORCHESTRATE], memory_mb=orchestrator_mb,
                    timeout=orchestrator_timeout),
        DevFunction(WORKER_FUNCTION, HANDLERS[RENDER_CHUNK], memory_mb=worker_memory_mb, timeout=worker_timeout),
    ]
