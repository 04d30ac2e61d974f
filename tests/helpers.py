"""Test doubles that are real implementations (a scripted in-process worker, the Cloud Run worker in its own
process behind a fault-injecting proxy), and spec builders."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shlex
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from framefarm import CallableWorkerAdapter, JobSpec, RetryPolicy, RunHooks, WorkerJob, WorkerResult, plan_job

FAULTY_CHUNK = Path(__file__).parent / "faulty_chunk.py"  # a chunk command that misbehaves on cue
CLOUD_RUN_DOCKERFILE = Path(__file__).resolve().parents[1] / "infra" / "cloudrun" / "Dockerfile"


def make_spec(chunks: int = 5, *, frames_per_chunk: int = 10, job_id: str | None = None,
              command: str = "render {start_frame} {end_frame} {output}") -> JobSpec:
    return plan_job({"width": 64, "height": 48, "fps": 10, "total_frames": chunks * frames_per_chunk,
                     "frames_per_chunk": frames_per_chunk, "command": command}, job_id=job_id)


# A chunk command that appends "<chunk id> <unix time>" to a ledger as it starts, works a while, writes its
# output: ``[*LEDGER_CHUNK, LEDGER_PATH, SECONDS]``, so tests count starts at the worker (see ``ledger_starts``).
LEDGER_CHUNK = [sys.executable, "-c",
                "import sys, time; open(sys.argv[3], 'a').write('%s %f\\n' % (sys.argv[1], time.time())); "
                "time.sleep(float(sys.argv[4])); open(sys.argv[2], 'wb').write(b'chunk')",
                "{chunk_id}", "{output}"]


def ledger_starts(ledger: Path) -> list[tuple[int, float]]:
    """Each chunk start a ``LEDGER_CHUNK`` command wrote: (chunk id, when)."""
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    return [(int(chunk), float(at)) for chunk, at in (line.split() for line in lines)]


def assert_stopped_at_the_cap(job, starts: list[tuple[int, float]], cap: float) -> None:
    """A job paused by its spending cap, counted at the worker: fewer chunks started than it has, every
    start recorded and completed (those in flight finished), and none started once the attempts that
    had finished before it had reached the cap."""
    assert job.state.value == "paused" and job.pause_reason == "budget", job.error
    assert 1 <= len(starts) < job.total_chunks
    assert Counter(chunk for chunk, _ in starts) == {r.chunk_id: r.attempts for r in job.chunks if r.attempts}
    assert all(r.state.value == "completed" for r in job.chunks if r.attempts)
    for chunk, at in starts:
        spent_before = sum(r.cost_usd for r in job.chunks if r.finished_at is not None and r.finished_at <= at)
        assert spent_before < cap, (chunk, spent_before, cap)


def hooks(**methods: Callable[..., None]) -> RunHooks:
    """A RunHooks whose hooks named here are these functions, e.g. ``hooks(progress=lambda done, total: ...)``;
    the others do nothing. A name RunHooks has no hook for is a TypeError, not a hook never called."""
    listener = RunHooks()
    for name, method in methods.items():
        if name.startswith("_") or name == "listens_to" or not callable(getattr(RunHooks, name, None)):
            raise TypeError(f"RunHooks has no hook {name!r}")
        setattr(listener, name, method)
    return listener


def retry_at_once(retries: int = 0, **policy: int) -> RetryPolicy:
    """A RetryPolicy that waits no time between attempts, with ``retries`` (none by default, as the
    executor's own default) and the other counts given (``transient_retries``)."""
    return RetryPolicy(retries=retries, delay=0, **policy)


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


class CommandLog:
    """A subprocess runner (for FfmpegStitcher(runner=...)) that keeps every command it ran."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, command, **kwargs):
        self.commands.append(list(command))
        return subprocess.run(command, **kwargs)

    def probed(self, path) -> bool:
        """Whether a command other than the join read ``path``."""
        return any(str(path) in command and "concat" not in command for command in self.commands)


def atoms(path: Path) -> list[tuple[str, int, int, int]]:
    """The file's top-level MP4 boxes: (type, offset, header size, size)."""
    found, offset, total = [], 0, path.stat().st_size
    with open(path, "rb") as stream:
        while offset < total:
            stream.seek(offset)
            size, kind = struct.unpack(">I4s", stream.read(8))
            header = 8
            if size == 1:
                size, header = struct.unpack(">Q", stream.read(8))[0], 16
            found.append((kind.decode(), offset, header, size))
            offset += size
    return found


def media_data(path: Path) -> bytes:
    (_, offset, header, size), = [atom for atom in atoms(path) if atom[0] == "mdat"]
    with open(path, "rb") as stream:
        stream.seek(offset + header)
        return stream.read(size - header)


def todays_stitch(ffmpeg: str, chunks: list[Path], output: Path, audio: Path | None = None) -> Path:
    """The stitch as framefarm 0.2 ran it: concat, then a second pass to move the index (+faststart)."""
    listing = output.with_suffix(".txt")
    listing.write_text("".join(f"file '{chunk}'\n" for chunk in chunks))
    command = [ffmpeg, "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
    command += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0"] if audio else ["-map", "0:v:0"]
    subprocess.run([*command, "-c", "copy", "-movflags", "+faststart", str(output)], check=True)
    return output


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


def image_command(dockerfile: Path = CLOUD_RUN_DOCKERFILE) -> tuple[list[str], dict[str, str]]:
    """The command and environment the Cloud Run image starts its worker with (its CMD and ENV lines),
    ``python`` being this interpreter."""
    command: list[str] = []
    env: dict[str, str] = {}
    for line in dockerfile.read_text().splitlines():
        if line.startswith("CMD "):
            command = json.loads(line[len("CMD "):])
        elif line.startswith("ENV "):
            env.update(item.split("=", 1) for item in shlex.split(line[len("ENV "):]))
    return [sys.executable if part == "python" else part for part in command], env


class WorkerProcess:
    """The Cloud Run worker started the way its image starts it (``image_command``: ``python -m
    framefarm.worker.cloud_run_server``) in its own process, on 127.0.0.1 at the ``PORT`` it is given.

    ``timeout`` reaches it as ``FRAMEFARM_CHUNK_TIMEOUT``; the image's ``ENV`` and then this process's
    environment at start make the rest. Its log goes to a file, read back when it fails to start.
    """

    def __init__(self, timeout: float | None = None, *, attempts: int = 3) -> None:
        from framefarm.config import ENV_CHUNK_TIMEOUT

        self.command, image_env = image_command()
        descriptor, log_path = tempfile.mkstemp(prefix="cloud-run-worker-", suffix=".log")
        os.close(descriptor)
        self.log = Path(log_path)
        env = {**image_env, **os.environ, "HOST": "127.0.0.1"}
        if timeout is not None:
            env[ENV_CHUNK_TIMEOUT] = str(timeout)
        for _ in range(attempts):  # a free port can be taken between choosing it and the worker binding it
            self.port = free_port()
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(self.command, env={**env, "PORT": str(self.port)},
                                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            try:
                eventually(lambda: self.process.poll() is not None or _accepts(self.port), timeout=30,
                           what="the Cloud Run worker listening")
            except AssertionError:
                self.close()
                raise
            if self.process.poll() is None:
                return
            self.process.wait()  # it exited (the port was taken): reaped before the next try
        raise AssertionError(f"the Cloud Run worker did not start:\n{self.log.read_text()}")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.unlink(missing_ok=True)


class WorkerServer:
    """A Cloud Run worker process (``WorkerProcess``, shared when given) behind a ``PlatformProxy``:
    ``url`` is the proxy's, which records each request's Authorization and injects ``faults``."""

    def __init__(self, timeout: float | None = None, faults: PlatformFaults | None = None,
                 process: WorkerProcess | None = None) -> None:
        self._owned = process is None
        self.process = process or WorkerProcess(timeout)
        self.proxy = PlatformProxy(self.process.port, faults or PlatformFaults())
        self.url = self.proxy.url
        self.authorizations = self.proxy.authorizations

    def close(self) -> None:
        self.proxy.close()
        if self._owned:
            self.process.close()


class PlatformFaults:
    """Faults injected in front of a Cloud Run worker, each for the next ``times`` requests of one chunk.

    ``throttle`` answers 429 and ``crash`` answers 500 (the instance died handling it) without running
    the chunk; ``reset`` runs it and then drops the connection. ``PlatformProxy`` applies them.
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


class PlatformProxy:
    """An HTTP relay on 127.0.0.1 in front of a worker process, standing in for Cloud Run's front end:
    it records each request's Authorization header, answers 429 (``throttle``) or 500 (``crash``)
    without relaying for requests ``faults`` picks, and for ``reset`` relays the request and then
    resets the connection (TCP RST) instead of answering: the worker ran, the caller never hears back."""

    def __init__(self, upstream_port: int, faults: PlatformFaults) -> None:
        proxy = self

        class Relay(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while proxy.relay_one(self.connection, self.rfile):
                    pass

        self.upstream_port, self.faults = upstream_port, faults
        self.authorizations: list[str | None] = []
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Relay)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # a short poll: close() waits up to one poll interval for the loop to see the shutdown
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

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
        self.authorizations.append(next((value for name, value in headers.items()
                                         if name.lower() == "authorization"), None))
        for kind, status, reason in (("throttle", 429, "Too Many Requests"), ("crash", 500, "Internal Server Error")):
            if self.faults.take(kind, body):
                self._answer(connection, status, reason, [("Content-Type", "text/plain")], f"injected {kind}".encode())
                return True
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=120)
        upstream.request(method, path, body, headers)
        response = upstream.getresponse()
        payload = response.read()
        upstream.close()
        if self.faults.take("reset", body):
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()
            return False
        self._answer(connection, response.status, response.reason, response.getheaders(), payload)
        return True

    @staticmethod
    def _answer(connection, status: int, reason: str, headers, payload: bytes) -> None:
        head = [f"HTTP/1.1 {status} {reason}"]
        head += [f"{name}: {value}" for name, value in headers
                 if name.lower() not in ("content-length", "transfer-encoding", "connection")]
        head.append(f"Content-Length: {len(payload)}")
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)

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


def free_port() -> int:
    """A port nothing listens on now (another process may take it before the caller binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


DEVCLOUD_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3",
                  "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_LAMBDA", "FRAMEFARM_TABLE", "FRAMEFARM_BUCKET")


def read_devcloud_exports(stdout) -> tuple[dict[str, str], list[str]]:
    """Read ``framefarm devcloud``'s output up to its exports: (the exported names and values, the lines
    before them). Every line after the first export must be an export: they come last."""
    env: dict[str, str] = {}
    before: list[str] = []
    while not set(DEVCLOUD_NAMES) <= env.keys():
        line = stdout.readline()
        assert line, f"devcloud stopped before printing its exports; it printed: {before}"
        if line.startswith("export "):
            name, _, value = line[len("export "):].strip().partition("=")
            env[name] = value
        else:
            assert not env, f"{line!r} after the export lines"
            before.append(line)
    return env, before


def corrupt_s3_object(bucket: str, key: str) -> None:
    """Flip one byte of a stored object in moto's backend, keeping its size, ETag and stored checksum."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys[key]
    data = bytearray(stored.value)
    data[len(data) // 2] ^= 0xFF
    stored.value = bytes(data)


def corrupt_gcs_object(client, bucket: str, key: str) -> None:
    """Make a GCS emulator's object serve bytes that differ from its stored MD5 and CRC32C (and size)."""
    import base64
    import hashlib

    import google_crc32c

    blob = client.bucket(bucket).get_blob(key)
    other = b"bytes the object never held"
    blob.md5_hash = base64.b64encode(hashlib.md5(other).digest()).decode()
    blob.crc32c = base64.b64encode(google_crc32c.Checksum(other).digest()).decode()
    blob.patch()


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
