"""Commands that remove jobs: delete (one job), prune (every job older than a duration).

Both go through ``JobManager.delete_job``: the job's records (job and chunk rows or items), its
files under ``jobs/<id>/`` in storage (locally: the job directory), and never a job a live runner
holds. A job's stitched video outside the store (``-o``) is the user's and is left alone.
"""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from framefarm.cli.context import EXIT_FAILED, EXIT_OK, Context, add_store_flags
from framefarm.errors import JobSpecError, JobStateError
from framefarm.manager import JobManager
from framefarm.storage.base import Storage
from framefarm.storage.keys import job_prefix

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def register(commands: Any) -> None:
    delete = commands.add_parser("delete", help="remove a job: its records and its files (not a job a runner holds)")
    delete.add_argument("job_id")
    add_store_flags(delete)
    delete.set_defaults(handler=cmd_delete)

    prune = commands.add_parser("prune", help="remove every job last updated longer ago than --older-than "
                                              "(jobs a runner holds are kept)")
    prune.add_argument("--older-than", type=duration, required=True, metavar="DURATION",
                       help="an age: a number and a unit, s m h d w (90m, 12h, 7d)")
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    add_store_flags(prune)
    prune.set_defaults(handler=cmd_prune)


def duration(text: str) -> float:
    """Seconds in ``90m``, ``12h``, ``7d`` (an argparse type: a bad value is a usage error)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; give a number and a unit "
                                         "(s, m, h, d, w), e.g. 90m, 12h, 7d")
    return float(match.group(1)) * UNITS[match.group(2)]


def cleaning_manager(context: Context, command: str) -> tuple[JobManager, Storage]:
    """A manager, and the storage it removes files from. A job store whose files are in a bucket not
    named here (``--table`` alone) would leave them behind: refused before anything is removed."""
    manager = context.manager()
    storage = manager.storage or manager.repository.storage
    if storage is None:
        raise JobSpecError(f"{command}: name the bucket too (--bucket or --stack), or the jobs' files "
                           f"in it would be left behind")
    return manager, storage


def cmd_delete(args: argparse.Namespace, context: Context) -> int:
    manager, storage = cleaning_manager(context, "delete")
    job = manager.summary(args.job_id)  # an unknown id: one line naming the store
    size = stored_bytes(storage, job.id)
    manager.delete_job(job.id)
    context.err.print(f"deleted job {job.id} ({job.state.value}) from {manager.repository.location} "
                      f"and {size} bytes under {storage.url(job_prefix(job.id))}", soft_wrap=True)
    return EXIT_OK


def cmd_prune(args: argparse.Namespace, context: Context) -> int:
    manager, storage = cleaning_manager(context, "prune")
    cutoff = time.time() - args.older_than
    old = [job for job in manager.repository.list() if job.updated_at < cutoff]
    held = [job for job in old if not manager.is_stale(job)]
    doomed = [job for job in old if manager.is_stale(job)]
    verb = "would remove" if args.dry_run else "removing"
    context.err.print(f"{len(old)} jobs in {manager.repository.location} last updated more than "
                      f"{span(args.older_than)} ago; {verb} {len(doomed)}", soft_wrap=True)
    for job in held:
        context.err.print(f"  kept {job.id} ({job.state.value}): a runner holds it")
    refused = 0
    for job in doomed:
        size = stored_bytes(storage, job.id)
        if not args.dry_run:
            try:
                manager.delete_job(job.id)
            except JobStateError as exc:  # a runner took it since we looked
                context.err.print(f"  kept {job.id}: {exc}", soft_wrap=True)
                refused += 1
                continue
        age = span(time.time() - job.updated_at)
        context.out.print(f"{job.id}  {job.state.value}  {age}  {size} bytes", soft_wrap=True, highlight=False)
    return EXIT_FAILED if refused else EXIT_OK


def stored_bytes(storage: Storage, job_id: str) -> int:
    """Bytes the job keeps in storage (chunks, logs, spec; locally its job directory)."""
    return sum(obj.size for obj in storage.list(job_prefix(job_id)))


def span(seconds: float) -> str:
    """A duration the way ``--older-than`` takes them: 90 m, 12 h, 7 d."""
    for unit in "dhm":
        if seconds >= UNITS[unit]:
            return f"{seconds / UNITS[unit]:.3g} {unit}"
    return f"{seconds:.0f} s"
