"""Commands that read a job's story: jobs, status, cost, logs."""

from __future__ import annotations

import argparse
from typing import Any

from framefarm.cli.context import EXIT_OK, Context, add_store_flags
from framefarm.console import chunks_table, cost_table, job_summary, jobs_table
from framefarm.errors import JobSpecError
from framefarm.storage.logs import full_log


def register(commands: Any) -> None:
    listing = commands.add_parser("jobs", help="list jobs, newest first")
    listing.add_argument("--limit", type=int, default=50)
    add_store_flags(listing)
    listing.set_defaults(handler=cmd_jobs)

    for name, handler, text in (("status", cmd_status, "one job and a table of its chunks"),
                                ("cost", cmd_cost, "a job's billed time and cost, per chunk")):
        command = commands.add_parser(name, help=text)
        command.add_argument("job_id")
        add_store_flags(command)
        command.set_defaults(handler=handler)

    logs = commands.add_parser("logs", help="a job's chunk output (stdout and stderr)")
    logs.add_argument("job_id")
    logs.add_argument("--chunk", type=int, help="only this chunk")
    add_store_flags(logs)
    logs.set_defaults(handler=cmd_logs)


def cmd_jobs(args: argparse.Namespace, context: Context) -> int:
    repository = context.repository()
    listed = repository.list(limit=args.limit)
    context.err.print(f"jobs in {repository.location}", soft_wrap=True, highlight=False)
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
