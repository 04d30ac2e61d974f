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
      a request over 6 MiB (256 KiB for Event) -> 413 RequestEntityTooLargeException, nothing runs
      a reply over 6 MiB -> 200 with X-Amz-Function-Error: Unhandled and errorType
                            Function.ResponseSizeTooLarge (the handler ran and is billed; its reply is lost)

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
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from framefarm.adapters.aws_lambda import LAMBDA_PAYLOAD_LIMIT
from framefarm.billing import format_report

ROOT = Path(__file__).resolve().parents[3]  # the checkout: lambda_handlers/ lives here
INVOKE_PATH = "/2015-03-31/functions/"
LOG_TAIL_BYTES = 4096
ASYNC_PAYLOAD_LIMIT = 256 * 1024  # Lambda's limit for an Event invocation's payload

Handler = Callable[[Any, Any], Any]
EventMatch = Callable[[Any], bool]
FAULTS = ("throttle", "crash", "reset", "duplicate")
# The names standard_functions serves the three handlers under.
SUBMIT_FUNCTION = "framefarm-submit"
ORCHESTRATOR_FUNCTION = "framefarm-orchestrate"
WORKER_FUNCTION = "framefarm-render-chunk"


@dataclass
class _Fault:
    kind: str
    remaining: int
    match: EventMatch | None


@dataclass
class _Kill:
    """Kill the next call to ``target`` once ``calls`` more calls to ``watched`` arrive after it began."""

    target: str
    watched: str
    calls: int
    process: subprocess.Popen[bytes] | None = None
    done: bool = False


