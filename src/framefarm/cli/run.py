"""Commands that render: render, resume, retry (an AWS job: on its orchestrator function)."""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.markup import escape

from framefarm.api import RenderFailed, RenderHandle, check_budget, run_options, submit
from framefarm.backends import Backend
from framefarm.cancel import CancelToken
from framefarm.cli.context import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_PAUSED, Context, add_store_flags
from framefarm.cli.flags import add_resume_flags, add_run_flags, frame_range, output_path, priority
from framefarm.cli.settings import BACKENDS
from framefarm.cli.signals import cancel_on_interrupt
from framefarm.config import (
    BUDGET,
    ffmpeg_path,
)
from framefarm.console import RenderProgress
from framefarm.errors import JobAbortedError, JobSpecError, JobStateError, id_list
from framefarm.manager import RUNNABLE, JobManager
from framefarm.options import ExecutionOptions, RetryPolicy
from framefarm.spec import JobSpec, Notify, load_job_file, select_frames
from framefarm.status import JobRecord, JobState
from framefarm.webhooks.notifier import with_webhook
from framefarm.webhooks.secret import webhook_secret
from framefarm.webhooks.sender import exit_wait


def register(commands: Any) -> None:
    render = commands.add_parser("render", help="render a job file, with a progress bar")
    render.add_argument("jobfile", type=Path)
    render.add_argument("-o", "--output", type=Path, help="final video (default: the job file's `output`)")
    render.add_argument("--job-id", help="id for the new job (default: generated)")
    render.add_argument("--backend", choices=BACKENDS,
                        help="where chunks run: local subprocesses (default), a render-chunk Lambda function, "
                             "or a Cloud Run worker service (default: $FRAMEFARM_BACKEND, the profile's, else local)")
    render.add_argument("--function", help="with --backend lambda: the render-chunk function's name")
    render.add_argument("--service", help="with --backend cloudrun: the service URL or "
                                          "projects/P/locations/L/services/S")
    render.add_argument("--frames", type=frame_range, metavar="A-B",
                        help="render only the chunks covering frames A to B (inclusive, from 0), to check a "
                             "scene first: the video then holds just those chunks, without the audio track")
    render.add_argument("--assets", type=Path,
                        help="a directory the commands read (inputs, fonts...): shipped to every chunk's work dir")
    render.add_argument("--priority", type=priority, help="its weight in the fair share of a shared concurrency "
                                                          "budget (FRAMEFARM_MAX_CONCURRENCY; default: the job "
                                                          "file's `priority`, else 1)")
    add_run_flags(render)
    add_store_flags(render)
    render.set_defaults(handler=cmd_render)

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


def cmd_render(args: argparse.Namespace, context: Context) -> int:
    spec = load_job_file(args.jobfile, job_id=args.job_id)
    if args.frames is not None:
        spec = select_frames(spec, *args.frames)
    if args.priority is not None:
        spec = spec.model_copy(update={"priority": args.priority})
    # the same backend every other command finds (a table in the settings: Lambda), so its hints find the job
    backend = context.backend(context.settings.get("backend"), function=args.function, service=args.service,
                              run_here=True)
    output = output_path(args.output, spec.output, spec.id)
    if args.frames is not None and args.output is None:  # a part never replaces the whole video
        last = spec.first_frame + spec.metadata.total_frames - 1
        output = output.with_name(f"{output.stem}.frames-{spec.first_frame}-{last}{output.suffix}")
    progress = RenderProgress(context.err, spec.id, len(spec.chunks))
    token = CancelToken()
    with cancel_on_interrupt(lambda: token.cancel("cancelled")):
        handle = submit(spec, backend=backend, output=output, concurrency=args.concurrency, retry=retry_policy(args),
                        chunk_timeout=args.timeout, hooks=progress, assets=args.assets, stitch=not args.no_stitch,
                        cancel=token, max_cost=args.max_cost, webhook=args.webhook)
        part = f" (frames {spec.first_frame}-{spec.first_frame + spec.metadata.total_frames - 1})" \
            if args.frames else ""
        context.err.print(f"job [bold]{spec.id}[/]: {len(spec.chunks)} chunks, "
                          f"{spec.metadata.total_frames} frames{part} → {output}")
        return follow(handle, progress, context, stitch_note=args.no_stitch)


def cmd_resume(args: argparse.Namespace, context: Context) -> int:
    retry = retry_policy(args)  # before anything is stored or sent
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
                          retry=retry, chunk_timeout=args.timeout, hooks=progress, cancel=token,
                          max_cost=args.max_cost)
    options = dataclasses.replace(options, notify=resumed_notify(args, backend, status.spec))
    with cancel_on_interrupt(lambda: token.cancel("cancelled")):
        manager.resume_job(status.id, options)
        return follow(RenderHandle(status.id, backend, manager, output=output), progress, context,
                      stitch_note=args.no_stitch)


