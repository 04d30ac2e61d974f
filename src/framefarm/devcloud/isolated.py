"""Run one devcloud invocation in its own Python process, as Lambda runs a function in its sandbox.

    python -m framefarm.devcloud.isolated  < {"handler", "name", "memory_mb", "request_id", "seconds", "event"}
    stdout: {"value": <the handler's answer>} or {"error", "type", "trace"}

devcloud uses this for functions marked ``isolated`` so that a test can kill one mid-run (SIGKILL,
as when a sandbox dies): the only way to stop Python code at an arbitrary point.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any


def main() -> None:
    from framefarm.devcloud.server import ROOT, DevFunction, LambdaContext

    request = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    function = DevFunction(request["name"], request["handler"], memory_mb=request["memory_mb"],
                           timeout=request["seconds"])
    context = LambdaContext(function, request["request_id"], time.monotonic() + request["seconds"])
    answer: dict[str, Any]
    try:
        handler, _ = function.resolve()
        answer = {"value": handler(request["event"], context)}
    except Exception as exc:
        answer = {"error": str(exc), "type": type(exc).__name__,
                  "trace": [line.rstrip() for line in traceback.format_exception(exc)][-10:]}
    sys.stdout.write(json.dumps(answer, default=str))


if __name__ == "__main__":
    main()