@dataclass
class DevFunction:
    """A function devcloud serves: a handler (``"module:attribute"`` or a callable) and its limits."""

    name: str
    handler: str | Handler
    memory_mb: int = 1024
    timeout: float = 900.0
    reserved_concurrency: int | None = None
    isolated: bool = False  # each call in its own process (``devcloud.isolated``), so ``kill`` can stop it
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

    def __init__(self, functions: list[DevFunction] | tuple[DevFunction, ...] = (), *, port: int = 0,
                 event_retry_delays: tuple[float, ...] = (60.0, 120.0)) -> None:
        self.functions = {function.name: function for function in functions}
        self.event_retry_delays = event_retry_delays  # Lambda retries a failed Event call twice, ~1 and ~2 min on
        self._kills: list[_Kill] = []
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

    def kill(self, name: str, *, after_calls_to: str, calls: int) -> None:
        """SIGKILL the next call to ``name`` (an isolated function) when, after it began, the ``calls``-th
        call to ``after_calls_to`` arrives: a sandbox dying mid-run, with that many of its calls in flight."""
        if not self.functions[name].isolated:
            raise ValueError(f"{name} is not isolated; only a function run in its own process can be killed")
        with self._lock:
            self._kills.append(_Kill(name, after_calls_to, calls))

    @property
    def kills_done(self) -> int:
        with self._lock:
            return sum(kill.done for kill in self._kills)

    def _count_call_for_kills(self, name: str) -> None:
        with self._lock:
            due = []
            for kill in self._kills:
                if kill.watched == name and kill.process is not None and not kill.done:
                    kill.calls -= 1
                    if kill.calls <= 0:
                        kill.done = True
                        due.append(kill.process)
        for process in due:
            process.kill()

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
        outcome: dict[str, Any] = {}
        body: Any

        started = time.perf_counter()
        self._count_call_for_kills(function.name)
        init_ms = None
        if function.isolated and not crash:
            alive = self._call_isolated(function, event, request_id, outcome)
        else:
            handler, init_ms = function.resolve()
            context = LambdaContext(function, request_id, time.monotonic() + function.timeout)
            alive = self._call_in_thread(function, handler, event, context, crash, outcome)
        duration_ms = (time.perf_counter() - started) * 1000.0
        with self._lock:
            self._running[function.name] -= 1
        function_error = None
        if "killed" in outcome:
            function_error = "Unhandled"
            body = {"errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
                    "errorType": "Runtime.ExitError"}
        elif alive:
            duration_ms = function.timeout * 1000.0
            function_error = "Unhandled"
            body = {"errorMessage": f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {request_id} Task timed out after "
                                    f"{function.timeout:.2f} seconds", "errorType": "Sandbox.Timedout"}
        elif "error" in outcome:
            function_error = "Unhandled"
            exc = outcome["error"]
            body = {"errorMessage": str(exc), "errorType": outcome.get("error_type", type(exc).__name__),
                    "stackTrace": [line.rstrip() for line in outcome["trace"]][-10:]}
        else:
            body = outcome.get("value")
        payload = json.dumps(body, default=str).encode()
        if kind == "RequestResponse" and len(payload) > LAMBDA_PAYLOAD_LIMIT:  # Lambda's 6 MB response limit
            function_error = "Unhandled"
            payload = json.dumps({"errorMessage": "Response payload size exceeded maximum allowed payload size "
                                                  f"({LAMBDA_PAYLOAD_LIMIT} bytes).",
                                  "errorType": "Function.ResponseSizeTooLarge"}).encode()
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
        return 200, headers, payload

    def _call_in_thread(self, function: DevFunction, handler: Handler, event: Any, context: LambdaContext,
                        crash: bool, outcome: dict[str, Any]) -> bool:
        """Run the handler on a thread of this process; True if it is still running at the timeout."""
        def call() -> None:
            try:
                if crash:
                    raise RuntimeError("injected crash (devcloud)")
                outcome["value"] = handler(event, context)
            except Exception as exc:
                outcome["error"] = exc
                outcome["trace"] = traceback.format_exception(exc)

        worker = threading.Thread(target=call, name=f"devcloud-{function.name}", daemon=True)
        worker.start()
        worker.join(function.timeout)
        return worker.is_alive()

    def _call_isolated(self, function: DevFunction, event: Any, request_id: str, outcome: dict[str, Any]) -> bool:
        """Run the handler in its own process (``devcloud.isolated``); True if it outlived the timeout."""
        request = {"handler": function.handler, "name": function.name, "memory_mb": function.memory_mb,
                   "request_id": request_id, "seconds": function.timeout, "event": event}
        process = subprocess.Popen([sys.executable, "-m", "framefarm.devcloud.isolated"], cwd=ROOT,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None)
        with self._lock:
            for kill in self._kills:
                if kill.target == function.name and kill.process is None:
                    kill.process = process
                    break
        try:
            stdout, _ = process.communicate(json.dumps(request, default=str).encode(),
                                            timeout=function.timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return True
        if process.returncode < 0:
            outcome["killed"] = True
            return False
        answer = json.loads(stdout or b"{}")
        if "error" in answer:
            outcome["error"] = RuntimeError(answer["error"])
            outcome["error_type"] = answer["type"]
            outcome["trace"] = answer["trace"]
        else:
            outcome["value"] = answer.get("value")
        return False

    def _deliver(self, function: DevFunction, event: Any) -> None:
        """Run an Event call in the background; an injected ``duplicate`` delivers it twice at once, as
        Lambda's at-least-once delivery of asynchronous events may."""
        self._start_background(function, event)
        if self._take_fault(function.name, "duplicate", event):
            with self._lock:
                self._running[function.name] = self._running.get(function.name, 0) + 1
            self._start_background(function, event)

    def _start_background(self, function: DevFunction, event: Any) -> None:
        def run() -> None:
            try:
                _, headers, _ = self._invoke(function, event, "Event")
                for delay in self.event_retry_delays:  # Lambda retries failed asynchronous calls
                    if "X-Amz-Function-Error" not in headers:
                        break
                    time.sleep(delay)
                    with self._lock:
                        self._running[function.name] = self._running.get(function.name, 0) + 1
                    _, headers, _ = self._invoke(function, event, "Event")
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
        kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        limit = LAMBDA_PAYLOAD_LIMIT if kind == "RequestResponse" else ASYNC_PAYLOAD_LIMIT
        if len(body) > limit:
            return self._error(413, "RequestEntityTooLargeException",
                               f"Request must be smaller than {limit} bytes for the {kind} invocation type")
        try:
            event = json.loads(body) if body else {}
        except json.JSONDecodeError:
            return self._error(400, "InvalidRequestContentException", "Could not parse request body into json")
        if not cloud._admit(function, synchronous=kind == "RequestResponse", event=event):
            return self._error(429, "TooManyRequestsException", "Rate Exceeded.",
                               extra={"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"})
        if kind == "Event":  # counted in by _admit, counted out when the background call ends
            cloud._deliver(function, event)
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
                       orchestrator_timeout: float = 900.0, isolate_orchestrator: bool = False) -> list[DevFunction]:
    """The three functions the CDK stack deploys, with their real handlers (the orchestrator in its own
    process per call when ``isolate_orchestrator``, so tests can kill it)."""
    return [
        DevFunction(SUBMIT_FUNCTION, "lambda_handlers.submit:handler", memory_mb=512, timeout=30),
        DevFunction(ORCHESTRATOR_FUNCTION, "lambda_handlers.orchestrate:handler", memory_mb=1024,
                    timeout=orchestrator_timeout, isolated=isolate_orchestrator),
        DevFunction(WORKER_FUNCTION, "lambda_handlers.render_chunk:handler", memory_mb=worker_memory_mb,
                    timeout=worker_timeout),
    ]
