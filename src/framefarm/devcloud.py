"""devcloud: the Lambda Invoke API on 127.0.0.1, running this repository's real handlers in-process.

moto runs no Lambda code without Docker, so end-to-end tests and demos use this instead: the real
boto3 client and the real ``LambdaWorkerAdapter`` talk HTTP to it (``AWS_ENDPOINT_URL_LAMBDA``).

    POST /2015-03-31/functions/{name}/invocations
      X-Amz-Invocation-Type: RequestResponse (default) | Event (202, runs in the background)
      X-Amz-Log-Type: Tail  ->  X-Amz-Log-Result: base64 of START / END / REPORT lines, where REPORT
                                carries the measured Duration, Billed Duration (rounded up to 1 ms),
                                Memory Size, Max Memory Used and, on a function's first call, Init Duration
      an exception -> 200 with X-Amz-Function-Error: Unhandled and {errorMessage, errorType, stackTrace}
      past the function's timeout -> "Task timed out after N seconds", billed at the timeout

Switches for fault injection, each for the next ``times`` calls (optionally only calls whose event
``match`` accepts): ``throttle`` answers 429 TooManyRequestsException, ``crash`` makes the handler
raise, ``reset`` runs the handler and then drops the connection (RST) instead of answering; and
``reserved_concurrency`` throttles calls beyond a limit, as Lambda does. Honest limits: handlers share this process (one
``Max Memory Used`` for all: the process's peak RSS), and a timed-out handler's thread cannot be
killed, only abandoned.
"""

from __future__ import annotations

import base64
import importlib
import json
import math
import os
import resource
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from framefarm.billing import format_report

ROOT = Path(__file__).resolve().parents[2]  # the checkout: lambda_handlers/ lives here
INVOKE_PATH = "/2015-03-31/functions/"
LOG_TAIL_BYTES = 4096

Handler = Callable[[Any, Any], Any]
EventMatch = Callable[[Any], bool]
FAULTS = ("throttle", "crash", "reset")


@dataclass
class _Fault:
    kind: str
    remaining: int
    match: EventMatch | None


@dataclass
class DevFunction:
    """A function devcloud serves: a handler (``"module:attribute"`` or a callable) and its limits."""

    name: str
    handler: str | Handler
    memory_mb: int = 1024
    timeout: float = 900.0
    reserved_concurrency: int | None = None
    _resolved: Handler | None = field(default=None, repr=False)
    _init_ms: float | None = field(default=None, repr=False)

    def resolve(self) -> tuple[Handler, float | None]:
        """The handler, and the init duration to report (first call only)."""
        if self._resolved is not None:
            return self._resolved, None
        started = time.perf_counter()
        if callable(self.handler):
            self._resolved = self.handler
        else:
            if str(ROOT) not in sys.path:
                sys.path.insert(0, str(ROOT))
            module_name, _, attribute = self.handler.partition(":")
            self._resolved = getattr(importlib.import_module(module_name), attribute or "handler")
        self._init_ms = (time.perf_counter() - started) * 1000.0
        return self._resolved, self._init_ms


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


