"""The Lambda Invoke API over HTTP: ``POST /2015-03-31/functions/{name}/invocations`` parsed and checked
(function, invocation type, payload limits, JSON) and handed to a DevCloud, and a finished call
answered as Lambda does (function errors, timeouts, oversized replies, the base64 log tail)."""

from __future__ import annotations

import base64
import json
import math
import socket
import struct
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from framefarm.adapters.aws_lambda import LAMBDA_PAYLOAD_LIMIT
from framefarm.billing import format_report
from framefarm.devcloud.functions import DevFunction
from framefarm.devcloud.instance import Result

if TYPE_CHECKING:
    from framefarm.devcloud.server import DevCloud

INVOKE_PATH = "/2015-03-31/functions/"
LOG_TAIL_BYTES = 4096
ASYNC_PAYLOAD_LIMIT = 256 * 1024  # Lambda's limit for an Event invocation's payload


class InvokeApiServer(ThreadingHTTPServer):
    """The Invoke API's HTTP server; ``cloud`` runs the calls it accepts."""

    daemon_threads = True
    request_queue_size = 2048  # 1,000 workers connect at once in the fan-out benchmark
    cloud: DevCloud


class InvokeRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: InvokeApiServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read results, not access logs
        pass

    def do_POST(self) -> None:
        cloud = self.server.cloud
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        if not (self.path.startswith(INVOKE_PATH) and self.path.split("?")[0].endswith("/invocations")):
            return self._error(404, "UnknownOperationException", f"devcloud serves only Invoke, not {self.path}")
        name = unquote(self.path[len(INVOKE_PATH):].split("/")[0]).split(":function:")[-1].split(":")[0]
        function = cloud.functions.get(name)
        if function is None:
            return self._error(404, "ResourceNotFoundException", f"Function not found: {name}")
        kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        limit = LAMBDA_PAYLOAD_LIMIT if kind == "RequestResponse" else ASYNC_PAYLOAD_LIMIT
        if len(body) > limit:
            return self._error(413, "RequestEntityTooLargeException",
                               f"Request must be smaller than {limit} bytes for the {kind} invocation type")
        try:
            event = json.loads(body) if body else {}
        except json.JSONDecodeError:
            return self._error(400, "InvalidRequestContentException", "Could not parse request body into json")
        if not cloud.admit(function, synchronous=kind == "RequestResponse", event=event):
            return self._error(429, "TooManyRequestsException", "Rate Exceeded.",
                               extra={"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"})
        if kind == "Event":  # queued: the background call takes its slot when an instance may run it
            cloud.deliver(function, event)
            return self._send(202, {"X-Amzn-RequestId": str(uuid.uuid4())}, b"")
        status, headers, payload = cloud.invoke(function, event, kind)
        if cloud.faults.take(function.name, "reset", event):
            return self._reset()
        self._send(status, headers, payload)

    def _reset(self) -> None:
        """Drop the connection with a TCP RST: the caller sees 'connection reset', not an answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _error(self, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
        payload = json.dumps({"Type": "User", "message": message, **(extra or {})}).encode()
        self._send(status, {"X-Amzn-ErrorType": code}, payload)

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(payload)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def lambda_answer(function: DevFunction, request_id: str, result: Result, init_ms: float | None,
                  duration_ms: float) -> tuple[dict[str, str], bytes, str | None, int]:
    """A finished call as Lambda answers it: (headers, payload, function error, billed ms), the log
    tail ending in a REPORT line, a timeout billed at the function's timeout."""
    function_error = None if result.status == "response" else "Unhandled"
    status = None
    if result.status in ("response", "error", "init_error"):
        payload = result.body
    elif result.status == "too_large":
        payload = json.dumps({"errorMessage": "Response payload size exceeded maximum allowed payload size "
                                              f"({LAMBDA_PAYLOAD_LIMIT} bytes).",
                              "errorType": "Function.ResponseSizeTooLarge"}).encode()
    elif result.status == "timeout":
        duration_ms, status = function.timeout * 1000.0, "timeout"
        payload = json.dumps({"errorMessage": f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {request_id} Task timed "
                                              f"out after {function.timeout:.2f} seconds",
                              "errorType": "Sandbox.Timedout"}).encode()
    else:
        payload = json.dumps({"errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: "
                                              f"{result.body.decode()}", "errorType": "Runtime.ExitError"}).encode()
    billed = max(1, math.ceil(duration_ms))
    log = (f"START RequestId: {request_id} Version: $LATEST\n{result.log}END RequestId: {request_id}\n"
           + format_report(request_id=request_id, duration_ms=duration_ms, billed_duration_ms=billed,
                           memory_mb=function.memory_mb, max_memory_used_mb=min(function.memory_mb, result.peak_mb),
                           init_duration_ms=init_ms, status=status)
           + "\n")
    headers = {"X-Amz-Executed-Version": "$LATEST", "X-Amzn-RequestId": request_id,
               "X-Amz-Log-Result": base64.b64encode(log.encode()[-LOG_TAIL_BYTES:]).decode()}
    if function_error:
        headers["X-Amz-Function-Error"] = function_error
    return headers, payload, function_error, billed
