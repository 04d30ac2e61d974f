"""devcloud: the Lambda Invoke API on 127.0.0.1; each function instance is its own process running AWS's
runtime interface client (``python -m awslambdaric <handler>``) against a Lambda Runtime API (``instance``).

moto runs no Lambda code without Docker, so end-to-end tests and demos use this instead: the real
boto3 client and the real ``LambdaWorkerAdapter`` talk HTTP to it (``AWS_ENDPOINT_URL_LAMBDA``).

    POST /2015-03-31/functions/{name}/invocations
      X-Amz-Invocation-Type: RequestResponse (default) | Event (202; queued, run when an instance is free,
                             retried twice on a function error after ``event_retry_delays``)
      X-Amz-Log-Type: Tail  ->  X-Amz-Log-Result: base64 of START, the function's output, END, REPORT, where
                                REPORT carries the measured Duration, Billed Duration (rounded up to 1 ms),
                                Memory Size, Max Memory Used (the instance process's peak RSS), Init
                                Duration on an instance's first call (process start + init) and Status:
                                timeout for a call killed at its timeout
      an exception -> 200 with X-Amz-Function-Error: Unhandled and {errorMessage, errorType, stackTrace}
      past the function's timeout -> "Task timed out after N seconds" (Sandbox.Timedout), billed at the
                                timeout; the instance is killed and the next call starts a new one
      more calls than the reserved concurrency -> 429 TooManyRequestsException (synchronous calls)
      a request over 6 MiB (256 KiB for Event) -> 413 RequestEntityTooLargeException, nothing runs
      a reply over 6 MiB -> 200 with X-Amz-Function-Error: Unhandled and errorType
                            Function.ResponseSizeTooLarge (the handler ran and is billed; its reply is lost)

Instances are kept warm for reuse and reaped after ``idle_timeout`` seconds idle. Each gets Lambda's
environment (AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_MEMORY_SIZE, AWS_LAMBDA_RUNTIME_API,
LAMBDA_TASK_ROOT, _HANDLER, AWS_REGION, credentials) over devcloud's own (the endpoints it serves), a
TMPDIR of its own, and runs from a ``TaskRoot``: the current environment (fast) or the image's layout.

Switches for fault injection, each for the next ``times`` calls (optionally only calls whose event
``match`` accepts): ``throttle`` answers 429 TooManyRequestsException, ``crash`` answers as if the
handler raised (no instance runs), ``reset`` runs the handler and then drops the connection (RST)
instead of answering, ``duplicate`` delivers an Event twice; ``kill`` SIGKILLs an instance mid-call.
"""

from __future__ import annotations

import base64
import json
import math
import os
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from framefarm.adapters.aws_lambda import LAMBDA_PAYLOAD_LIMIT
from framefarm.aws.functions import FIXED_LIMITS, HANDLERS, ORCHESTRATE, RENDER_CHUNK, SUBMIT
from framefarm.billing import format_report
from framefarm.devcloud.instance import Call, Instance, Result
from framefarm.devcloud.pool import Pool
from framefarm.devcloud.task_root import TaskRoot

