"""Commands that work on any backend: render, resume, retry, jobs, status, logs, cost, cancel, pause, stitch."""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from framefarm.api import RenderFailed, RenderHandle, run_options, submit
from framefarm.cancel import CancelToken
from framefarm.cli.context import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_PAUSED, Context, add_store_flags
from framefarm.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LAMBDA_CONCURRENCY,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_DELAY,
    ffmpeg_path,
)
from framefarm.console import RenderProgress, chunks_table, cost_table, job_summary, jobs_table
from framefarm.errors import JobAbortedError, JobSpecError, JobStateError, id_list
from framefarm.manager import RUNNABLE, JobManager
from framefarm.options import RetryPolicy
from framefarm.spec import JobSpec, load_job_file
from framefarm.status import JobRecord, JobState
from framefarm.stitch.merge import S3MergeAdapter
from framefarm.stitching import stitch_job
from framefarm.storage.base import DEFAULT_SHARE_SECONDS, MAX_SHARE_SECONDS
from framefarm.storage.keys import chunk_key, is_output_key, job_prefix, output_key
from framefarm.storage.logs import full_log

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def register(commands: Any) -> None:
    render = commands.add_parser("render", help="render a job file, with a progress bar")
    render.add_argument("jobfile", type=Path)
    render.add_argument("-o", "--output", type=Path, help="final video (default: the job file's `output`)")
    render.add_argument("--job-id", help="id for the new job (default: generated)")
    render.add_argument("--backend", choices=("local", "lambda", "cloudrun"), default="local",
                        help="where chunks run: local subprocesses (default), a render-chunk Lambda function, "
                             "or a Cloud Run worker service")
    render.add_argument("--function", help="with --backend lambda: the render-chunk function's name")
    render.add_argument("--service", help="with --backend cloudrun: the service URL or "
                                          "projects/P/locations/L/services/S")
    render.add_argument("--assets", type=Path,
                        help="a directory the commands read (inputs, fonts...): shipped to every chunk's work dir")
    add_run_flags(render)
    add_store_flags(render)
    render.set_defaults(handler=cmd_render)

    listing = commands.add_parser("jobs", help="list jobs, newest first")
    listing.add_argument("--limit", type=int, default=50)
    add_store_flags(listing)
    listing.set_defaults(handler=cmd_jobs)

    for name, handler, text in (("status", cmd_status, "one job and a table of its chunks"),
                                ("cost", cmd_cost, "a job's billed time and cost, per chunk"),
                                ("cancel", cmd_cancel, "stop a job and kill its work in flight"),
                                ("pause", cmd_pause, "stop a job after the chunks in flight finish")):
        command = commands.add_parser(name, help=text)
        command.add_argument("job_id")
        add_store_flags(command)
        command.set_defaults(handler=handler)

    logs = commands.add_parser("logs", help="a job's chunk output (stdout and stderr)")
    logs.add_argument("job_id")
    logs.add_argument("--chunk", type=int, help="only this chunk")
    add_store_flags(logs)
    logs.set_defaults(handler=cmd_logs)

    resume = commands.add_parser("resume", help="continue a paused, failed, cancelled or abandoned job "
                                                "(an AWS job: on its orchestrator function)")
    add_resume_flags(resume)
    resume.set_defaults(handler=cmd_resume)

    retry = commands.add_parser("retry", help="render chosen chunks of a stopped job again, finished or not "
                                              "(an AWS job: on its orchestrator function)")
    retry.add_argument("--chunk", type=int, action="append", required=True, metavar="N",
                       help="a chunk to render again (repeat for more)")
    add_resume_flags(retry)
    retry.set_defaults(handler=cmd_retry)

    share = commands.add_parser("share", help="a short-lived download link for a job's video (or one chunk)")
    share.add_argument("job_id")
    share.add_argument("--chunk", type=int, help="link to this chunk's output instead")
    share.add_argument("--expires", type=int, default=DEFAULT_SHARE_SECONDS,
                       help=f"seconds the link works (default {DEFAULT_SHARE_SECONDS}, at most {MAX_SHARE_SECONDS})")
    add_store_flags(share)
    share.set_defaults(handler=cmd_share)

    stitch = commands.add_parser("stitch", help="join a job's chunks into the final video (from S3 with --bucket)")
    stitch.add_argument("job_id")
    stitch.add_argument("-o", "--output", type=Path)
    stitch.add_argument("--upload", action="store_true", help="with --bucket: also upload the video to the bucket")
    add_store_flags(stitch)
    stitch.set_defaults(handler=cmd_stitch)


