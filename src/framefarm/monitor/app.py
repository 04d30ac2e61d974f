"""The monitor's routes (Starlette). Reads go through the job manager and storage; actions through an
``Actions`` the CLI gives (the same library calls as ``framefarm cancel/pause/resume/retry``).

    GET  /                                    jobs page (reloads itself)
    GET  /jobs/{id}                           job page: summary, timeline, cost, actions; live
    GET  /jobs/{id}/charts                    the timeline and cost charts (what a live update redraws)
    GET  /jobs/{id}/events                    server-sent events: the summary whenever it changes
    GET  /jobs/{id}/chunks/{n}/logs           every attempt's logs of one chunk
    POST /jobs/{id}/{cancel|pause|resume|retry}
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol
from urllib.parse import parse_qs, quote

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from framefarm.attempt_history import earlier_attempts
from framefarm.cli.reports import attempt_logs
from framefarm.errors import FramefarmError, JobNotFoundError
from framefarm.manager import JobManager
from framefarm.monitor import pages
from framefarm.monitor.access import Gate
from framefarm.monitor.live import follow
from framefarm.monitor.timeline import Timeline, build_timeline
from framefarm.slots import as_queued, waiting_jobs
from framefarm.status import ChunkAttempt, JobRecord
from framefarm.storage.keys import attempt_key

#: Jobs the jobs page lists, newest first.
JOBS_SHOWN = 100


class Actions(Protocol):
    """What the page's buttons do; each returns one line to show, or raises FramefarmError (shown too)."""

    def cancel(self, job_id: str) -> str: ...

    def pause(self, job_id: str) -> str: ...

    def resume(self, job_id: str) -> str: ...

    def retry(self, job_id: str, chunk_id: int) -> str: ...


@dataclass
class Monitor:
    """What the routes read and act through. ``clock`` is wall time (attempts are stamped with it)."""

    manager: JobManager
    actions: Actions
    clock: Callable[[], float] = time.time
    interval: float = 1.0
    _known: dict[str, ChunkAttempt] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def job(self, job_id: str) -> JobRecord:
        job = self.manager.get_job(job_id)
        if job is None:
            raise self.manager.repository.not_found(job_id)
        return job

    def timeline(self, job: JobRecord) -> Timeline:
        """The job's timeline now; earlier attempts read from storage once each (they never change)."""
        storage = self.manager.storage
        with self._lock:
            known = dict(self._known)
        earlier = earlier_attempts(storage, job.id, known=known) if storage is not None else {}
        with self._lock:
            for chunk_id, attempts in earlier.items():
                for number, figures in attempts.items():
                    self._known[attempt_key(job.id, chunk_id, number)] = figures
        return build_timeline(job, earlier, self.clock())


def logs_href(job_id: str, chunk_id: int) -> str:
    return f"{pages.job_href(job_id)}/chunks/{chunk_id}/logs"


def create_app(monitor: Monitor, *, token: str | None = None, loopback: bool = True) -> Gate:
    """The ASGI app: routes behind the access gate (``access.Gate``)."""

    def jobs(request: Request) -> Response:
        queue = waiting_jobs(monitor.manager.repository, time.time())  # the shared budget's queue (slots)
        listed = [as_queued(job, queue) for job in monitor.manager.list_jobs(JOBS_SHOWN)]
        return HTMLResponse(pages.jobs_page(listed, monitor.clock(), queue=queue))

    def job_page(request: Request) -> Response:
        job = monitor.job(request.path_params["job_id"])
        said = request.query_params.get("said")
        return HTMLResponse(pages.job_page(job, monitor.timeline(job), monitor.clock(), said=said,
                                           link=partial(logs_href, job.id)))

    def charts(request: Request) -> Response:
        job = monitor.job(request.path_params["job_id"])
        return HTMLResponse(pages.charts(job, monitor.timeline(job), link=partial(logs_href, job.id)))

    def events(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        monitor.manager.summary(job_id)  # a 404 now rather than a stream that fails
        stream = follow(partial(monitor.manager.summary, job_id), monitor.clock, interval=monitor.interval)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    def logs(request: Request) -> Response:
        job = monitor.job(request.path_params["job_id"])
        chunk_id = request.path_params["chunk_id"]
        try:
            record = job.chunk(chunk_id)
        except KeyError:
            return PlainTextResponse(f"job {job.id} has no chunk {chunk_id} (0-{job.total_chunks - 1})\n",
                                     status_code=404)
        storage = monitor.manager.storage
        if storage is not None:
            attempts = attempt_logs(storage, monitor.manager.repository, job.id, record)
        else:  # a store named without its bucket: the record's tails of the latest attempt are all there is
            attempts = [(record.attempts, {"stdout": record.stdout_tail, "stderr": record.stderr_tail})
                        ] if record.attempts else []
        return HTMLResponse(pages.logs_page(job, record, attempts))

    async def act(request: Request) -> Response:
        job_id, action = request.path_params["job_id"], request.path_params["action"]
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"))  # a plain urlencoded form
        try:
            if action == "retry":
                said = await _in_thread(monitor.actions.retry, job_id, chunk_number(form.get("chunk", [""])[0]))
            elif action in ("cancel", "pause", "resume"):
                said = await _in_thread(getattr(monitor.actions, action), job_id)
            else:
                return PlainTextResponse(f"no action {action!r}: cancel, pause, resume or retry\n", status_code=404)
        except JobNotFoundError:
            raise
        except FramefarmError as exc:
            said = f"{action} refused: {exc}"
        return RedirectResponse(f"{pages.job_href(job_id)}?said={quote(said)}", status_code=303)

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"{exc}\n", status_code=404)

    app = Starlette(routes=[
        Route("/", jobs),
        Route("/jobs/{job_id}", job_page),
        Route("/jobs/{job_id}/charts", charts),
        Route("/jobs/{job_id}/events", events),
        Route("/jobs/{job_id}/chunks/{chunk_id:int}/logs", logs),
        Route("/jobs/{job_id}/{action}", act, methods=["POST"]),
    ], exception_handlers={JobNotFoundError: not_found})
    return Gate(app, token=token, loopback=loopback)


def chunk_number(text: str) -> int:
    """The retry form's chunk number; FramefarmError (one line) for anything else."""
    try:
        return int(text)
    except ValueError:
        raise FramefarmError(f"give a chunk number to retry (got {text!r})") from None


async def _in_thread(call: Callable[..., str], *args: object) -> str:
    return await anyio.to_thread.run_sync(partial(call, *args))
