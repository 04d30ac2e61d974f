"""Commands that show jobs in a browser: monitor (a live web app), report (one HTML file)."""

from __future__ import annotations

import argparse
import errno
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framefarm.api import run_options
from framefarm.attempt_history import earlier_attempts
from framefarm.backends import Backend
from framefarm.cli.context import EXIT_OK, Context, add_store_flags
from framefarm.cli.control import control_message
from framefarm.cli.flags import add_resume_flags, output_path, positive_int
from framefarm.cli.run import resume_on_aws
from framefarm.config import ffmpeg_path
from framefarm.errors import JobSpecError
from framefarm.manager import JobManager

DEFAULT_PORT = 8765


def register(commands: Any) -> None:
    monitor = commands.add_parser("monitor", help="watch jobs in a browser: chunk timeline, cost, logs, live")
    monitor.add_argument("--port", type=positive_int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    monitor.add_argument("--host", default="127.0.0.1",
                         help="address to listen on (default 127.0.0.1; any other needs --token)")
    monitor.add_argument("--token", help="required of every request (Authorization: Bearer TOKEN, or a ?token= "
                                         "link that sets a session cookie)")
    add_store_flags(monitor)
    monitor.set_defaults(handler=cmd_monitor)

    report = commands.add_parser("report", help="one job's summary, timeline and cost as one self-contained HTML file")
    report.add_argument("job_id")
    report.add_argument("-o", "--output", type=Path, help="the HTML file (default: report-JOB_ID.html)")
    add_store_flags(report)
    report.set_defaults(handler=cmd_report)


def cmd_monitor(args: argparse.Namespace, context: Context) -> int:
    from framefarm.monitor.access import check_binding, is_loopback

    check_binding(args.host, args.token)
    import uvicorn

    from framefarm.monitor.app import Monitor, create_app

    backend = context.backend()
    manager = backend.manager(runs_chunks=not context.on_aws)  # a job resumed from the page runs here
    app = create_app(Monitor(manager, PageActions(context, backend, manager)), token=args.token,
                     loopback=is_loopback(args.host))
    listener = bind(args.host, args.port)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    link = f"http://{shown}:{args.port}/" + (f"?token={args.token}" if args.token else "")
    context.err.print(f"framefarm monitor on {link} over {manager.repository.location} (Ctrl-C stops it)",
                      soft_wrap=True, highlight=False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    server.run(sockets=[listener])
    pause_runs_here(manager, context)
    return EXIT_OK


def pause_runs_here(manager: JobManager, context: Context, *, patience: float = 300.0) -> None:
    """Pause the jobs the page resumed in this process, once the server stops: the chunks in flight
    finish and are kept (waiting ``patience`` s at most for each), and `framefarm resume` continues."""
    for job_id in sorted(manager.running_here()):
        context.err.print(f"pausing job {job_id}, which this monitor was running; "
                          f"continue with `{context.hint(f'resume {job_id}')}`", soft_wrap=True, highlight=False)
        manager.pause_job(job_id)
        try:
            manager.wait(job_id, timeout=patience)
        except TimeoutError:
            context.err.print(f"job {job_id} still has chunks in flight after {patience:g} s; leaving it",
                              soft_wrap=True, highlight=False)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or JobSpecError (one line) when the port is taken or the address is not ours."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        hint = "give another --port" if exc.errno == errno.EADDRINUSE else "give an address of this machine"
        raise JobSpecError(f"--host {host} --port {port}: cannot listen there ({exc.strerror}); {hint}") from None
    listener.listen(64)
    return listener


@dataclass
class PageActions:
    """The job page's buttons, as the CLI's commands do them: cancel and pause ask the job's runner
    (``framefarm cancel/pause``); resume and retry run a local job in this process and hand an AWS job
    to its orchestrator function (``framefarm resume/retry``)."""

    context: Context
    backend: Backend
    manager: JobManager

    def cancel(self, job_id: str) -> str:
        return control_message(self.manager.cancel_job(job_id), "cancel")

    def pause(self, job_id: str) -> str:
        return control_message(self.manager.pause_job(job_id), "pause")

    def resume(self, job_id: str) -> str:
        status = self.manager.summary(job_id)
        if self.context.on_aws:
            resume_on_aws(resume_args(job_id), self.context, self.manager, status)
            return f"job {job_id}: handed to its orchestrator function to resume"
        ffmpeg_path()  # before anything runs
        output = output_path(None, status.output, status.id)
        self.manager.resume_job(job_id, run_options(self.backend, status.spec, output=output))
        return f"job {job_id}: resumed here ({status.completed_chunks}/{status.total_chunks} chunks done)"

    def retry(self, job_id: str, chunk_id: int) -> str:
        if not self.context.on_aws:
            ffmpeg_path()  # before anything is reopened
        self.manager.reopen_chunks(job_id, [chunk_id])
        self.resume(job_id)
        return f"job {job_id}: rendering chunk {chunk_id} again"


def resume_args(job_id: str) -> argparse.Namespace:
    """``framefarm resume JOB_ID``'s arguments with every flag at its default."""
    parser = argparse.ArgumentParser(add_help=False)
    add_resume_flags(parser)
    return parser.parse_args([job_id])


def cmd_report(args: argparse.Namespace, context: Context) -> int:
    from framefarm.monitor.report import report_html

    storage = context.storage()
    job = context.repository(storage).require(args.job_id)
    path: Path = args.output or Path(f"report-{job.id}.html")
    html = report_html(job, earlier_attempts(storage, job.id), time.time())
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise JobSpecError(f"-o {path}: cannot write the report ({exc.strerror})") from None
    context.err.print(f"report of job {job.id} ({job.state.value}) → {path.resolve()}", soft_wrap=True,
                      highlight=False)
    return EXIT_OK