INVOKE_PATH = "/2015-03-31/functions/"
LOG_TAIL_BYTES = 4096
ASYNC_PAYLOAD_LIMIT = 256 * 1024  # Lambda's limit for an Event invocation's payload
ACCOUNT = "000000000000"
SLOT_POLL = 1.0  # seconds: a queued Event call re-checks for a free instance (and for stop) this often
INIT_TIMEOUT = 10.0  # seconds Lambda allows a function's init

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
    request_id: str | None = None  # the target call it is armed on
    instance: Instance | None = None
    done: bool = False


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


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class DevCloud:
    """Serve functions on 127.0.0.1. ``with DevCloud([...]) as cloud: cloud.endpoint``.

    ``task_root`` is where instances run from (default: ``TaskRoot.current()``, the fast mode);
    ``idle_timeout`` is how long an idle instance is kept warm.
    """

    def __init__(self, functions: list[DevFunction] | tuple[DevFunction, ...] = (), *, port: int = 0,
                 event_retry_delays: tuple[float, ...] = (60.0, 120.0), task_root: TaskRoot | None = None,
                 idle_timeout: float = 300.0) -> None:
        self.functions = {function.name: function for function in functions}
        self.event_retry_delays = event_retry_delays  # Lambda retries a failed Event call twice, ~1 and ~2 min on
        self.task_root = task_root or TaskRoot.current()
        self.idle_timeout = idle_timeout
        self._kills: list[_Kill] = []
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()
        self._slots = threading.Condition(self._lock)  # notified when a call ends and frees an instance
        self._faults: dict[str, list[_Fault]] = {}
        self._running: dict[str, int] = {}
        self._pools: dict[str, Pool] = {}
        self._background: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._closed = False  # stop() closed the pools: any made later starts closed
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
        threading.Thread(target=self._reap_idle, name="devcloud-reaper", daemon=True).start()
        return self

    def stop(self) -> None:
        """Let the calls under way finish (30 s at most), start no more (pending Event retries are
        dropped), then close every instance."""
        self._stopping.set()
        self.wait_idle(timeout=30)
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()

    def __enter__(self) -> DevCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, function: DevFunction) -> None:
        self.functions[function.name] = function

    def instances(self, name: str) -> list[Instance]:
        """The live instances of function ``name`` (busy or warm)."""
        return self._pool(self.functions[name]).instances()

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
        """Make the next ``times`` calls to ``name`` fail as a raising handler does (FunctionError Unhandled)."""
        self.inject(name, "crash", times, match)

    def reset(self, name: str, times: int, match: EventMatch | None = None) -> None:
        """Run the next ``times`` calls to ``name``, then reset the connection instead of answering."""
        self.inject(name, "reset", times, match)

    def kill(self, name: str, *, after_calls_to: str, calls: int) -> None:
        """SIGKILL the instance running the next call to ``name`` when, after it began, the ``calls``-th
        call to ``after_calls_to`` arrives: a sandbox dying mid-run, with that many of its calls in flight."""
        if name not in self.functions:
            raise ValueError(f"no function {name!r}; known: {', '.join(self.functions)}")
        with self._lock:
            self._kills.append(_Kill(name, after_calls_to, calls))

    @property
    def kills_done(self) -> int:
        with self._lock:
            return sum(kill.done for kill in self._kills)

    @property
    def kills_armed(self) -> int:
        """Kills whose target call is under way (its instance's init over), waiting for their kill point."""
        with self._lock:
            return sum(kill.instance is not None and not kill.done for kill in self._kills)

    def _count_call_for_kills(self, name: str) -> None:
        with self._lock:
            due = []
            for kill in self._kills:
                if kill.watched == name and kill.instance is not None and not kill.done:
                    kill.calls -= 1
                    if kill.calls <= 0:
                        kill.done = True
                        due.append(kill.instance)
        for instance in due:
            instance.kill()

    def _arm_kills(self, name: str, instance: Instance, request_id: str) -> None:
        with self._lock:
            for kill in self._kills:
                if kill.target == name and kill.instance is None and not kill.done:
                    kill.instance, kill.request_id = instance, request_id
                    break

    def _disarm_kills(self, request_id: str) -> None:
        """A call that ended before its kill point frees its kill for the next call to the target."""
        with self._lock:
            for kill in self._kills:
                if kill.request_id == request_id and not kill.done:
                    kill.instance, kill.request_id = None, None

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
        """Count a synchronous call in; False when it must be throttled. Event calls queue instead."""
        if not synchronous:
            return True
        if self._take_fault(function.name, "throttle", event):
            return False
        return self._take_slot(function, wait=False)

    def _take_slot(self, function: DevFunction, *, wait: bool) -> bool:
        """Count a call in under the reserved concurrency; with ``wait``, queue for a slot until stopped."""
        with self._slots:
            while True:
                if wait and self._stopping.is_set():  # no new Event call or retry once stopping; the
                    return False                      # synchronous calls of functions still running go on
                running = self._running.get(function.name, 0)
                if function.reserved_concurrency is None or running < function.reserved_concurrency:
                    self._running[function.name] = running + 1
                    return True
                if not wait:
                    return False
                self._slots.wait(SLOT_POLL)

    def _pool(self, function: DevFunction) -> Pool:
        with self._lock:
            pool = self._pools.get(function.name)
            if pool is None:
                pool = self._pools[function.name] = Pool(
                    lambda: Instance(function.handler, self._environment(function), self.task_root),
                    self.idle_timeout)
                if self._closed:  # stop() closed the pools it saw: this late one too, so nothing outlives it
                    pool.close()
            return pool

    def _environment(self, function: DevFunction) -> dict[str, str]:
        """What Lambda sets in a sandbox, over devcloud's own environment (its endpoints and credentials)."""
        region = _region()
        env = {**os.environ, **function.environment}
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.setdefault(name, "devcloud")
        env.update({
            "AWS_LAMBDA_FUNCTION_NAME": function.name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"devcloud/[$LATEST]{uuid.uuid4().hex}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "LAMBDA_TASK_ROOT": str(self.task_root.directory), "_HANDLER": function.handler,
            "AWS_REGION": region, "AWS_DEFAULT_REGION": region, "TZ": ":UTC",
            "PYTHONPATH": os.pathsep.join(self.task_root.python_path),
        })
        return env

    def _reap_idle(self) -> None:
        while not self._stopping.wait(min(1.0, self.idle_timeout / 2)):
            with self._lock:
                pools = list(self._pools.values())
            for pool in pools:
                pool.reap()

    def _invoke(self, function: DevFunction, event: Any, kind: str) -> tuple[int, dict[str, str], bytes]:
        """Run one admitted call (its slot is taken) on an instance and answer as Lambda does."""
        request_id = str(uuid.uuid4())
        self._count_call_for_kills(function.name)
        try:
            if self._take_fault(function.name, "crash", event):
                crash = {"errorMessage": "injected crash (devcloud)", "errorType": "RuntimeError", "stackTrace": []}
                result, init_ms = Result("error", json.dumps(crash).encode(), "RuntimeError", 0, ""), None
                duration_ms = 0.0
            else:
                result, init_ms, duration_ms = self._run(function, event, kind, request_id)
        finally:
            with self._slots:
                self._running[function.name] -= 1
                self._slots.notify_all()
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
        with self._lock:
            self.invocations.append(Invocation(function.name, request_id, kind, event, 200, function_error, billed))
        return 200, headers, payload

    def _run(self, function: DevFunction, event: Any, kind: str, request_id: str) -> tuple[Result, float | None, float]:
        """The call on a warm instance, or on a new one once its init is over: (result, init ms, duration ms)."""
        pool = self._pool(function)
        instance, cold = pool.acquire()
        try:
            # Lambda gives init 10 s of its own; never less than the function's timeout here, where a
            # loaded 2-core machine can take seconds to start many interpreters at once.
            failed = instance.initialized(max(INIT_TIMEOUT, function.timeout)) if cold else None
            if failed is not None:
                if failed.status == "exited":
                    failed = Result("exited", instance.exit_reason().encode(), None, failed.peak_mb, failed.log)
                return failed, None, 0.0
            init_ms = instance.take_init_ms()
            self._arm_kills(function.name, instance, request_id)
            call = Call(request_id, json.dumps(event).encode(), int((time.time() + function.timeout) * 1000),
                        f"arn:aws:lambda:{_region()}:{ACCOUNT}:function:{function.name}",
                        LAMBDA_PAYLOAD_LIMIT if kind == "RequestResponse" else None)
            started = time.perf_counter()
            result = instance.run(call, function.timeout)
            duration_ms = (time.perf_counter() - started) * 1000.0
            if result.status == "exited":
                result = Result("exited", instance.exit_reason().encode(), None, result.peak_mb, result.log)
            return result, init_ms, duration_ms
        finally:
            self._disarm_kills(request_id)
            pool.release(instance)

    def _deliver(self, function: DevFunction, event: Any) -> None:
        """Queue an Event call; an injected ``duplicate`` delivers it twice at once, as Lambda's at-least-once
        delivery of asynchronous events may."""
        self._start_background(function, event)
        if self._take_fault(function.name, "duplicate", event):
            self._start_background(function, event)

    def _start_background(self, function: DevFunction, event: Any) -> None:
        def run() -> None:
            try:
                for delay in (0.0, *self.event_retry_delays):  # Lambda retries failed asynchronous calls twice
                    if delay and self._stopping.wait(delay):
                        return
                    if not self._take_slot(function, wait=True):
                        return
                    _, headers, _ = self._invoke(function, event, "Event")
                    if "X-Amz-Function-Error" not in headers:
                        break
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
        if kind == "Event":  # queued: the background call takes its slot when an instance may run it
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
                       orchestrator_timeout: float = 900.0) -> list[DevFunction]:
    """The three functions the CDK stack deploys, with the handler strings its image runs."""
    (submit_mb, submit_s), (orchestrator_mb, _) = FIXED_LIMITS[SUBMIT], FIXED_LIMITS[ORCHESTRATE]
    return [
        DevFunction(SUBMIT_FUNCTION, HANDLERS[SUBMIT], memory_mb=submit_mb, timeout=submit_s),
        DevFunction(ORCHESTRATOR_FUNCTION, HANDLERS[ORCHESTRATE], memory_mb=orchestrator_mb,
                    timeout=orchestrator_timeout),
        DevFunction(WORKER_FUNCTION, HANDLERS[RENDER_CHUNK], memory_mb=worker_memory_mb, timeout=worker_timeout),
    ]
