"""Test doubles that are real implementations (a scripted in-process worker), and spec builders."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import socket
import socketserver
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from framefarm import CallableWorkerAdapter, JobSpec, WorkerJob, WorkerResult, plan_job

FAULTY_CHUNK = Path(__file__).parent / "faulty_chunk.py"  # a chunk command that misbehaves on cue


def make_spec(chunks: int = 5, *, frames_per_chunk: int = 10, job_id: str | None = None,
              command: str = "render {start_frame} {end_frame} {output}") -> JobSpec:
    return plan_job({"width": 64, "height": 48, "fps": 10, "total_frames": chunks * frames_per_chunk,
                     "frames_per_chunk": frames_per_chunk, "command": command}, job_id=job_id)


@dataclass
class ScriptedWorker:
    """An in-process worker whose behaviour per (chunk, attempt) is scripted.

    ``fail`` maps chunk id -> number of attempts that fail before one succeeds (a large number means
    always). ``hooks`` maps chunk id -> a function run at the start of every attempt at that chunk.
    It counts calls and the greatest number of calls running at once (a counter, not a clock).
    """

    fail: dict[int, int] = field(default_factory=dict)
    hooks: dict[int, Callable[[WorkerJob], None]] = field(default_factory=dict)
    stdout: Callable[[int], str] = lambda chunk_id: f"rendered chunk {chunk_id}\n"
    calls: Counter[int] = field(default_factory=Counter)
    order: list[int] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def adapter(self) -> CallableWorkerAdapter:
        return CallableWorkerAdapter(self)

    def __call__(self, job: WorkerJob) -> WorkerResult:
        chunk_id = job.meta["chunk_id"]
        with self.changed:
            self.calls[chunk_id] += 1
            self.order.append(chunk_id)
            attempt = self.calls[chunk_id]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.changed.notify_all()
        try:
            if chunk_id in self.hooks:
                self.hooks[chunk_id](job)
            if attempt <= self.fail.get(chunk_id, 0):
                return WorkerResult(exit_code=1, stderr=f"boom in chunk {chunk_id} attempt {attempt}\n",
                                    duration_ms=2.0)
            return WorkerResult(exit_code=0, stdout=self.stdout(chunk_id), duration_ms=10.0 + chunk_id)
        finally:
            with self.changed:
                self.in_flight -= 1
                self.changed.notify_all()

    def wait_for(self, predicate: Callable[[ScriptedWorker], bool], timeout: float = 30.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self), timeout):
                raise AssertionError("condition not reached")


class RecordingStitcher:
    """Records what it was asked to stitch and writes a marker file."""

    def __init__(self) -> None:
        self.calls: list[tuple[list, object, object]] = []
        self.refusal: str | None = None  # why a merge refused before stitching, when a test keeps it
        self.texts: list[str] = []  # what each input held (a merge's downloads are gone afterwards)

    def stitch(self, inputs, output, audio=None):
        self.calls.append((list(inputs), output, audio))
        self.texts = [path.read_text(errors="replace").strip() if path.exists() else "" for path in inputs]
        output.write_text("stitched")
        return output


class WorkerServer:
    """The Cloud Run worker app under waitress on 127.0.0.1, recording each request's Authorization."""

    def __init__(self, timeout: float | None = None, faults: PlatformFaults | None = None) -> None:
        from framefarm.worker.cloud_run_server import create_app, serve

        app = create_app(timeout=timeout)
        if faults is not None:
            app = faults.middleware(app)
        self.authorizations: list[str | None] = []

        def recording(environ, start_response):
            self.authorizations.append(environ.get("HTTP_AUTHORIZATION"))
            return app(environ, start_response)

        self.server = serve(recording, host="127.0.0.1", port=0)
        self.port = self.server.effective_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.closing = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:  # close() pulls the sockets from under waitress's select loop: EBADF is the way out
            if not self.closing:
                raise

    def close(self) -> None:
        self.closing = True
        self.server.close()


class PlatformFaults:
    """Faults injected in front of a Cloud Run worker, each for the next ``times`` requests of one chunk.

    ``throttle`` answers 429 and ``crash`` answers 500 (the instance died handling it) without running
    the chunk; ``reset`` (through ResettingProxy) runs it and then drops the connection.
    """

    def __init__(self) -> None:
        self._faults: list[list] = []
        self._lock = threading.Lock()

    def add(self, kind: str, times: int, chunk_id: int) -> None:
        with self._lock:
            self._faults.append([kind, times, chunk_id])

    def take(self, kind: str, body: bytes) -> bool:
        try:
            chunk_id = json.loads(body).get("chunk_id")
        except (ValueError, AttributeError):
            return False
        with self._lock:
            for fault in self._faults:
                if fault[0] == kind and fault[1] > 0 and fault[2] == chunk_id:
                    fault[1] -= 1
                    return True
        return False

    def middleware(self, app):
        def faulty(environ, start_response):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            for kind, status in (("throttle", "429 Too Many Requests"), ("crash", "500 Internal Server Error")):
                if self.take(kind, body):
                    start_response(status, [("Content-Type", "text/plain")])
                    return [f"injected {kind}".encode()]
            return app(environ, start_response)

        return faulty


class ResettingProxy:
    """An HTTP relay on 127.0.0.1 that resets the connection (TCP RST) instead of relaying the answer
    for requests ``faults`` picks: the worker ran, the caller never hears back."""

    def __init__(self, upstream_port: int, faults: PlatformFaults) -> None:
        proxy = self

        class Relay(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while proxy.relay_one(self.connection, self.rfile):
                    pass

        self.upstream_port, self.faults = upstream_port, faults
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Relay)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def relay_one(self, connection, rfile) -> bool:
        request_line = rfile.readline()
        if not request_line.strip():
            return False
        method, path, _ = request_line.decode().split(" ", 2)
        headers = {}
        while (line := rfile.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip()] = value.strip()
        body = rfile.read(int(headers.get("Content-Length", 0)))
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=120)
        upstream.request(method, path, body, headers)
        response = upstream.getresponse()
        payload = response.read()
        upstream.close()
        if self.faults.take("reset", body):
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()
            return False
        head = [f"HTTP/1.1 {response.status} {response.reason}"]
        head += [f"{name}: {value}" for name, value in response.getheaders()
                 if name.lower() not in ("content-length", "transfer-encoding", "connection")]
        head.append(f"Content-Length: {len(payload)}")
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        return True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def eventually(probe: Callable[[], object], *, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``probe`` until it returns something truthy, and return that (AssertionError after ``timeout``)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout} s")


def corrupt_s3_object(bucket: str, key: str) -> None:
    """Flip one byte of a stored object in moto's backend, keeping its size, ETag and stored checksum."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys[key]
    data = bytearray(stored.value)
    data[len(data) // 2] ^= 0xFF
    stored.value = bytes(data)


def process_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie, killed and waiting to be reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def stubbed_client(service: str):
    """A real boto3 client for ``service`` whose answers a botocore Stubber scripts (for errors moto never
    produces); yields (client, stubber) and checks on exit that every scripted answer was used."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(service, region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()