class LambdaContext:
    """The context object Lambda passes to handlers (the attributes framefarm and most code use)."""

    def __init__(self, function: DevFunction, request_id: str, deadline: float) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = request_id
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function.name}"
        self.log_group_name = f"/aws/lambda/{function.name}"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class DevCloud:
    """Serve functions on 127.0.0.1. ``with DevCloud([...]) as cloud: cloud.endpoint``."""

    def __init__(self, functions: list[DevFunction] | tuple[DevFunction, ...] = (), *, port: int = 0) -> None:
        self.functions = {function.name: function for function in functions}
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()
        self._faults: dict[str, list[_Fault]] = {}
        self._running: dict[str, int] = {}
        self._background: set[threading.Thread] = set()
        self._server = _Server(("127.0.0.1", port), _RequestHandler)
        self._server.cloud = self
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> DevCloud:
        self._thread = threading.Thread(target=self._server.serve_forever, name="devcloud", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.wait_idle(timeout=30)
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> DevCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, function: DevFunction) -> None:
        self.functions[function.name] = function

    def inject(self, name: str, kind: str, times: int = 1, match: EventMatch | None = None) -> None:
        """Make the next ``times`` calls to ``name`` (those ``match`` accepts) fail with ``kind`` (see FAULTS)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._faults.setdefault(name, []).append(_Fault(kind, times, match))

    def throttle(self, name: str, times: int, match: EventMatch | None = None) -> None:
        """Answer the next ``times`` synchronous calls to ``name`` with 429 TooManyRequestsException."""
        self.inject(name, "throttle", times, match)

    def crash(self, name: str, times: int, match: EventMatch | None = None) -> None:
        """Make the next ``times`` calls to ``name`` raise inside the function (FunctionError Unhandled)."""
        self.inject(name, "crash", times, match)

    def reset(self, name: str, times: int, match: EventMatch | None = None) -> None:
        """Run the next ``times`` calls to ``name``, then reset the connection instead of answering."""
        self.inject(name, "reset", times, match)

    def _take_fault(self, name: str, kind: str, event: Any) -> bool:
        """Use up one injected ``kind`` fault that applies to this call, if there is one."""
        with self._lock:
            for fault in self._faults.get(name, ()):
                if fault.kind == kind and fault.remaining > 0 and (fault.match is None or fault.match(event)):
                    fault.remaining -= 1
                    return True
        return False

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for background (Event) invocations, including ones they start; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                threads = [thread for thread in self._background if thread.is_alive()]
            if not threads:
                return True
            for thread in threads:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                thread.join(remaining)
                if deadline is not None and time.monotonic() >= deadline:
                    return False

    def calls(self, name: str) -> list[Invocation]:
        with self._lock:
            return [call for call in self.invocations if call.function == name]

    # -- serving ----------------------------------------------------------------------------------

    def _admit(self, function: DevFunction, synchronous: bool, event: Any) -> bool:
        """Count the call in; False when it must be throttled."""
        if synchronous and self._take_fault(function.name, "throttle", event):
            return False
        with self._lock:
            running = self._running.get(function.name, 0)
            if synchronous and function.reserved_concurrency is not None and running >= function.reserved_concurrency:
                return False
            self._running[function.name] = running + 1
            return True

    def _invoke(self, function: DevFunction, event: Any, kind: str) -> tuple[int, dict[str, str], bytes]:
        request_id = str(uuid.uuid4())
        crash = self._take_fault(function.name, "crash", event)
        handler, init_ms = function.resolve()
        context = LambdaContext(function, request_id, time.monotonic() + function.timeout)
        outcome: dict[str, Any] = {}
        body: Any

        def call() -> None:
            try:
                if crash:
                    raise RuntimeError("injected crash (devcloud)")
                outcome["value"] = handler(event, context)
            except Exception as exc:
                outcome["error"] = exc
                outcome["trace"] = traceback.format_exception(exc)

        started = time.perf_counter()
        worker = threading.Thread(target=call, name=f"devcloud-{function.name}", daemon=True)
        worker.start()
        worker.join(function.timeout)
        duration_ms = (time.perf_counter() - started) * 1000.0
        with self._lock:
            self._running[function.name] -= 1
        function_error = None
        if worker.is_alive():
            duration_ms = function.timeout * 1000.0
            function_error = "Unhandled"
            body = {"errorMessage": f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {request_id} Task timed out after "
                                    f"{function.timeout:.2f} seconds", "errorType": "Sandbox.Timedout"}
        elif "error" in outcome:
            function_error = "Unhandled"
            exc = outcome["error"]
            body = {"errorMessage": str(exc), "errorType": type(exc).__name__,
                    "stackTrace": [line.rstrip() for line in outcome["trace"]][-10:]}
        else:
            body = outcome.get("value")
        billed = max(1, math.ceil(duration_ms))
        peak_mb = min(function.memory_mb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        log = (f"START RequestId: {request_id} Version: $LATEST\nEND RequestId: {request_id}\n"
               + format_report(request_id=request_id, duration_ms=duration_ms, billed_duration_ms=billed,
                               memory_mb=function.memory_mb, max_memory_used_mb=peak_mb, init_duration_ms=init_ms)
               + "\n")
        headers = {"X-Amz-Executed-Version": "$LATEST", "X-Amzn-RequestId": request_id,
                   "X-Amz-Log-Result": base64.b64encode(log.encode()[-LOG_TAIL_BYTES:]).decode()}
        if function_error:
            headers["X-Amz-Function-Error"] = function_error
        with self._lock:
            self.invocations.append(Invocation(function.name, request_id, kind, event, 200, function_error, billed))
        return 200, headers, json.dumps(body, default=str).encode()

    def _start_background(self, function: DevFunction, event: Any) -> None:
        def run() -> None:
            try:
                self._invoke(function, event, "Event")
            finally:
                with self._lock:
                    self._background.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"devcloud-event-{function.name}", daemon=True)
        with self._lock:
            self._background.add(thread)
        thread.start()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048  # 1,000 workers connect at once in the fan-out benchmark
    cloud: DevCloud


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

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
        try:
            event = json.loads(body) if body else {}
        except json.JSONDecodeError:
            return self._error(400, "InvalidRequestContentException", "Could not parse request body into json")
        kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if not cloud._admit(function, synchronous=kind == "RequestResponse", event=event):
            return self._error(429, "TooManyRequestsException", "Rate Exceeded.",
                               extra={"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"})
        if kind == "Event":  # counted in by _admit, counted out when the background call ends
            cloud._start_background(function, event)
            return self._send(202, {"X-Amzn-RequestId": str(uuid.uuid4())}, b"")
        status, headers, payload = cloud._invoke(function, event, kind)
        if cloud._take_fault(function.name, "reset", event):
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


def standard_functions(*, worker_memory_mb: int = 2048, worker_timeout: float = 300.0,
                       orchestrator_timeout: float = 900.0) -> list[DevFunction]:
    """The three functions the CDK stack deploys, with their real handlers."""
    return [
        DevFunction("framefarm-submit", "lambda_handlers.submit:handler", memory_mb=512, timeout=30),
        DevFunction("framefarm-orchestrate", "lambda_handlers.orchestrate:handler", memory_mb=1024,
                    timeout=orchestrator_timeout),
        DevFunction("framefarm-render-chunk", "lambda_handlers.render_chunk:handler", memory_mb=worker_memory_mb,
                    timeout=worker_timeout),
    ]


def fix_moto_number_arithmetic() -> None:
    """Make moto add DynamoDB numbers as DynamoDB does.

    moto 5 parses any number without a "." with int(), but stores sums with str(Decimal), which
    writes 3E-7 for 0.0000003; the next ``SET x = x + :v`` on that attribute then fails with a
    ValueError that cancels the whole transaction. A chunk costing under $0.000001 (a 1 ms Lambda
    call) hits it. Real DynamoDB has no such limit, so this patches the emulator, not framefarm.
    """
    from moto.dynamodb.exceptions import IncorrectDataType
    from moto.dynamodb.models.dynamo_type import DynamoType

    if getattr(DynamoType, "_framefarm_exact_numbers", False):
        return

    def arithmetic(sign: int) -> Callable[[DynamoType, DynamoType], DynamoType]:
        def operate(self: DynamoType, other: DynamoType) -> DynamoType:
            if self.type != other.type:
                raise TypeError("Different types of operandi is not allowed.")
            if not self.is_number():
                raise IncorrectDataType()
            total = Decimal(self.value) + sign * Decimal(other.value)
            return DynamoType({"N": format(total, "f")})

        return operate

    DynamoType.__add__ = arithmetic(1)  # type: ignore[method-assign]
    DynamoType.__sub__ = arithmetic(-1)  # type: ignore[method-assign]
    DynamoType._framefarm_exact_numbers = True  # type: ignore[attr-defined]


class LocalAwsStack:
    """The whole AWS flow on this machine: moto's server (S3, DynamoDB) + devcloud (Lambda) + a table
    and a bucket, with the environment the CDK stack would give the functions.

    While it runs, ``os.environ`` carries the endpoints, fake credentials and ``FRAMEFARM_*`` names,
    so the in-process handlers and any boto3 client made here reach the local services; ``env``
    holds the same for other processes (the CLI).
    """

    def __init__(self, *, functions: list[DevFunction] | None = None, table: str | None = None,
                 bucket: str | None = None, port: int = 0, moto_port: int = 0, worker_timeout: float = 300.0,
                 orchestrator_timeout: float = 900.0) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.table = table or f"framefarm-jobs-{suffix}"
        self.bucket = bucket or f"framefarm-artifacts-{suffix}"
        self.worker_timeout = worker_timeout
        self._functions = functions or standard_functions(worker_timeout=worker_timeout,
                                                          orchestrator_timeout=orchestrator_timeout)
        self._port, self._moto_port = port, moto_port
        self._saved_env: dict[str, str | None] = {}
        self.env: dict[str, str] = {}
        self.cloud: DevCloud | None = None
        self._moto: Any = None

    def __enter__(self) -> LocalAwsStack:
        from moto.server import ThreadedMotoServer

        fix_moto_number_arithmetic()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self._moto_port, verbose=False)
        self._moto.start()
        moto_endpoint = f"http://127.0.0.1:{self._moto.get_host_and_port()[1]}"
        self.cloud = DevCloud(self._functions, port=self._port).start()
        names = {function.name for function in self._functions}
        self.env = {
            "AWS_ACCESS_KEY_ID": "devcloud", "AWS_SECRET_ACCESS_KEY": "devcloud", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint,
            "AWS_ENDPOINT_URL_LAMBDA": self.cloud.endpoint,
            "FRAMEFARM_TABLE": self.table, "FRAMEFARM_BUCKET": self.bucket,
            "FRAMEFARM_WORKER_TIMEOUT": str(self.worker_timeout),
        }
        if "framefarm-render-chunk" in names:
            self.env["FRAMEFARM_WORKER_FUNCTION"] = "framefarm-render-chunk"
        if "framefarm-orchestrate" in names:
            self.env["FRAMEFARM_ORCHESTRATOR_FUNCTION"] = "framefarm-orchestrate"
        for name, value in self.env.items():
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        os.environ.pop("AWS_SESSION_TOKEN", None)
        import boto3

        from framefarm.repositories.dynamodb import create_table

        boto3.client("s3").create_bucket(Bucket=self.bucket)
        create_table(boto3.client("dynamodb"), self.table)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cloud is not None:
            self.cloud.stop()
        if self._moto is not None:
            self._moto.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
