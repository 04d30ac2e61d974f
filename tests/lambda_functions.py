"""Handlers that devcloud tests run in function instances (``python -m awslambdaric tests.lambda_functions.X``).

Each runs in its own process, so what a test needs to see comes back in the reply or in files under
the ``SEEN_DIR`` environment variable the test gives the function.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STARTED = time.time()  # module import is part of init


def echo_worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    seen = Path(os.environ["SEEN_DIR"])
    (seen / f"{context.aws_request_id}.json").write_text(json.dumps(event))
    time.sleep(0.02)
    return {"exit_code": 0, "stdout": f"chunk {event['chunk_id']} done\n", "stderr": "",
            "output_key": f"jobs/{event['job_id']}/chunks/{event['chunk_id']:05d}.mp4"}


def failing_worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise ValueError("ffmpeg exploded")


def slow_worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(float(event.get("seconds", 3)))
    return {"exit_code": 0, "pid": os.getpid()}


def chatty_worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"exit_code": 0, "stdout": "x" * (7 * 2**20)}  # a reply over Lambda's 6 MB


def allocate(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Touch ``mb`` megabytes (every page, so they are resident), then let them go."""
    block = bytearray(int(event.get("mb", 0)) * 2**20)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    del block
    return {"pid": os.getpid()}


def allocate_in_child(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run a child process that touches ``mb`` megabytes and holds them ``hold`` s, as a chunk's ffmpeg would."""
    code = ("import sys, time; block = bytearray(int(sys.argv[1]) * 2**20)\n"
            "for offset in range(0, len(block), 4096): block[offset] = 1\n"
            "time.sleep(float(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", code, str(event.get("mb", 0)), str(event.get("hold", 0.5))], check=True)
    return {"pid": os.getpid()}


def sandbox(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """What the instance sees of its sandbox: environment, /tmp, process and the context object."""
    names = ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_RUNTIME_API",
             "LAMBDA_TASK_ROOT", "_HANDLER", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "TMPDIR")
    return {"env": {name: os.environ.get(name) for name in names}, "tmp": tempfile.gettempdir(),
            "pid": os.getpid(), "remaining_ms": context.get_remaining_time_in_millis(),
            "function_name": context.function_name, "memory_limit_in_mb": context.memory_limit_in_mb,
            "arn": context.invoked_function_arn, "request_id": context.aws_request_id}


def exit_leaving_child(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Start a long child (its pid to ``pid_file``), then end the runtime process itself, as a crash would."""
    child = subprocess.Popen(["sleep", "60"])
    Path(event["pid_file"]).write_text(str(child.pid))
    os._exit(1)
