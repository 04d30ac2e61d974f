"""One Lambda execution environment: ``python -m awslambdaric <handler>`` in its own process (and
process group), with its own ``/tmp`` (TMPDIR) and its own Lambda Runtime API on 127.0.0.1, which the
runtime finds at ``AWS_LAMBDA_RUNTIME_API`` as it does in a sandbox:

    GET  /2018-06-01/runtime/invocation/next           waits for devcloud to hand over a call; headers
                                                       Lambda-Runtime-Aws-Request-Id, -Deadline-Ms (epoch
                                                       ms), -Invoked-Function-Arn, -Trace-Id
    POST /2018-06-01/runtime/invocation/{id}/response  the handler's answer (over the limit: 413, and the
                                                       call fails with Function.ResponseSizeTooLarge)
    POST /2018-06-01/runtime/invocation/{id}/error     the handler raised: {errorMessage, errorType, ...}
    POST /2018-06-01/runtime/init/error                importing the handler failed

Init ends at the runtime's first GET /next: its time since the process started is the Init Duration.
An instance serves one call at a time; a call past its timeout kills the whole process group.

Max Memory Used is the sandbox's, as on Lambda: the runtime process and everything it started (a
chunk's ffmpeg). While a call runs, the instance's process tree is sampled every ``MEMORY_SAMPLE``
seconds and the peak of its summed resident memory kept, beside the runtime's own high-water mark.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from framefarm.devcloud.task_root import TaskRoot

RUNTIME = "/2018-06-01/runtime"
NEXT_PATH = f"{RUNTIME}/invocation/next"
POLL = 1.0  # seconds: each wait inside /next re-checks whether the instance is closing
EXIT_WAIT = 10.0  # seconds to wait for a killed process to be reaped
LOG_LINES = 200  # function output lines kept per instance (the log tail is 4 KB anyway)
MEMORY_SAMPLE = 0.02  # seconds between samples of the instance's process tree while a call runs


@dataclass
class Call:
    """One invocation handed to an instance, and what came back."""

    request_id: str
    payload: bytes
    deadline_ms: int
    arn: str
    response_limit: int | None
    delivered: bool = False
    outcome: str | None = None  # "response", "error", "too_large"
    body: bytes = b""
    error_type: str | None = None


@dataclass(frozen=True)
class Result:
    """How a call ended: ``status`` is response, error, too_large, timeout, exited or init_error."""

    status: str
    body: bytes
    error_type: str | None
    peak_mb: int
    log: str


class Instance:
    """Start with ``Instance(...)``; ``initialized(timeout)``, then ``run(call, timeout)`` per call; ``close()``."""

    def __init__(self, handler: str, environment: Mapping[str, str], task_root: TaskRoot) -> None:
        self._cond = threading.Condition()
        self._call: Call | None = None
        self._ready = False  # the runtime asked for its first call: init is over
        self._init_ms: float | None = None
        self._init_error: tuple[bytes, str | None] | None = None
        self._exit: int | None = None
        self._peak_kb = 0
        self._tree_peak_kb = 0
        self._closing = False
        self._log: deque[str] = deque(maxlen=LOG_LINES)
        self._logged = 0
        self.tmp = tempfile.mkdtemp(prefix="devcloud-instance-")
        self._server = _RuntimeServer(("127.0.0.1", 0), _RuntimeHandler)
        self._server.instance = self
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                         name="devcloud-runtime-api", daemon=True).start()
        env = {**environment, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self._server.server_address[1]}",
               "TMPDIR": self.tmp}
        self._started = time.perf_counter()
        self.process = subprocess.Popen(task_root.command(handler), cwd=task_root.directory, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        threading.Thread(target=self._read_output, name="devcloud-instance-log", daemon=True).start()
        threading.Thread(target=self._watch, name="devcloud-instance-exit", daemon=True).start()

    @property
    def alive(self) -> bool:
        with self._cond:
            return self._exit is None and self._init_error is None and not self._closing

    def initialized(self, timeout: float) -> Result | None:
        """Wait for init to end: None when the runtime is ready, else why it is not (killed if it hung)."""
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self._init_error is not None or self._exit is not None,
                                timeout)
            if self._ready:
                return None
            if self._init_error is not None:
                body, error_type = self._init_error
                return self._result("init_error", body, error_type, 0)
        if self._exit is None:
            self.kill()
            return self._result("timeout", b"", None, 0)
        return self._result("exited", b"", None, 0)

    def take_init_ms(self) -> float | None:
        """The Init Duration, once: only the first call an instance serves reports it."""
        with self._cond:
            init_ms, self._init_ms = self._init_ms, None
            return init_ms

    def run(self, call: Call, timeout: float) -> Result:
        """Hand ``call`` to the runtime and wait for its answer, the process's death, or the timeout."""
        sampling = threading.Event()
        threading.Thread(target=self._sample_memory, args=(sampling,), name="devcloud-instance-memory",
                         daemon=True).start()
        with self._cond:
            mark = self._logged
            self._call = call
            self._cond.notify_all()
            self._cond.wait_for(lambda: call.outcome is not None or self._exit is not None, timeout)
            self._call = None
            sampling.set()
            if call.outcome is not None:
                return self._result(call.outcome, call.body, call.error_type, self.peak_mb(), mark)
            exited = self._exit is not None
        if not exited:
            peak = self.peak_mb()
            self.kill()
            return self._result("timeout", b"", None, peak, mark)
        return self._result("exited", b"", None, self.peak_mb(), mark)

    def exit_reason(self) -> str:
        """How the runtime process ended, in Lambda's words (``signal: killed``, ``exit status 1``)."""
        code = self._exit if self._exit is not None else 0
        if code < 0:
            return f"signal: {signal.Signals(-code).name.removeprefix('SIG').lower().replace('kill', 'killed')}"
        return f"exit status {code}"

    def peak_mb(self) -> int:
        """The sandbox's peak memory: the most its process tree held at once while calls ran, or the
        runtime's own high-water mark (VmHWM while it lives, wait4's ru_maxrss once it is gone)."""
        own = _status_kb(self.process.pid, "VmHWM")
        with self._cond:
            return max(own if own is not None else self._peak_kb, self._tree_peak_kb) // 1024

    def _sample_memory(self, stop: threading.Event) -> None:
        while not stop.wait(MEMORY_SAMPLE):
            total = sum(_status_kb(pid, "VmRSS") or 0 for pid in _process_tree(self.process.pid))
            with self._cond:
                self._tree_peak_kb = max(self._tree_peak_kb, total)

    def kill(self) -> None:
        """SIGKILL the process group (the handler's children die with the sandbox) and wait for the exit."""
        with self._cond:
            reaped = self._exit is not None  # its pid (the group's id) may belong to another process by now
        if not reaped:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        with self._cond:
            self._cond.wait_for(lambda: self._exit is not None, EXIT_WAIT)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self.kill()
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the process's side -----------------------------------------------------------------------

    def _result(self, status: str, body: bytes, error_type: str | None, peak_mb: int, mark: int = 0) -> Result:
        with self._cond:
            lines = list(self._log)[-(self._logged - mark):] if self._logged > mark else []
        return Result(status, body, error_type, peak_mb, "".join(lines))

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._cond:
                self._log.append(raw.decode(errors="replace"))
                self._logged += 1

    def _watch(self) -> None:
        pid = self.process.pid
        if hasattr(os, "waitid"):  # Linux: see it exit without reaping it, while its pid still names the group
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # what the runtime started dies with it, as with a sandbox
        # wait4 rather than Popen.wait: it also gives the process's peak RSS, which /proc loses at exit
        _, status, usage = os.wait4(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self.process.returncode = code
        with self._cond:
            self._exit, self._peak_kb = code, usage.ru_maxrss
            self._cond.notify_all()

    # -- the Runtime API's side (called by _RuntimeHandler) ---------------------------------------

    def next_call(self) -> Call | None:
        """The call to hand out, once it comes; None when the instance is closing."""
        with self._cond:
            if not self._ready:
                self._ready, self._init_ms = True, (time.perf_counter() - self._started) * 1000.0
                self._cond.notify_all()
            while not self._closing:
                call = self._call
                if call is not None and not call.delivered:
                    call.delivered = True
                    return call
                self._cond.wait(POLL)
            return None

    def answer(self, request_id: str, outcome: str, body: bytes, error_type: str | None) -> int:
        """Record the runtime's answer to a call; the HTTP status the Runtime API replies with."""
        with self._cond:
            call = self._call
            if call is None or call.request_id != request_id or not call.delivered or call.outcome is not None:
                return 400
            if outcome == "response" and call.response_limit is not None and len(body) > call.response_limit:
                outcome, body, error_type = "too_large", b"", "Function.ResponseSizeTooLarge"
            call.outcome, call.body, call.error_type = outcome, body, error_type
            self._cond.notify_all()
            return 413 if outcome == "too_large" else 202

    def init_failed(self, body: bytes, error_type: str | None) -> None:
        with self._cond:
            self._init_error = (body, error_type)
            self._cond.notify_all()


class _RuntimeServer(ThreadingHTTPServer):
    daemon_threads = True
    instance: Instance

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a killed runtime drops its connection: expected
            super().handle_error(request, client_address)


class _RuntimeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _RuntimeServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the runtime's calls are not news
        pass

    def do_GET(self) -> None:
        if self.path != NEXT_PATH:
            return self._send(404, {"errorType": "NotFound", "errorMessage": self.path})
        call = self.server.instance.next_call()
        if call is None:  # closing: the runtime is being killed, so nobody reads an answer
            self.close_connection = True
            return
        self.send_response(200)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(call.payload)),
                            "Lambda-Runtime-Aws-Request-Id": call.request_id,
                            "Lambda-Runtime-Deadline-Ms": str(call.deadline_ms),
                            "Lambda-Runtime-Invoked-Function-Arn": call.arn,
                            "Lambda-Runtime-Trace-Id": f"Root=1-{call.request_id[:8]}-{call.request_id[-24:]}"
                            }.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(call.payload)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        instance = self.server.instance
        if self.path == f"{RUNTIME}/init/error":
            instance.init_failed(body, error_type)
            return self._send(202, {"status": "OK"})
        parts = self.path[len(RUNTIME):].strip("/").split("/")
        if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            status = instance.answer(parts[1], parts[2], body, error_type)
            if status == 413:
                return self._send(413, {"errorType": "RequestEntityTooLarge",
                                        "errorMessage": f"response of {len(body)} bytes is over the limit"})
            if status == 400:
                return self._send(400, {"errorType": "InvalidRequestID", "errorMessage": parts[1]})
            return self._send(202, {"status": "OK"})
        self._send(404, {"errorType": "NotFound", "errorMessage": self.path})

    def _send(self, status: int, answer: dict[str, str]) -> None:
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux's /proc/<pid>/task/<tid>/children); those gone are skipped."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
    return found


def _status_kb(pid: int, field: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None
