"""Test doubles that are real implementations (a scripted in-process worker), and spec builders."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from framefarm import CallableWorkerAdapter, JobSpec, WorkerJob, WorkerResult, plan_job


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

    def stitch(self, inputs, output, audio=None):
        self.calls.append((list(inputs), output, audio))
        output.write_text("stitched")
        return output


class WorkerServer:
    """The Cloud Run worker app under waitress on 127.0.0.1, recording each request's Authorization."""

    def __init__(self, timeout: float | None = None) -> None:
        from framefarm.worker.cloud_run_server import create_app, serve

        app = create_app(timeout=timeout)
        self.authorizations: list[str | None] = []

        def recording(environ, start_response):
            self.authorizations.append(environ.get("HTTP_AUTHORIZATION"))
            return app(environ, start_response)

        self.server = serve(recording, host="127.0.0.1", port=0)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.close()
