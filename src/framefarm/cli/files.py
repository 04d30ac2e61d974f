"""Commands on a job's files: stitch (from the job directory or a bucket), share."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from framefarm.cli.context import EXIT_OK, Context, add_store_flags
from framefarm.cli.flags import output_path
from framefarm.config import (
    ffmpeg_path,
)
from framefarm.errors import JobSpecError, JobStateError
from framefarm.spec import JobSpec
from framefarm.stitch.merge import S3MergeAdapter
from framefarm.stitching import stitch_job
from framefarm.storage.base import DEFAULT_SHARE_SECONDS, MAX_SHARE_SECONDS
from framefarm.storage.keys import chunk_key, job_prefix, output_key, video_keys


def register(commands: Any) -> None:
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


def cmd_share(args: argparse.Namespace, context: Context) -> int:
    storage = context.storage()
    if args.chunk is not None:
        spec = context.repository(storage).require(args.job_id).spec
        try:
            key = chunk_key(spec.id, args.chunk, spec.chunk(args.chunk).output_file)
        except KeyError:
            raise JobSpecError(f"--chunk: job {spec.id} has no chunk {args.chunk}") from None
    elif not context.remote_storage:
        return share_local_video(args, context)
    else:
        prefix = job_prefix(args.job_id)
        job = context.repository(storage).get(args.job_id, chunks=False)
        videos = video_keys(args.job_id, (obj.key for obj in storage.list(prefix)), job.output if job else None)
        if not videos:
            raise JobStateError(f"job {args.job_id!r} has no stitched video in {storage.url(prefix)}; "
                                f"run `{context.hint(f'stitch {args.job_id} --upload')}` first")
        key = videos[0]
    context.out.print(storage.share_url(key, args.expires), soft_wrap=True)
    context.err.print(f"link to {storage.url(key)}, valid for {args.expires} s")
    return EXIT_OK


def share_local_video(args: argparse.Namespace, context: Context) -> int:
    """A local job's video is the file its record names (its job directory also holds the audio track
    and assets); the local store signs no links, so the link is the file's own URL."""
    job = context.repository().require(args.job_id)
    video = Path(job.output) if job.output else None
    if video is None or not video.is_file():
        where = f" at {video}" if video else ""
        stitch = context.hint(f"stitch {job.id}")
        raise JobStateError(f"job {job.id!r} has no stitched video{where}; run `{stitch}` first")
    context.out.print(video.as_uri(), soft_wrap=True, highlight=False)
    context.err.print(f"the video is a file on this machine, {video}: the local store signs no links "
                      "(--expires does not apply)", soft_wrap=True)
    return EXIT_OK