def add_resume_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id")
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--function", help="with --table: the orchestrator function's name (or --stack)")
    parser.add_argument("--service", help="with --gcs-bucket: the Cloud Run worker service the job renders on")
    add_run_flags(parser)
    add_store_flags(parser)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=positive_int,
                        help=f"chunks in flight (default: the backend's; {DEFAULT_CONCURRENCY} locally, "
                             f"{DEFAULT_LAMBDA_CONCURRENCY} on Lambda)")
    parser.add_argument("--retries", type=non_negative_int, default=DEFAULT_RETRIES,
                        help=f"retries per chunk (default {DEFAULT_RETRIES})")
    parser.add_argument("--retry-delay", type=float, default=DEFAULT_RETRY_DELAY,
                        help=f"first retry delay in seconds (default {DEFAULT_RETRY_DELAY:g})")
    parser.add_argument("--timeout", type=float, help="seconds per chunk attempt")
    parser.add_argument("--no-stitch", action="store_true",
                        help="render the chunks only; join them later with `framefarm stitch`")


# -- commands ---------------------------------------------------------------------------------------

def cmd_render(args: argparse.Namespace, context: Context) -> int:
    spec = load_job_file(args.jobfile, job_id=args.job_id)
    backend = context.backend(args.backend, function=args.function, service=args.service, run_here=True)
    output = output_path(args.output, spec.output, spec.id)
    progress = RenderProgress(context.err, spec.id, len(spec.chunks))
    token = CancelToken()
    with cancel_on_interrupt(lambda: token.cancel("cancelled")):
        handle = submit(spec, backend=backend, output=output, concurrency=args.concurrency, retry=retry_policy(args),
                        chunk_timeout=args.timeout, hooks=progress, assets=args.assets, stitch=not args.no_stitch,
                        cancel=token)
        context.err.print(f"job [bold]{spec.id}[/]: {len(spec.chunks)} chunks, "
                          f"{spec.metadata.total_frames} frames → {output}")
        return follow(handle, progress, context, stitch_note=args.no_stitch)


def cmd_resume(args: argparse.Namespace, context: Context) -> int:
    backend = context.backend(service=args.service)
    manager = backend.manager(concurrency=args.concurrency, runs_chunks=not context.on_aws)
    status = manager.summary(args.job_id)
    if context.on_aws:
        return resume_on_aws(args, context, manager, status)
    ffmpeg_path()
    output = None if args.no_stitch else output_path(args.output, status.output, status.id)
    progress = RenderProgress(context.err, status.id, status.total_chunks, status.completed_chunks)
    token = CancelToken()
    options = run_options(backend, status.spec, output=output, concurrency=args.concurrency,
                          retry=retry_policy(args), chunk_timeout=args.timeout, hooks=progress, cancel=token)
    with cancel_on_interrupt(lambda: token.cancel("cancelled")):
        manager.resume_job(status.id, options)
        return follow(RenderHandle(status.id, backend, manager, output=output), progress, context,
                      stitch_note=args.no_stitch)


def cmd_retry(args: argparse.Namespace, context: Context) -> int:
    manager = context.manager()
    before = manager.summary(args.job_id)
    if not context.on_aws:
        ffmpeg_path()  # before anything is reopened
    manager.reopen_chunks(before.id, args.chunk)
    context.err.print(f"job {before.id}: rendering chunks {id_list(sorted(set(args.chunk)))} again")
    code = cmd_resume(args, context)
    if before.state is JobState.COMPLETED and manager.summary(before.id).state is not JobState.COMPLETED:
        video = f"its video {before.output}" if before.output else "its video"
        context.err.print(f"{video} predates this retry: once the chunks are done, "
                          f"stitch again with `framefarm stitch {before.id}`", soft_wrap=True)
    return code


def resume_on_aws(args: argparse.Namespace, context: Context, manager: JobManager, status: JobRecord) -> int:
    """Hand the job back to its orchestrator function, which takes over a dead run or restarts a stopped one."""
    from framefarm.adapters.aws_lambda import invoke_async
    from framefarm.backends import Lambda

    function = context.function(args.function, "OrchestratorFunctionName")
    if function is None:
        raise JobSpecError("resume: give --function ORCHESTRATOR_FN or --stack NAME for a job on AWS")
    if status.state not in RUNNABLE and not (status.state is JobState.RUNNING and manager.is_stale(status)):
        raise JobStateError(f"job {status.id!r} is {status.state.value}; nothing to resume"
                            + (" (its orchestrator is alive)" if status.state is JobState.RUNNING else ""))
    options = {"retries": args.retries, "retry_delay": args.retry_delay}
    options.update({name: value for name in ("concurrency", "timeout") if (value := getattr(args, name)) is not None})
    backend = context.backend()
    assert isinstance(backend, Lambda)  # a job on AWS
    invoke_async(backend.lambda_client(), function, {"job_id": status.id, "options": options, "resume": True})
    context.out.print(f"job {status.id}: resumed on {function} ({status.completed_chunks}/{status.total_chunks} "
                      f"chunks done); follow it with `framefarm status {status.id}`")
    return EXIT_OK


