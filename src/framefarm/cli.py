"""The ``framefarm`` command.

Exit codes: 0 success; 1 the job failed; 2 bad input or usage (one line, no traceback); 3 the job
was paused; 130 cancelled (Ctrl-C or ``framefarm cancel``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console

from framefarm.adapters.local import LocalWorkerAdapter
from framefarm.cancel import CancelToken
from framefarm.config import DATABASE_FILENAME, ffmpeg_path, framefarm_home
from framefarm.console import RenderProgress, chunks_table, job_summary, jobs_table
from framefarm.errors import FramefarmError, JobNotFoundError, JobSpecError, JobStateError, ToolNotFoundError
from framefarm.executor import ExecutionOptions, JobExecutor
from framefarm.manager import JobManager
from framefarm.repositories.sqlite import SqliteJobRepository
from framefarm.spec import load_job_file
from framefarm.status import ChunkState, JobState, JobStatus
from framefarm.stitch.ffmpeg import FfmpegStitcher
from framefarm.storage.keys import log_key
from framefarm.storage.local import LocalStorage

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PAUSED, EXIT_CANCELLED = 0, 1, 2, 3, 130
INPUT_ERRORS = (JobSpecError, JobStateError, JobNotFoundError, ToolNotFoundError)
FINAL_EXIT = {JobState.COMPLETED: EXIT_OK, JobState.STITCHING: EXIT_OK, JobState.FAILED: EXIT_FAILED,
              JobState.PAUSED: EXIT_PAUSED, JobState.CANCELLED: EXIT_CANCELLED}


@dataclass
class Context:
    """What every command needs: where the store is, and the terminal."""

    home: Path
    out: Console
    err: Console

    def manager(self) -> JobManager:
        repository = SqliteJobRepository(self.home / DATABASE_FILENAME)
        return JobManager(repository, JobExecutor(LocalWorkerAdapter()), LocalStorage(self.home))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    context = Context(home=framefarm_home(args.home).resolve(), out=Console(),
                      err=Console(stderr=True, highlight=False))
    try:
        return int(args.handler(args, context))
    except FramefarmError as exc:
        context.err.print(f"[red]error:[/] {exc}", markup=True, soft_wrap=True)
        return EXIT_USAGE if isinstance(exc, INPUT_ERRORS) else EXIT_FAILED
    except KeyboardInterrupt:
        context.err.print("interrupted")
        return EXIT_CANCELLED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framefarm", description="Distributed video rendering.")
    parser.add_argument("--home", help="job store and job directories (default: $FRAMEFARM_HOME or ./.framefarm)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render = commands.add_parser("render", help="render a job file here, with a progress bar")
    render.add_argument("jobfile", type=Path)
    render.add_argument("-o", "--output", type=Path, help="final video (default: the job file's `output`)")
    render.add_argument("--job-id", help="id for the new job (default: generated)")
    _add_run_options(render)
    render.set_defaults(handler=cmd_render)

    jobs = commands.add_parser("jobs", help="list jobs, newest first")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.set_defaults(handler=cmd_jobs)

    status = commands.add_parser("status", help="one job and a table of its chunks")
    status.add_argument("job_id")
    status.set_defaults(handler=cmd_status)

    logs = commands.add_parser("logs", help="a job's chunk output (stdout and stderr)")
    logs.add_argument("job_id")
    logs.add_argument("--chunk", type=int, help="only this chunk")
    logs.set_defaults(handler=cmd_logs)

    for name, handler, text in (("cancel", cmd_cancel, "stop a job and kill its work in flight"),
                                ("pause", cmd_pause, "stop a job after the chunks in flight finish")):
        command = commands.add_parser(name, help=text)
        command.add_argument("job_id")
        command.set_defaults(handler=handler)

    resume = commands.add_parser("resume", help="continue a paused, failed or cancelled job here")
    resume.add_argument("job_id")
    resume.add_argument("-o", "--output", type=Path)
    _add_run_options(resume)
    resume.set_defaults(handler=cmd_resume)

    stitch = commands.add_parser("stitch", help="join a job's completed chunks into the final video")
    stitch.add_argument("job_id")
    stitch.add_argument("-o", "--output", type=Path)
    stitch.set_defaults(handler=cmd_stitch)
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=_positive_int, default=2, help="chunks in flight (default 2)")
    parser.add_argument("--retries", type=_non_negative_int, default=2, help="retries per chunk (default 2)")
    parser.add_argument("--retry-delay", type=float, default=1.0, help="first retry delay in seconds")
    parser.add_argument("--timeout", type=float, help="seconds per chunk attempt")
    parser.add_argument("--no-stitch", action="store_true",
                        help="render the chunks only; join them later with `framefarm stitch`")


# -- commands ---------------------------------------------------------------------------------------

def cmd_render(args: argparse.Namespace, context: Context) -> int:
    spec = load_job_file(args.jobfile, job_id=args.job_id)
    _check_tools()
    output = args.output or (Path(spec.output) if spec.output else Path("out") / f"{spec.id}.mp4")
    manager = context.manager()
    manager.create_job(spec, output=str(output.resolve()))
    context.err.print(f"job [bold]{spec.id}[/]: {len(spec.chunks)} chunks, "
                      f"{spec.metadata.total_frames} frames → {output}")
    return _run_with_progress(manager, spec.id, args, context, output, start=manager.run_job)


def cmd_resume(args: argparse.Namespace, context: Context) -> int:
    manager = context.manager()
    status = manager.repository.require(args.job_id)
    _check_tools()
    output = args.output or Path(status.output or Path("out") / f"{status.id}.mp4")
    return _run_with_progress(manager, status.id, args, context, output,
                              start=lambda job_id, options: manager.resume_job(job_id, options, background=False))


def cmd_jobs(args: argparse.Namespace, context: Context) -> int:
    jobs = context.manager().list_jobs(limit=args.limit)
    if not jobs:
        context.out.print(f"no jobs in {context.home / DATABASE_FILENAME}")
    else:
        context.out.print(jobs_table(jobs))
    return EXIT_OK


def cmd_status(args: argparse.Namespace, context: Context) -> int:
    job = context.manager().repository.require(args.job_id)
    context.out.print(job_summary(job))
    context.out.print(chunks_table(job))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace, context: Context) -> int:
    manager = context.manager()
    job = manager.repository.require(args.job_id)
    records = job.chunks
    if args.chunk is not None:
        records = [record for record in records if record.chunk_id == args.chunk]
        if not records:
            raise JobSpecError(f"--chunk: job {job.id} has no chunk {args.chunk} (0-{job.total_chunks - 1})")
    storage = manager.storage
    for record in records:
        context.out.rule(f"chunk {record.chunk_id} · {record.state.value} · attempt {record.attempts}")
        for stream, tail_text in (("stdout", record.stdout_tail), ("stderr", record.stderr_tail)):
            key = log_key(job.id, record.chunk_id, record.attempts, stream)
            text = storage.get_text(key) if storage is not None and storage.exists(key) else tail_text
            if text:
                context.out.print(f"[dim]{stream}:[/]")
                context.out.out(text.rstrip("\n"), highlight=False)
        if record.error:
            context.out.print(f"[red]error:[/] {record.error}", soft_wrap=True)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, context: Context) -> int:
    return _report_control(context, context.manager().cancel_job(args.job_id), "cancel")


def cmd_pause(args: argparse.Namespace, context: Context) -> int:
    return _report_control(context, context.manager().pause_job(args.job_id), "pause")


def cmd_stitch(args: argparse.Namespace, context: Context) -> int:
    manager = context.manager()
    job = manager.repository.require(args.job_id)
    missing = [record.chunk_id for record in job.chunks if record.state is not ChunkState.COMPLETED]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" …" if len(missing) > 20 else "")
        raise JobStateError(f"job {job.id}: chunks {shown} are not completed; run `framefarm resume {job.id}`")
    _check_tools()
    output = (args.output or Path(job.output or Path("out") / f"{job.id}.mp4")).resolve()
    options = ExecutionOptions(job_dir=manager.job_dir(job.id), stitcher=FfmpegStitcher(), output_file=output,
                               completed_chunk_ids=[chunk.id for chunk in job.spec.chunks])
    report = manager.executor.execute(job.spec, options)
    manager.repository.set_state(job.id, JobState.COMPLETED, now=time.time(), output=str(report.output))
    context.err.print(f"stitched {len(job.spec.chunks)} chunks → [bold]{report.output}[/]")
    return EXIT_OK


# -- helpers ----------------------------------------------------------------------------------------

def _run_with_progress(manager: JobManager, job_id: str, args: argparse.Namespace, context: Context,
                       output: Path, *, start: Callable[[str, ExecutionOptions], JobStatus]) -> int:
    status = manager.repository.require(job_id)
    token = CancelToken()
    started = time.monotonic()
    with RenderProgress(context.err, job_id, status.total_chunks, status.completed_chunks) as progress, \
            _cancel_on_interrupt(token):
        options = ExecutionOptions(
            concurrency=args.concurrency, retries=args.retries, retry_delay=args.retry_delay,
            timeout=args.timeout, cancel=token, stitcher=FfmpegStitcher(), output_file=output.resolve(),
            skip_merge=args.no_stitch,
            on_progress=progress.on_progress, on_chunk_attempt=progress.on_attempt,
            on_merge_start=progress.on_merge_start,
        )
        final = start(job_id, options)
    elapsed = time.monotonic() - started
    if final.state is JobState.STITCHING and args.no_stitch:
        context.err.print(f"[green]rendered[/] {final.total_chunks} chunks in {elapsed:.1f} s; "
                          f"join them with `framefarm stitch {job_id}`")
    elif final.state is JobState.COMPLETED:
        context.err.print(f"[green]rendered[/] {final.spec.metadata.total_frames} frames in {elapsed:.1f} s "
                          f"→ [bold]{final.output}[/]")
    elif final.state is JobState.PAUSED:
        context.err.print(f"[yellow]paused[/] job {job_id}; continue with `framefarm resume {job_id}`")
    else:
        context.err.print(f"[red]error:[/] job {job_id} {final.state.value}: {final.error}", soft_wrap=True)
    return FINAL_EXIT.get(final.state, EXIT_FAILED)


@contextmanager
def _cancel_on_interrupt(token: CancelToken) -> Iterator[None]:
    """First Ctrl-C cancels the job cleanly (killing its subprocesses); a second one interrupts."""
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, previous)
        token.cancel("cancelled")

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _report_control(context: Context, status: JobStatus, action: str) -> int:
    if status.requested:
        context.err.print(f"asked the process running {status.id} to {action} it")
    else:
        context.err.print(f"job {status.id} is {status.state.value}")
    return EXIT_OK


def _check_tools() -> None:
    """Fail before anything is written when there is no ffmpeg (the stitcher always needs one)."""
    ffmpeg_path()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return value


if __name__ == "__main__":
    sys.exit(main())