def cmd_retry(args: argparse.Namespace, context: Context) -> int:
    retry_policy(args)  # the option values are checked before any chunk is reopened
    manager = context.manager()
    before = manager.summary(args.job_id)
    if not context.on_aws:  # before anything is reopened
        ffmpeg_path()
        resumed_notify(args, context.backend(service=args.service), before.spec)
    manager.reopen_chunks(before.id, args.chunk)
    context.err.print(f"job {before.id}: rendering chunks {id_list(sorted(set(args.chunk)))} again")
    code = cmd_resume(args, context)
    if before.state is JobState.COMPLETED and manager.summary(before.id).state is not JobState.COMPLETED:
        video = f"its video {before.output}" if before.output else "its video"
        context.err.print(f"{video} predates this retry: once the chunks are done, "
                          f"stitch again with `{context.hint(f'stitch {before.id}')}`", soft_wrap=True)
    return code


def resumed_notify(args: argparse.Namespace, backend: Backend, spec: JobSpec) -> Notify | None:
    """Who a resumed run tells of its end (``--webhook`` in place of the job's own; None: the job's).
    JobSpecError for a ``--max-cost`` the backend cannot keep, WebhookSecretError for a webhook with
    nothing to sign its deliveries: said before the job runs, or has chunks reopened."""
    check_budget(backend, spec, args.max_cost)
    notify = with_webhook(spec.notify, args.webhook) if args.webhook is not None else None
    wanted = notify or spec.notify
    if wanted is not None and wanted.webhook:
        webhook_secret()
    return notify


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
    options.update({name: value for name in ("concurrency", "timeout", "max_cost", "webhook")
                    if (value := getattr(args, name)) is not None})
    backend = context.backend()
    assert isinstance(backend, Lambda)  # a job on AWS
    invoke_async(backend.lambda_client(), function, {"job_id": status.id, "options": options, "resume": True})
    context.out.print(f"job {status.id}: resumed on {function} ({status.completed_chunks}/{status.total_chunks} "
                      f"chunks done); follow it with `{context.hint(f'status {status.id}')}`",
                      highlight=False, soft_wrap=True)
    return EXIT_OK


def follow(handle: RenderHandle, progress: RenderProgress, context: Context, *, stitch_note: bool) -> int:
    """Show a run's progress until it settles (its video stitched, if asked); returns the exit code."""
    started = time.monotonic()
    try:
        with settled_webhooks(handle, context), progress:
            result = handle.wait()
    except RenderFailed as exc:
        context.err.print(f"[red]error:[/] {exc}", soft_wrap=True)
        return EXIT_FAILED
    except JobAbortedError as exc:
        if exc.reason in (JobState.PAUSED.value, BUDGET):
            no_stitch = " --no-stitch" if stitch_note else ""  # as this run was asked
            if exc.reason == BUDGET:
                hint = context.hint(f"resume {handle.job_id}{no_stitch} --max-cost USD")
                error = handle.manager.summary(handle.job_id).error or BUDGET
                context.err.print(f"[yellow]paused[/] job {handle.job_id} for its {escape(error)}; "
                                  f"continue with a higher cap: `{hint}`", soft_wrap=True)
                return EXIT_PAUSED
            context.err.print(f"[yellow]paused[/] job {handle.job_id}; "
                              f"continue with `{context.hint(f'resume {handle.job_id}{no_stitch}')}`", soft_wrap=True)
            return EXIT_PAUSED
        stopped = handle.manager.summary(handle.job_id)  # a cancel is the user's choice, not a failure: no red
        resume = context.hint(f"resume {handle.job_id}")
        context.err.print(f"[yellow]stopped:[/] job {handle.job_id} cancelled: {stopped.error} "
                          f"({stopped.completed_chunks}/{stopped.total_chunks} chunks done, "
                          f"${stopped.metrics.cost_usd:.6f} spent); continue with `{resume}`", soft_wrap=True)
        return EXIT_CANCELLED
    # The last line: what it cost, and where the video is (or how to make it), whole on one line for scripts.
    spent = f"in {time.monotonic() - started:.1f} s for ${result.cost_usd:.6f}"
    if result.state is JobState.RENDERED:
        context.err.print(f"[green]rendered[/] {result.chunks} chunks {spent}"
                          + (f"; join them with `{context.hint(f'stitch {handle.job_id}')}`" if stitch_note else ""),
                          soft_wrap=True)
    else:
        context.err.print(f"[green]rendered[/] {result.frames} frames {spent} → [bold]{escape(str(result.output))}[/]",
                          soft_wrap=True)
    return EXIT_OK


@contextmanager
def settled_webhooks(handle: RenderHandle, context: Context) -> Iterator[None]:
    """Once the run settles, wait a bounded time (FRAMEFARM_WEBHOOK_EXIT_WAIT, 10 s) for its webhook
    deliveries; those still failing are recorded abandoned on the job, and said so here."""
    try:
        yield
    finally:
        wait = exit_wait()
        for job_id, record in handle.manager.notifier.drain(wait):
            last = f", last: {record.outcomes[-1]}" if record.outcomes else ""
            context.err.print(f"[yellow]webhook not delivered:[/] {record.event} to {escape(record.url)} "
                              f"({record.attempts} attempts in {wait:g} s{last}); recorded on job {job_id} "
                              f"(`{context.hint(f'status {job_id}')}`)", soft_wrap=True)


def retry_policy(args: argparse.Namespace) -> RetryPolicy:
    """The run flags' retry policy; JobSpecError for a bad --retries, --retry-delay or --timeout."""
    ExecutionOptions(timeout=args.timeout)  # the library's own check of a chunk timeout
    return RetryPolicy(retries=args.retries, delay=args.retry_delay)