def cmd_share(args: argparse.Namespace, context: Context) -> int:
    storage = context.storage()
    if args.chunk is not None:
        spec = context.repository(storage).require(args.job_id).spec
        try:
            key = chunk_key(spec.id, args.chunk, spec.chunk(args.chunk).output_file)
        except KeyError:
            raise JobSpecError(f"--chunk: job {spec.id} has no chunk {args.chunk}") from None
    else:
        prefix = job_prefix(args.job_id)
        videos = [obj.key for obj in storage.list(prefix) if is_output_key(args.job_id, obj.key)]
        if not videos:
            raise JobStateError(f"job {args.job_id!r} has no stitched video in {storage.url(prefix)}; "
                                f"run `framefarm stitch {args.job_id} --upload` first")
        key = videos[0]
    context.out.print(storage.share_url(key, args.expires), soft_wrap=True)
    context.err.print(f"link to {storage.url(key)}, valid for {args.expires} s")
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace, context: Context) -> int:
    listed = context.repository().list(limit=args.limit)
    if not listed:
        context.out.print("no jobs yet")
    else:
        context.out.print(jobs_table(listed))
    return EXIT_OK


def cmd_status(args: argparse.Namespace, context: Context) -> int:
    job = context.repository().require(args.job_id)
    context.out.print(job_summary(job))
    context.out.print(chunks_table(job))
    return EXIT_OK


def cmd_cost(args: argparse.Namespace, context: Context) -> int:
    job = context.repository().require(args.job_id)
    context.out.print(job_summary(job))
    context.out.print(cost_table(job))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace, context: Context) -> int:
    storage = context.storage()
    repository = context.repository(storage)
    job = repository.require(args.job_id)
    records = job.chunks
    if args.chunk is not None:
        records = [record for record in records if record.chunk_id == args.chunk]
        if not records:
            raise JobSpecError(f"--chunk: job {job.id} has no chunk {args.chunk} (0-{job.total_chunks - 1})")
    for record in records:
        context.out.rule(f"chunk {record.chunk_id} · {record.state.value} · attempt {record.attempts}")
        for stream, tail_text in (("stdout", record.stdout_tail), ("stderr", record.stderr_tail)):
            text = full_log(storage, job.id, record.chunk_id, record.attempts, stream, tail_text,
                            kept_chars=repository.tail_chars)
            if text:
                context.out.print(f"[dim]{stream}:[/]")
                context.out.out(text.rstrip("\n"), highlight=False)
        if record.error:
            context.out.print(f"[red]error:[/] {record.error}", soft_wrap=True)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, context: Context) -> int:
    return report_control(context, context.manager().cancel_job(args.job_id), "cancel")


def cmd_pause(args: argparse.Namespace, context: Context) -> int:
    return report_control(context, context.manager().pause_job(args.job_id), "pause")


def cmd_stitch(args: argparse.Namespace, context: Context) -> int:
    ffmpeg_path()
    backend = context.backend()
    manager = backend.manager(runs_chunks=not backend.chunks_in_storage)  # a local job may render its audio
    job = manager.repository.get(args.job_id, chunks=False)
    if job is None and context.remote_storage:  # chunks in a bucket, no record in this job store
        return stitch_spec_from_storage(args, context)
    if job is None:
        raise manager.repository.not_found(args.job_id)
    output = output_path(args.output, job.output, job.id)
    started = time.monotonic()
    video, marked = stitch_job(manager, job.id, output, chunks_in_storage=backend.chunks_in_storage,
                               upload=args.upload)
    source = f" from {manager.storage.url(job_prefix(job.id))}" if backend.chunks_in_storage and manager.storage else ""
    report_stitched(context, job.id, job.total_chunks, source, video, time.monotonic() - started, marked)
    return EXIT_OK


