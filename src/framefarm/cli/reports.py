"""Commands that read a job's story: jobs, status, cost, logs."""

from __future__ import annotations

import argparse
import time
from typing import Any

from framefarm.cli.as_json import chunks_json, deliveries_json, emit, job_json
from framefarm.cli.context import EXIT_OK, Context, add_store_flags
from framefarm.cli.flags import positive_int
from framefarm.console import (
    chunk_counts,
    chunk_groups,
    chunks_table,
    cost_table,
    deliveries_table,
    job_summary,
    jobs_table,
)
from framefarm.errors import JobSpecError
from framefarm.repositories.base import JobRepository
from framefarm.slots import as_queued, waiting_jobs
from framefarm.status import ChunkRecord, ChunkState
from framefarm.storage.base import Storage
from framefarm.storage.logs import attempt_log, full_log


def register(commands: Any) -> None:
    listing = commands.add_parser("jobs", help="list jobs, newest first")
    listing.add_argument("--limit", type=int, default=50)
    add_json_flag(listing)
    add_store_flags(listing)
    listing.set_defaults(handler=cmd_jobs)

    for name, handler, text in (("status", cmd_status, "one job and a table of its chunks"),
                                ("cost", cmd_cost, "a job's billed time and cost, per chunk")):
        command = commands.add_parser(name, help=text)
        command.add_argument("job_id")
        add_json_flag(command)
        add_store_flags(command)
        command.set_defaults(handler=handler)
    commands.choices["status"].add_argument(
        "--state", action="append", choices=[state.value for state in ChunkState], metavar="STATE",
        help="only the chunks in this state (repeat for more): " + ", ".join(state.value for state in ChunkState))

    logs = commands.add_parser("logs", help="a job's chunk output (stdout and stderr)")
    logs.add_argument("job_id")
    logs.add_argument("--chunk", type=int, help="only this chunk")
    logs.add_argument("--attempt", type=positive_int, metavar="N",
                      help="only this attempt (default: every attempt; an earlier one's log is kept when it failed)")
    add_json_flag(logs)
    add_store_flags(logs)
    logs.set_defaults(handler=cmd_logs)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="one JSON document on stdout instead of tables (schema: docs/cli-json.md)")


def cmd_jobs(args: argparse.Namespace, context: Context) -> int:
    repository = context.repository()
    queue = waiting_jobs(repository, time.time())  # the shared concurrency budget's queue (framefarm.slots)
    listed = [as_queued(job, queue) for job in repository.list(limit=args.limit)]
    context.err.print(f"jobs in {repository.location}", soft_wrap=True, highlight=False)
    if args.json:
        emit(context.out, "jobs", jobs=[{**job_json(job), "queue_place": queue.get(job.id)} for job in listed])
    elif not listed:
        context.out.print("no jobs yet")
    else:
        context.out.print(jobs_table(listed, queue))
    return EXIT_OK


def cmd_status(args: argparse.Namespace, context: Context) -> int:
    repository = context.repository()
    job = repository.require(args.job_id)
    deliveries = repository.deliveries(job.id)
    states = {ChunkState(state) for state in args.state or ()}
    if args.json:
        chosen = [record for group in chunk_groups(job, states).values() for record in group]
        emit(context.out, "status", job=job_json(job), chunks=chunks_json(job, sorted(chosen, key=chunk_id)),
             deliveries=deliveries_json(deliveries))
        return EXIT_OK
    context.out.print(job_summary(job))
    context.out.print(chunk_counts(job))
    if states and not chunk_groups(job, states):
        context.out.print(f"no {' or '.join(sorted(args.state))} chunks")
    else:
        context.out.print(chunks_table(job, states))
    if deliveries:
        context.out.print(deliveries_table(deliveries))
    return EXIT_OK


def chunk_id(record: ChunkRecord) -> int:
    return record.chunk_id


def cmd_cost(args: argparse.Namespace, context: Context) -> int:
    job = context.repository().require(args.job_id)
    if args.json:
        chunks = chunks_json(job, sorted(job.chunks, key=lambda record: record.cost_usd, reverse=True))
        emit(context.out, "cost", job=job_json(job), chunks=chunks)
        return EXIT_OK
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
    if args.attempt is not None and all(args.attempt > record.attempts for record in records):
        raise JobSpecError(f"--attempt: no chunk shown has an attempt {args.attempt} "
                           f"(at most {max((record.attempts for record in records), default=0)})")
    if args.json:
        logs = [{"id": record.chunk_id, "state": record.state.value, "attempt": record.attempts,
                 **chunk_logs(storage, repository, job.id, record), "error": record.error,
                 "attempts": [{"attempt": number, **streams}
                              for number, streams in attempt_logs(storage, repository, job.id, record, args.attempt)]}
                for record in records]
        emit(context.out, "logs", job=job_json(job), chunks=logs)
        return EXIT_OK
    for record in records:
        for number, streams in attempt_logs(storage, repository, job.id, record, args.attempt):
            latest = number == record.attempts
            state = record.state.value if latest else "earlier"
            context.out.rule(f"chunk {record.chunk_id} · attempt {number} of {record.attempts} · {state}")
            if not any(text is not None for text in streams.values()):
                context.out.print("[dim](no log kept for this attempt)[/]")
            for stream, text in streams.items():
                if text:
                    context.out.print(f"[dim]{stream}:[/]")
                    context.out.out(text.rstrip("\n"), highlight=False)
            if latest and record.error:
                context.out.print(f"[red]error:[/] {record.error}", soft_wrap=True)
    return EXIT_OK


def attempt_logs(storage: Storage, repository: JobRepository, job_id: str, record: ChunkRecord,
                 only: int | None = None) -> list[tuple[int, dict[str, str | None]]]:
    """Each attempt's stdout and stderr, oldest first (``only``: that attempt): the latest from the record
    (whole when storage kept it), earlier ones as storage kept them (None: not kept)."""
    numbers = [only] if only is not None else list(range(1, record.attempts + 1))
    shown: list[tuple[int, dict[str, str | None]]] = []
    for number in numbers:
        if number == record.attempts:
            shown.append((number, dict(chunk_logs(storage, repository, job_id, record))))
        elif 1 <= number < record.attempts:
            shown.append((number, {stream: attempt_log(storage, job_id, record.chunk_id, number, stream)
                                   for stream in ("stdout", "stderr")}))
    return shown


def chunk_logs(storage: Storage, repository: JobRepository, job_id: str, record: ChunkRecord) -> dict[str, str]:
    """A chunk's last attempt's stdout and stderr, whole if storage kept them, else their tails."""
    return {stream: full_log(storage, job_id, record.chunk_id, record.attempts, stream, tail_text,
                             kept_chars=repository.tail_chars)
            for stream, tail_text in (("stdout", record.stdout_tail), ("stderr", record.stderr_tail))}
