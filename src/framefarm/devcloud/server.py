"""devcloud: the Lambda Invoke API on 127.0.0.1; each function instance is its own process running AWS's
runtime interface client (``python -m awslambdaric <handler>``) against a Lambda Runtime API (``instance``).

moto runs no Lambda code without Docker, so end-to-end tests and demos use this instead: the real
boto3 client and the real ``LambdaWorkerAdapter`` talk HTTP to it (``AWS_ENDPOINT_URL_LAMBDA``).

    POST /2015-03-31/functions/{name}/invocations
      X-Amz-Invocation-Type: RequestResponse (default) | Event (202; queued, run when an instance is free,
                             retried twice on a function error after ``event_retry_delays``, then its
                             record sent to the function's ``on_failure`` queue, if any)
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

This module holds DevCloud (lifecycle, instance pools, reserved concurrency, Event calls queued and
retried); ``invoke_api`` the HTTP layer and Lambda-shaped answers, ``faults`` the injection switches,
``functions`` what a function is. Their names stay importable from here.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from framefarm.adapters.aws_lambda import LAMBDA_PAYLOAD_LIMIT
from framefarm.devcloud.destinations import failure_record, send_to_queue
from framefarm.devcloud.faults import FAULTS, EventMatch, Faults
from framefarm.devcloud.functions import (
    ACCOUNT,
    ORCHESTRATOR_FUNCTION,
    SUBMIT_FUNCTION,
    WORKER_FUNCTION,
    DevFunction,
    Invocation,
    function_arn,
    sandbox_environment,
    standard_functions,
)
from framefarm.devcloud.instance import Call, Instance, Result
from framefarm.devcloud.invoke_api import (
    ASYNC_PAYLOAD_LIMIT,
    INVOKE_PATH,
    LOG_TAIL_BYTES,
    InvokeApiServer,
    InvokeRequestHandler,
    lambda_answer,
)
from framefarm.devcloud.pool import Pool
from framefarm.devcloud.task_root import TaskRoot

__all__ = ["ACCOUNT", "ASYNC_PAYLOAD_LIMIT", "FAULTS", "INIT_TIMEOUT", "INVOKE_PATH", "LOG_TAIL_BYTES",
           "ORCHESTRATOR_FUNCTION", "SLOT_POLL", "SUBMIT_FUNCTION", "WORKER_FUNCTION", "DevCloud", "DevFunction",
           "EventMatch", "Invocation", "standard_functions"]

SLOT_POLL = 1.0  # seconds: a queued Event call re-checks for a free instance (and for stop) this often
INIT_TIMEOUT = 10.0  # seconds Lambda allows a function's init


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
        self.faults = Faults()
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()
        self._slots = threading.Condition(self._lock)  # notified when a call ends and frees an instance
        self._running: dict[str, int] = {}
        self._pools: dict[str, Pool] = {}
        self._background: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._closed = False  # stop() closed the pools: any made later starts closed
        self._server = InvokeApiServer(("127.0.0.1", port), InvokeRequestHandler)
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
        self.faults.inject(name, kind, times, match)

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
        self.faults.kill(name, after_calls_to=after_calls_to, calls=calls)

    @property
    def kills_done(self) -> int:
        return self.faults.kills_done

    @property
    def kills_armed(self) -> int:
        """Kills whose target call is under way (its instance's init over), waiting for their kill point."""
        return self.faults.kills_armed

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

    def admit(self, function: DevFunction, synchronous: bool, event: Any) -> bool:
        """Count a synchronous call in; False when it must be throttled. Event calls queue instead."""
        if not synchronous:
            return True
        if self.faults.take(function.name, "throttle", event):
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
                    lambda: Instance(function.handler, sandbox_environment(function, self.task_root), self.task_root),
                    self.idle_timeout)
                if self._closed:  # stop() closed the pools it saw: this late one too, so nothing outlives it
                    pool.close()
            return pool

    def _reap_idle(self) -> None:
        while not self._stopping.wait(min(1.0, self.idle_timeout / 2)):
            with self._lock:
                pools = list(self._pools.values())
            for pool in pools:
                pool.reap()

    def invoke(self, function: DevFunction, event: Any, kind: str) -> tuple[int, dict[str, str], bytes]:
        """Run one admitted call (its slot is taken) on an instance and answer as Lambda does."""
        request_id = str(uuid.uuid4())
        self.faults.count_call(function.name)
        try:
            if self.faults.take(function.name, "crash", event):
                crash = {"errorMessage": "injected crash (devcloud)", "errorType": "RuntimeError", "stackTrace": []}
                result, init_ms = Result("error", json.dumps(crash).encode(), "RuntimeError", 0, ""), None
                duration_ms = 0.0
            else:
                result, init_ms, duration_ms = self._run(function, event, kind, request_id)
        finally:
            with self._slots:
                self._running[function.name] -= 1
                self._slots.notify_all()
        headers, payload, function_error, billed = lambda_answer(function, request_id, result, init_ms, duration_ms)
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
            self.faults.arm(function.name, instance, request_id)
            call = Call(request_id, json.dumps(event).encode(), int((time.time() + function.timeout) * 1000),
                        function_arn(function),
                        LAMBDA_PAYLOAD_LIMIT if kind == "RequestResponse" else None)
            started = time.perf_counter()
            result = instance.run(call, function.timeout)
            duration_ms = (time.perf_counter() - started) * 1000.0
            if result.status == "exited":
                result = Result("exited", instance.exit_reason().encode(), None, result.peak_mb, result.log)
            return result, init_ms, duration_ms
        finally:
            self.faults.disarm(request_id)
            pool.release(instance)

    def deliver(self, function: DevFunction, event: Any) -> None:
        """Queue an Event call; an injected ``duplicate`` delivers it twice at once, as Lambda's at-least-once
        delivery of asynchronous events may."""
        self._start_background(function, event)
        if self.faults.take(function.name, "duplicate", event):
            self._start_background(function, event)

    def _start_background(self, function: DevFunction, event: Any) -> None:
        def run() -> None:
            try:
                delays = (0.0, *self.event_retry_delays)
                for delay in delays:  # Lambda retries failed asynchronous calls twice
                    if delay and self._stopping.wait(delay):
                        return
                    if not self._take_slot(function, wait=True):
                        return
                    _, headers, payload = self.invoke(function, event, "Event")
                    if "X-Amz-Function-Error" not in headers:
                        break
                else:  # given up on: its record goes to the on-failure destination, if any
                    if function.on_failure:
                        send_to_queue(function.on_failure, failure_record(
                            function, event, request_id=headers["X-Amzn-RequestId"], attempts=len(delays),
                            function_error=headers["X-Amz-Function-Error"], payload=payload))
            finally:
                with self._lock:
                    self._background.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"devcloud-event-{function.name}", daemon=True)
        with self._lock:
            self._background.add(thread)
        thread.start()