def stitch_spec_from_storage(args: argparse.Namespace, context: Context) -> int:
    """Stitch from a bucket alone: the spec and the chunks come from storage; no job record is marked."""
    from framefarm.storage.keys import spec_key

    storage = context.storage()
    try:
        spec = JobSpec.model_validate_json(storage.get_bytes(spec_key(args.job_id)))
    except FileNotFoundError:
        raise JobStateError(f"no job {args.job_id!r} in {storage.url(job_prefix(args.job_id))}") from None
    output = output_path(args.output, None, spec.id)
    started = time.monotonic()
    video = S3MergeAdapter(storage).merge(spec, output, upload_key=output_key(spec.id, output.name)
                                          if args.upload else None)
    report_stitched(context, spec.id, len(spec.chunks), f" from {storage.url(job_prefix(spec.id))}", video,
                    time.monotonic() - started, marked=True)
    return EXIT_OK


def report_stitched(context: Context, job_id: str, chunks: int, source: str, video: Path, seconds: float,
                    marked: bool) -> None:
    if not marked:
        context.err.print(f"[yellow]note:[/] job {job_id} was not marked completed: a runner took it meanwhile "
                          "(or the job store does not know it)")
    context.err.print(f"stitched {chunks} chunks{source} in {seconds:.1f} s → [bold]{video}[/]")


# -- helpers ----------------------------------------------------------------------------------------

def output_path(explicit: Path | None, saved: str | None, job_id: str) -> Path:
    """Where a job's video goes: ``-o``, else the output the job was given, else out/<job>.mp4."""
    return (explicit or Path(saved or Path("out") / f"{job_id}.mp4")).resolve()


def follow(handle: RenderHandle, progress: RenderProgress, context: Context, *, stitch_note: bool) -> int:
    """Show a run's progress until it settles (its video stitched, if asked); returns the exit code."""
    started = time.monotonic()
    try:
        with progress:
            result = handle.wait()
    except RenderFailed as exc:
        context.err.print(f"[red]error:[/] {exc}", soft_wrap=True)
        return EXIT_FAILED
    except JobAbortedError as exc:
        if exc.reason == JobState.PAUSED.value:
            context.err.print(f"[yellow]paused[/] job {handle.job_id}; "
                              f"continue with `framefarm resume {handle.job_id}`")
            return EXIT_PAUSED
        error = handle.manager.summary(handle.job_id).error
        context.err.print(f"[red]error:[/] job {handle.job_id} cancelled: {error}", soft_wrap=True)
        return EXIT_CANCELLED
    elapsed = time.monotonic() - started
    if result.state is JobState.RENDERED:
        context.err.print(f"[green]rendered[/] {result.chunks} chunks in {elapsed:.1f} s"
                          + (f"; join them with `framefarm stitch {handle.job_id}`" if stitch_note else ""))
    else:
        context.err.print(f"[green]rendered[/] {result.frames} frames in {elapsed:.1f} s → [bold]{result.output}[/]")
    return EXIT_OK


def retry_policy(args: argparse.Namespace) -> RetryPolicy:
    return RetryPolicy(retries=args.retries, delay=args.retry_delay)


@contextmanager
def cancel_on_interrupt(cancel: Callable[[], object]) -> Iterator[None]:
    """Ctrl-C, ``kill`` (SIGTERM) and a closed terminal (SIGHUP) cancel the job cleanly, killing its
    subprocesses; the same signal again acts as it would have without this (Ctrl-C interrupts). A
    signal this process was started ignoring (``nohup`` ignores SIGHUP) stays ignored."""
    previous = {signum: before for signum in STOP_SIGNALS
                if (before := signal.getsignal(signum)) not in (signal.SIG_IGN, None)}
    # The handler runs on the main thread wherever it is, maybe inside the token's own lock, so it
    # only posts (SimpleQueue.put is safe in a signal handler) and another thread cancels.
    requests: queue.SimpleQueue[bool] = queue.SimpleQueue()

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signum, previous[signum])
        if signum == getattr(signal, "SIGHUP", None):
            _detach_from_terminal()
        requests.put(True)

    def cancel_on_request() -> None:
        if requests.get():
            cancel()

    canceller = threading.Thread(target=cancel_on_request, name="framefarm-signals", daemon=True)
    canceller.start()
    for signum in previous:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
        requests.put(False)  # ends the canceller if no signal came


def _detach_from_terminal() -> None:
    """Point stdout and stderr at /dev/null where they are a terminal: after a hang-up, writing to it
    fails (EIO), and a progress line must not turn a clean cancel into a crash. Pipes and files keep
    what they get (``kill -HUP`` of a render whose output is logged)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):  # a closed descriptor: nothing to detach
                if stat.S_ISCHR(os.fstat(fd).st_mode):
                    os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def report_control(context: Context, status: JobRecord, action: str) -> int:
    if status.pending_action:
        context.err.print(f"asked the process running {status.id} to {action} it")
    else:
        context.err.print(f"job {status.id} is {status.state.value}")
    return EXIT_OK


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return value
